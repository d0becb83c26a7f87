"""The day's Segment events: browsing sessions and online checkouts, as Segment e-commerce spec v2 messages."""

from __future__ import annotations

import bisect
import datetime as dt
import math
import uuid

import numpy as np
import pandas as pd

from crosschannel.sim.catalogue import CATEGORIES, CatalogueMixin
from crosschannel.sim.timeline import DAY_US, day_ordinal


class _Draws:
    """Scalar random draws served from a pre-drawn buffer: numpy's per-call overhead dominates otherwise."""

    def __init__(self, rng: np.random.Generator, size: int = 1 << 20):
        self.rng = rng
        self.size = size
        self.buffer: list[float] = []
        self.at = 0

    def random(self) -> float:
        if self.at == len(self.buffer):
            self.buffer = self.rng.random(self.size).tolist()
            self.at = 0
        self.at += 1
        return self.buffer[self.at - 1]

    def integers(self, low: int, high: int) -> int:
        return low + int(self.random() * (high - low))

    def poisson(self, lam: float) -> int:
        threshold, k, product = math.exp(-lam), 0, self.random()
        while product > threshold:
            k += 1
            product *= self.random()
        return k


class EventWriter:
    """Builds one day's Segment messages: identify calls and e-commerce spec v2 track events."""

    NAMESPACE = uuid.UUID("6f1c9d3e-2b7a-4c55-9a0e-5d3b8f1e2a47")

    def __init__(self, day: dt.date, rng: np.random.Generator, seed: int, retailer: CatalogueMixin):
        self.day = day
        self.rng = _Draws(rng)
        self.seed = seed
        self.day_start = dt.datetime.combine(day, dt.time(0))
        self.message_prefix = f"{seed:x}-{day:%Y%m%d}-"
        self.a = retailer.a
        self.day_us = day_ordinal(day) * DAY_US
        self.events: list[dict] = []
        idx = np.arange(self.a["p_price"].size)
        self.products = retailer.product_rows(idx, 0)[["product_id", "sku", "category", "name", "brand", "price"]]
        self.props = self.products.to_dict("records")
        sellable = self.a["p_active"] & (self.a["p_created"] < day_ordinal(day))
        self.pools = [np.flatnonzero(sellable & (self.a["p_category"] == c)).tolist() for c in range(len(CATEGORIES))]
        self.all_sellable = np.flatnonzero(sellable).tolist()

    def _device(self, customer_id: int | None) -> str:
        if customer_id is None:
            return str(uuid.uuid5(self.NAMESPACE, f"{self.message_prefix}visitor-{len(self.events)}"))
        device = self.rng.integers(0, int(self.a["c_devices"][customer_id - 1]))
        return str(uuid.uuid5(self.NAMESPACE, f"{self.seed}:{customer_id}:{device}"))

    def _iso(self, us: int) -> str:
        moment = self.day_start + dt.timedelta(microseconds=us - self.day_us)
        return moment.isoformat(timespec="milliseconds") + "Z"

    def _emit(self, kind: str, us: int, user_id, anonymous_id: str, channel: str, **fields) -> None:
        message = {
            "type": kind,
            "messageId": f"{self.message_prefix}{len(self.events):09d}",
            "userId": None if user_id is None else str(user_id),
            "anonymousId": anonymous_id,
            "timestamp": self._iso(us),
            "receivedAt": self._iso(us + self.rng.integers(50_000, 2_000_000)),
            "context": {"library": {"name": "analytics.js" if channel == "web" else "analytics-ios"},
                        "channel": channel},
        }
        message.update(fields)
        self.events.append(message)

    def _product(self, affinity) -> dict:
        pool = self.all_sellable
        if affinity is not None:
            category = min(bisect.bisect_left(affinity, self.rng.random()), len(CATEGORIES) - 1)
            pool = self.pools[category] if self.pools[category] else pool
        return self.props[pool[self.rng.integers(0, len(pool))]]

    def browse_session(self, customer_id: int | None) -> None:
        """A visit: maybe a search, product views, wishlist and cart adds, sometimes an abandoned checkout."""
        rng = self.rng
        channel = "web" if rng.random() < 0.6 else "app"
        anon = self._device(customer_id)
        user = customer_id if customer_id is not None and rng.random() < 0.5 else None
        us = self.day_us + rng.integers(60, 82_800) * 1_000_000
        if user is not None:
            self._emit("identify", us, user, anon, channel, traits={})
        affinity = None if customer_id is None else self.a["c_affinity"][customer_id - 1].tolist()
        if rng.random() < 0.35:
            us += rng.integers(2, 30) * 1_000_000
            pick = bisect.bisect_left(affinity, rng.random()) if affinity else rng.integers(0, len(CATEGORIES))
            query = CATEGORIES[min(pick, len(CATEGORIES) - 1)]
            self._emit("track", us, user, anon, channel, event="Products Searched", properties={"query": query})
        added = []
        for _ in range(1 + rng.poisson(2.0)):
            product = self._product(affinity)
            us += rng.integers(5, 90) * 1_000_000
            self._emit("track", us, user, anon, channel, event="Product Viewed", properties=dict(product))
            if rng.random() < 0.05:
                self._emit("track", us + 1000, user, anon, channel, event="Product Added to Wishlist",
                           properties=dict(product))
            if rng.random() < 0.15:
                us += rng.integers(2, 20) * 1_000_000
                self._emit("track", us, user, anon, channel, event="Product Added",
                           properties=dict(product, quantity=1, cart_id=anon))
                added.append(product)
        if added and rng.random() < 0.7:
            us += rng.integers(5, 60) * 1_000_000
            self._emit("track", us, user, anon, channel, event="Cart Viewed",
                       properties={"cart_id": anon, "products": [dict(p, quantity=1) for p in added]})
        if added and rng.random() < 0.15:
            us += rng.integers(5, 60) * 1_000_000
            total = round(sum(p["price"] for p in added), 2)
            self._emit("track", us, user, anon, channel, event="Checkout Started",
                       properties={"value": total, "revenue": total, "currency": "USD",
                                   "products": [dict(p, quantity=1) for p in added]})

    def checkout_session(self, order, lines: pd.DataFrame) -> None:
        """The online order's visit: views and adds of what was bought, checkout, identify, Order Completed."""
        rng = self.rng
        customer_id = int(order.customer_id)
        anon = self._device(customer_id)
        channel = order.channel
        end_us = int(pd.Timestamp(order.order_ts).value // 1000)
        bought = [dict(self.props[int(p) - 1], quantity=int(q))
                  for p, q in zip(lines["product_id"], lines["quantity"], strict=True)]
        steps = 3 * len(bought) + 3
        us = end_us - steps * 20_000_000
        user = customer_id if rng.random() < 0.5 else None
        if user is not None:
            self._emit("identify", us, user, anon, channel, traits={})
        for product in bought:
            us += 20_000_000
            self._emit("track", us, user, anon, channel, event="Product Viewed",
                       properties={k: v for k, v in product.items() if k != "quantity"})
            us += 20_000_000
            self._emit("track", us, user, anon, channel, event="Product Added", properties=dict(product, cart_id=anon))
        us += 20_000_000
        self._emit("track", us, user, anon, channel, event="Cart Viewed",
                   properties={"cart_id": anon, "products": bought})
        if user is None:
            us += 20_000_000
            user = customer_id
            self._emit("identify", us, user, anon, channel, traits={})
        us += 20_000_000
        total = float(order.total)
        self._emit("track", us, user, anon, channel, event="Checkout Started",
                   properties={"order_id": str(order.order_id), "value": total, "revenue": total,
                               "currency": "USD", "products": bought})
        self._emit("track", end_us, user, anon, channel, event="Order Completed",
                   properties={"order_id": str(order.order_id), "total": total, "revenue": float(order.subtotal),
                               "discount": float(order.discount), "currency": "USD", "products": bought})
