"""Orders: who buys what on a day, and the work an order leaves pending (status changes, returns).

`OrdersMixin` holds the Retailer methods that draw the day's orders and lines, queue online orders' status
changes and the lines that will come back, and release what falls due on a later day.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from crosschannel.sim.catalogue import CATEGORIES
from crosschannel.sim.timeline import DAY_US, timestamps

CHANNELS = ("store", "web", "app")
RETURN_REASONS = ("size", "damaged", "not_as_described", "changed_mind", "late_delivery")
MAX_LINES = 6


class OrdersMixin:
    """Retailer methods for orders and their pending status changes and returns (the arrays pend_* of `a`)."""

    a: dict[str, np.ndarray]
    meta: dict

    def _orders(self, rng, buyers: np.ndarray, d: int, n_stores: int) -> tuple[pd.DataFrame, pd.DataFrame]:
        a = self.a
        n = buyers.size
        order_ids = np.arange(self.meta["next_order_id"], self.meta["next_order_id"] + n, dtype=np.int64)
        self.meta["next_order_id"] += n
        channel = (rng.random(n)[:, None] > a["c_channel"][buyers]).sum(axis=1).clip(0, 2)
        in_store = channel == 0
        store = np.where(rng.random(n) < 0.85, a["c_store"][buyers], rng.integers(1, n_stores + 1, n))
        seconds = np.where(in_store, rng.integers(9 * 3600, 21 * 3600, n), rng.integers(1800, 84_600, n))
        order_us = d * DAY_US + seconds.astype(np.int64) * 1_000_000 + rng.integers(0, 1_000_000, n)
        n_lines = 1 + np.minimum(rng.poisson(0.8, n), MAX_LINES - 1)
        owner = np.repeat(np.arange(n), n_lines)
        line_no = np.arange(owner.size) - np.repeat(np.cumsum(n_lines) - n_lines, n_lines) + 1
        category = (rng.random(owner.size)[:, None] > a["c_affinity"][buyers[owner]]).sum(axis=1)
        category = category.clip(0, len(CATEGORIES) - 1)
        product = np.zeros(owner.size, dtype=np.int64)
        sellable = a["p_active"] & (a["p_created"] < d)
        for c in range(len(CATEGORIES)):
            pool = np.flatnonzero(sellable & (a["p_category"] == c))
            if pool.size == 0:
                pool = np.flatnonzero(sellable)
            pick = category == c
            product[pick] = pool[rng.integers(0, pool.size, pick.sum())]
        quantity = np.where(rng.random(owner.size) < 0.85, 1, rng.integers(2, 4, owner.size))
        unit_price = a["p_price"][product]
        discounted = rng.random(n) < a["c_discount"][buyers]
        rate = np.where(discounted, rng.choice([0.1, 0.15, 0.2, 0.3], n), 0.0)
        line_discount = np.round(unit_price * quantity * rate[owner], 2)
        gross = np.round(unit_price * quantity, 2)
        subtotal = np.bincount(owner, weights=gross, minlength=n)
        discount = np.bincount(owner, weights=line_discount, minlength=n)
        a["c_orders"][buyers] += 1
        a["c_year_orders"][buyers, (d // 30) % 12] += 1
        ts = timestamps(order_us)
        orders = pd.DataFrame({
            "order_id": order_ids,
            "customer_id": buyers + 1,
            "store_id": pd.Series(store, dtype="Int64").where(in_store),
            "channel": np.array(CHANNELS)[channel],
            "status": np.where(in_store, "completed", "placed"),
            "order_ts": ts,
            "subtotal": np.round(subtotal, 2),
            "discount": np.round(discount, 2),
            "total": np.round(subtotal - discount, 2),
            "updated_at": ts,
        })
        lines = pd.DataFrame({
            "order_id": order_ids[owner],
            "line_no": line_no,
            "product_id": product + 1,
            "quantity": quantity,
            "unit_price": unit_price,
            "discount": line_discount,
            "updated_at": ts[owner],
        })
        return orders, lines

    def _schedule(self, rng, orders: pd.DataFrame, lines: pd.DataFrame, d: int) -> None:
        """Queue the online orders' status changes and the lines that will be returned."""
        a = self.a
        online = orders.loc[orders["channel"] != "store", "order_id"].to_numpy()
        a["pend_st_day"] = np.concatenate([a["pend_st_day"], np.full(online.size, d + 1), np.full(online.size, d + 3)])
        a["pend_st_order"] = np.concatenate([a["pend_st_order"], online, online])
        a["pend_st_code"] = np.concatenate([a["pend_st_code"], np.ones(online.size, np.int64),
                                            np.full(online.size, 2, np.int64)])
        buyer_of = dict(zip(orders["order_id"], orders["customer_id"], strict=True))
        customer = lines["order_id"].map(buyer_of).to_numpy()
        returned = rng.random(len(lines)) < a["c_return"][customer - 1] if len(lines) else np.zeros(0, bool)
        picked = lines[returned]
        a["pend_ret_day"] = np.concatenate([a["pend_ret_day"], d + rng.integers(3, 31, len(picked))])
        a["pend_ret_order"] = np.concatenate([a["pend_ret_order"], picked["order_id"].to_numpy()])
        a["pend_ret_line"] = np.concatenate([a["pend_ret_line"], picked["line_no"].to_numpy()])
        a["pend_ret_product"] = np.concatenate([a["pend_ret_product"], picked["product_id"].to_numpy()])
        a["pend_ret_qty"] = np.concatenate([a["pend_ret_qty"], picked["quantity"].to_numpy()])
        refund = (picked["unit_price"] * picked["quantity"] - picked["discount"]).to_numpy()
        a["pend_ret_amount"] = np.concatenate([a["pend_ret_amount"], np.round(refund, 2)])

    def _take(self, prefix: str, d: int) -> dict[str, np.ndarray]:
        a = self.a
        keys = [k for k in a if k.startswith(prefix)]
        due = a[prefix + "day"] == d
        taken = {k.removeprefix(prefix): a[k][due] for k in keys}
        for k in keys:
            a[k] = a[k][~due]
        return taken

    def _due_returns(self, d: int, day_us: int, rng) -> pd.DataFrame:
        due = self._take("pend_ret_", d)
        n = due["order"].size
        ids = np.arange(self.meta["next_return_id"], self.meta["next_return_id"] + n, dtype=np.int64)
        self.meta["next_return_id"] += n
        ts = timestamps(day_us + rng.integers(9 * 3600, 20 * 3600, n).astype(np.int64) * 1_000_000)
        return pd.DataFrame({
            "return_id": ids,
            "order_id": due["order"],
            "line_no": due["line"],
            "product_id": due["product"],
            "quantity": due["qty"],
            "refund_amount": due["amount"],
            "reason": np.array(RETURN_REASONS)[rng.integers(0, len(RETURN_REASONS), n)],
            "return_ts": ts,
            "updated_at": ts,
        })

    def _due_status(self, d: int, day_us: int, rng) -> pd.DataFrame:
        due = self._take("pend_st_", d)
        n = due["order"].size
        return pd.DataFrame({
            "order_id": due["order"],
            "status": np.array(["placed", "shipped", "delivered"])[due["code"]],
            "updated_at": timestamps(day_us + rng.integers(6 * 3600, 18 * 3600, n).astype(np.int64) * 1_000_000),
        })
