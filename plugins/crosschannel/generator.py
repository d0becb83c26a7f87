"""A synthetic retailer with known ground truth, advanced day by day in the source DB.

Every customer has latent traits drawn once: a purchase rate (lam), a daily lapse hazard (hazard), a
browsing intensity, category and channel preferences, return and discount propensities. A customer is
alive until a pre-drawn lapse day (a geometric draw from the hazard); while alive they buy on a day with
probability q = 1 - exp(-lam) and browse in proportion to their rate; after lapsing they stop buying and
barely browse. The true probabilities are therefore exact, for any as-of day t:

    P(no purchase in the next N days | alive at the end of t) = h * sum_{k<N} (s r)^k + (s r)^N
    with s = 1 - hazard, r = 1 - q; a lapsed customer has probability 1 of no purchase.

churn = no purchase in the next 90 days, repurchase = a purchase in the next 30 days. `truth(day)` returns
them; the latents are kept in the generator's state under the storage root, never in the source DB, so
no pipeline stage can read them as features.

Each simulated day produces a change set (inserts, updates, deletes per table) and the day's Segment
events. History is bulk-loaded with capture off; live days are written through SQL, so the change-capture
triggers see real inserts, updates and deletes. Everything is drawn from numpy generators seeded with
(seed, day), so a seed gives the same retailer however the days are split across runs.
"""

from __future__ import annotations

import bisect
import datetime as dt
import io
import json
import math
import uuid
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
import sqlalchemy as sa

from crosschannel import source
from crosschannel.segment_events import write_day

if TYPE_CHECKING:
    from airflow.sdk import ObjectStoragePath

    from crosschannel.config import Generator as GeneratorSettings

CATEGORIES = ("apparel", "footwear", "accessories", "beauty", "home", "kitchen", "electronics", "sports",
              "toys", "grocery")
CHANNELS = ("store", "web", "app")
TIERS = ("none", "silver", "gold", "platinum")
REGIONS = ("north", "south", "east", "west")
CITIES = ("Springfield", "Riverton", "Lakeside", "Fairview", "Georgetown", "Salem", "Madison", "Clinton",
          "Ashland", "Burlington", "Dover", "Franklin")
FIRST = ("Ava", "Ben", "Chloe", "Dan", "Ella", "Finn", "Grace", "Hugo", "Ivy", "Jack", "Kira", "Liam",
         "Maya", "Noah", "Olga", "Paul", "Quinn", "Rosa", "Sam", "Tara", "Uma", "Victor", "Wendy", "Yara")
LAST = ("Adams", "Baker", "Clark", "Diaz", "Evans", "Fox", "Garcia", "Hill", "Ito", "Jones", "Khan", "Lopez",
        "Moore", "Nguyen", "Ortiz", "Patel", "Reed", "Smith", "Turner", "Usman", "Vega", "Wong", "Young")
RETURN_REASONS = ("size", "damaged", "not_as_described", "changed_mind", "late_delivery")
PK = {t.name: [c.name for c in t.primary_key.columns] for t in source.RETAIL_TABLES}
EPOCH = dt.date(1970, 1, 1)
DAY_US = 86_400_000_000
MAX_LINES = 6
TRUTH_HORIZONS = {"p_churn_90d": 90, "p_repurchase_30d": 30}


def day_ordinal(day: dt.date) -> int:
    return (day - EPOCH).days


def no_purchase_probability(lam: np.ndarray, hazard: np.ndarray, alive: np.ndarray, days: int) -> np.ndarray:
    """P(no purchase in the next `days` days) given the latent state (see the module docstring)."""
    sr = (1.0 - hazard) * np.exp(-lam)
    stay = sr**days
    geometric = np.where(np.isclose(sr, 1.0), days, (1.0 - stay) / np.where(sr == 1.0, 0.5, 1.0 - sr))
    return np.where(alive, hazard * geometric + stay, 1.0)


@dataclass
class ChangeSet:
    """One day's changes to the source DB, per table: rows to insert, partial updates, keys to delete."""

    inserts: dict[str, pd.DataFrame] = field(default_factory=dict)
    updates: dict[str, list[pd.DataFrame]] = field(default_factory=dict)
    deletes: dict[str, pd.DataFrame] = field(default_factory=dict)

    def update(self, table: str, frame: pd.DataFrame) -> None:
        if len(frame):
            self.updates.setdefault(table, []).append(frame)

    def counts(self) -> dict[str, dict[str, int]]:
        """Operations per table, as change capture should record them: {table: {"I": n, "U": n, "D": n}}."""
        out: dict[str, dict[str, int]] = {}
        for tbl in source.RETAIL_TABLES:
            ops = {
                "I": len(self.inserts.get(tbl.name, ())),
                "U": sum(len(f) for f in self.updates.get(tbl.name, [])),
                "D": len(self.deletes.get(tbl.name, ())),
            }
            if any(ops.values()):
                out[tbl.name] = ops
        return out


class Retailer:
    """The simulated retailer's state: latents per customer, catalogue, stock, pending work, id counters."""

    def __init__(self, arrays: dict[str, np.ndarray], meta: dict):
        self.a = arrays
        self.meta = meta

    # ---------------------------------------------------------------- creation and persistence
    @classmethod
    def create(cls, settings: GeneratorSettings) -> Retailer:
        first_day = dt.date.fromisoformat(settings.start_partition) - dt.timedelta(days=settings.history_days)
        meta = {
            "seed": settings.seed,
            "first_day": first_day.isoformat(),
            "next_day": first_day.isoformat(),
            "next_order_id": 1,
            "next_return_id": 1,
            "new_customers_per_day": max(1.0, settings.customers * 0.0008),
            "customers": 0,
        }
        rng = np.random.default_rng([settings.seed, 0])
        a: dict[str, np.ndarray] = {}
        # Catalogue and stores.
        n_p = settings.products
        a["p_category"] = rng.integers(0, len(CATEGORIES), n_p).astype(np.int16)
        base_price = np.array([35, 70, 25, 20, 45, 30, 150, 55, 25, 8], dtype=float)[a["p_category"]]
        a["p_price"] = np.round(base_price * rng.lognormal(0, 0.45, n_p), 2) + 0.99
        a["p_brand"] = rng.integers(0, 6, n_p).astype(np.int16)
        a["p_active"] = np.ones(n_p, dtype=bool)
        a["p_created"] = (day_ordinal(first_day) - rng.integers(30, 1500, n_p)).astype(np.int32)
        a["s_region"] = rng.integers(0, len(REGIONS), settings.stores).astype(np.int16)
        a["s_opened"] = (day_ordinal(first_day) - rng.integers(200, 5000, settings.stores)).astype(np.int32)
        a["stock"] = rng.integers(20, 120, (settings.stores, n_p)).astype(np.int32)
        for key in ("pend_ret_day", "pend_ret_order", "pend_ret_line", "pend_ret_product", "pend_ret_qty"):
            a[key] = np.zeros(0, dtype=np.int64)
        a["pend_ret_amount"] = np.zeros(0)
        for key in ("pend_st_day", "pend_st_order", "pend_st_code"):
            a["pend_" + key.removeprefix("pend_")] = np.zeros(0, dtype=np.int64)
        retailer = cls(a, meta)
        retailer._new_customers(rng, settings.customers, first_day, initial=True, n_stores=settings.stores)
        return retailer

    def save(self, path: ObjectStoragePath) -> None:
        buffer = io.BytesIO()
        np.savez_compressed(buffer, **self.a, meta=np.array(json.dumps(self.meta)))
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.parent / (path.name + ".tmp")
        tmp.write_bytes(buffer.getvalue())
        tmp.fs.mv(tmp.path, path.path)

    @classmethod
    def load(cls, path: ObjectStoragePath) -> Retailer:
        if not path.exists():
            raise FileNotFoundError(f"no generator state at {path}: run `python -m crosschannel generate` first")
        with np.load(io.BytesIO(path.read_bytes())) as data:
            arrays = {k: data[k] for k in data.files if k != "meta"}
            meta = json.loads(str(data["meta"]))
        return cls(arrays, meta)

    @property
    def next_day(self) -> dt.date:
        return dt.date.fromisoformat(self.meta["next_day"])

    def _rng(self, day: dt.date, stream: int = 0) -> np.random.Generator:
        return np.random.default_rng([self.meta["seed"], day_ordinal(day), stream])

    # ---------------------------------------------------------------- customers
    def _new_customers(self, rng, n: int, day: dt.date, *, initial: bool, n_stores: int) -> np.ndarray:
        a = self.a
        start = self.meta["customers"]
        ids = np.arange(start + 1, start + n + 1, dtype=np.int64)
        d0 = day_ordinal(day)
        lam = np.clip(rng.gamma(1.5, 1 / 60, n), 0.002, 0.25)
        hazard = np.clip(rng.beta(1.5, 600, n), 1e-5, 0.05)
        lapse = d0 + rng.geometric(hazard).astype(np.int32)
        if initial:  # a fifth of the customer base had lapsed before the history starts
            lapsed = rng.random(n) < 0.2
            lapse = np.where(lapsed, d0 - rng.integers(1, 300, n), lapse)
            signup = d0 - rng.integers(0, 1100, n)
            signup = np.minimum(signup, lapse - 1)
        else:
            signup = np.full(n, d0)
        chan = rng.dirichlet([1.2, 1.0, 0.8], n)
        new = {
            "c_lam": lam,
            "c_hazard": hazard,
            "c_lapse": lapse.astype(np.int32),
            "c_signup": signup.astype(np.int32),
            "c_signup_us": rng.integers(8 * 3600, 22 * 3600, n).astype(np.int64) * 1_000_000,
            "c_browse": lam * rng.lognormal(np.log(4.0), 0.5, n),
            "c_return": rng.beta(1.0, 12.0, n),
            "c_discount": rng.beta(2.0, 5.0, n),
            "c_channel": np.cumsum(chan, axis=1),
            "c_affinity": np.cumsum(rng.dirichlet(np.full(len(CATEGORIES), 0.4), n), axis=1),
            "c_store": rng.integers(1, n_stores + 1, n).astype(np.int32),
            "c_devices": rng.integers(1, 3, n).astype(np.int8),
            "c_has_email": rng.random(n) < 0.96,
            "c_has_phone": rng.random(n) < 0.8,
            "c_email_opt": rng.random(n) < 0.55,
            "c_sms_opt": rng.random(n) < 0.3,
            "c_tier": np.zeros(n, dtype=np.int8),
            "c_version": np.zeros(n, dtype=np.int16),
            "c_deleted": np.zeros(n, dtype=bool),
            "c_orders": np.zeros(n, dtype=np.int32),
            "c_year_orders": np.zeros((n, 12), dtype=np.int16),
        }
        for key, values in new.items():
            a[key] = np.concatenate([a[key], values]) if key in a else values
        self.meta["customers"] = start + n
        return ids

    def customer_rows(self, ids: np.ndarray, ts_us: np.ndarray) -> pd.DataFrame:
        """Profile rows for customer ids (1-based), as they are now."""
        i = ids - 1
        a = self.a
        first = np.array(FIRST)[ids % len(FIRST)]
        last = np.array(LAST)[(ids // len(FIRST)) % len(LAST)]
        version = a["c_version"][i].astype(np.int64)
        email = (pd.Series(first).str.lower() + "." + pd.Series(last).str.lower() + ids.astype(str)
                 + np.where(version > 0, "." + version.astype(str), "") + "@example.com")
        phone = "+1555" + pd.Series((1_000_000 + (ids * 7919 + version * 104_729) % 9_000_000).astype(str))
        return pd.DataFrame({
            "customer_id": ids,
            "first_name": first,
            "last_name": last,
            "email": email.where(a["c_has_email"][i], None),
            "phone": phone.where(a["c_has_phone"][i], None),
            "email_opt_in": a["c_email_opt"][i],
            "sms_opt_in": a["c_sms_opt"][i],
            "loyalty_tier": np.array(TIERS)[a["c_tier"][i]],
            "home_store_id": a["c_store"][i],
            "signup_date": pd.to_datetime(a["c_signup"][i], unit="D").date,
            "updated_at": _ts(ts_us),
        })

    def truth(self, day: dt.date) -> pd.DataFrame:
        """The true probabilities as of the end of `day`, for every customer signed up and not deleted."""
        a = self.a
        d = day_ordinal(day)
        keep = (a["c_signup"] <= d) & ~a["c_deleted"]
        alive = a["c_lapse"][keep] > d
        frame = pd.DataFrame({"customer_id": np.flatnonzero(keep) + 1, "alive": alive})
        for name, horizon in TRUTH_HORIZONS.items():
            p_none = no_purchase_probability(a["c_lam"][keep], a["c_hazard"][keep], alive, horizon)
            frame[name] = p_none if name.startswith("p_churn") else 1.0 - p_none
        return frame

    # ---------------------------------------------------------------- one day
    def simulate_day(self, *, with_events: bool, n_stores: int) -> tuple[ChangeSet, list[dict]]:
        """Advance one day: the day's change set and (optionally) its Segment events."""
        day = self.next_day
        d = day_ordinal(day)
        rng = self._rng(day)
        a = self.a
        changes = ChangeSet()
        day_us = d * DAY_US

        if d % 30 == 0:  # a new month-long bucket of the rolling 12-month order counts starts empty
            a["c_year_orders"][:, (d // 30) % 12] = 0
        # New customers sign up.
        n_new = int(rng.poisson(self.meta["new_customers_per_day"]))
        new_ids = self._new_customers(rng, n_new, day, initial=False, n_stores=n_stores)
        changes.inserts["customers"] = self.customer_rows(new_ids, day_us + a["c_signup_us"][new_ids - 1])

        active = (a["c_signup"] <= d) & ~a["c_deleted"]
        alive = active & (a["c_lapse"] > d)
        q = 1.0 - np.exp(-a["c_lam"])
        buyers = np.flatnonzero(alive & (rng.random(alive.size) < q) & (a["c_signup"] < d))
        orders, lines = self._orders(rng, buyers, d, n_stores)
        changes.inserts["orders"] = orders
        changes.inserts["order_lines"] = lines
        self._schedule(rng, orders, lines, d)
        changes.inserts["returns"] = self._due_returns(d, day_us, rng)
        changes.update("orders", self._due_status(d, day_us, rng))
        self._profile_changes(rng, changes, active, d, day_us)
        self._catalogue_changes(rng, changes, lines, orders, d, day_us, n_stores)

        events = self._events(rng, day, alive, active, orders, lines) if with_events else []
        self.meta["next_day"] = (day + dt.timedelta(days=1)).isoformat()
        return changes, events

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
        ts = _ts(order_us)
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
        ts = _ts(day_us + rng.integers(9 * 3600, 20 * 3600, n).astype(np.int64) * 1_000_000)
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
            "updated_at": _ts(day_us + rng.integers(6 * 3600, 18 * 3600, n).astype(np.int64) * 1_000_000),
        })

    def _profile_changes(self, rng, changes: ChangeSet, active: np.ndarray, d: int, day_us: int) -> None:
        """Contact details and consents change, tiers move monthly, a few never-buyers delete accounts."""
        a = self.a
        n = active.size
        draw = rng.random(n)
        changed = active & (a["c_signup"] < d)
        email = changed & (draw < 0.0004)
        opt = changed & (draw >= 0.0004) & (draw < 0.0014)
        a["c_version"][email] += 1
        a["c_has_email"][email] = True
        a["c_email_opt"][opt] = ~a["c_email_opt"][opt]
        a["c_sms_opt"][opt] = a["c_sms_opt"][opt] | (rng.random(opt.sum()) < 0.3)
        touched = email | opt
        if EPOCH + dt.timedelta(days=d) == (EPOCH + dt.timedelta(days=d)).replace(day=1):
            tier = np.digitize(a["c_year_orders"].sum(axis=1), [3, 8, 15]).astype(np.int8)
            moved = changed & (tier != a["c_tier"])
            a["c_tier"][moved] = tier[moved]
            touched |= moved
        ids = np.flatnonzero(touched) + 1
        if ids.size:
            rows = self.customer_rows(ids, day_us + rng.integers(7 * 3600, 23 * 3600, ids.size) * 1_000_000)
            changes.update("customers", rows[["customer_id", "email", "phone", "email_opt_in", "sms_opt_in",
                                              "loyalty_tier", "updated_at"]])
        gone = changed & ~touched & (a["c_orders"] == 0) & (a["c_signup"] < d - 180) & (rng.random(n) < 0.0005)
        a["c_deleted"][gone] = True
        changes.deletes["customers"] = pd.DataFrame({"customer_id": np.flatnonzero(gone) + 1})

    def _catalogue_changes(self, rng, changes, lines, orders, d: int, day_us: int, n_stores: int) -> None:
        """Prices change, products launch and retire, stock moves with store sales and restocks."""
        a = self.a
        n_p = a["p_price"].size
        draw = rng.random(n_p)
        existing = a["p_active"] & (a["p_created"] < d)
        repriced = np.flatnonzero(existing & (draw < 0.003))
        retired = np.flatnonzero(existing & (draw >= 0.003) & (draw < 0.0035))
        a["p_price"][repriced] = np.round(a["p_price"][repriced] * rng.choice([0.8, 0.9, 1.1, 1.2], repriced.size), 2)
        a["p_active"][retired] = False
        changed = np.concatenate([repriced, retired])
        changes.update("products", pd.DataFrame({
            "product_id": changed + 1,
            "price": a["p_price"][changed],
            "active": a["p_active"][changed],
            "updated_at": _ts(day_us + rng.integers(6 * 3600, 8 * 3600, changed.size).astype(np.int64) * 1_000_000),
        }))

        store_of = dict(zip(orders["order_id"], orders["store_id"], strict=True))
        sold = lines.assign(store_id=lines["order_id"].map(store_of)).dropna(subset=["store_id"])
        sold = sold[~np.isin(sold["product_id"].to_numpy() - 1, retired)]
        sold = sold.groupby(["store_id", "product_id"], as_index=False)["quantity"].sum()
        s_idx = sold["store_id"].to_numpy(dtype=np.int64) - 1
        p_idx = sold["product_id"].to_numpy(dtype=np.int64) - 1
        stock = a["stock"]
        stock[s_idx, p_idx] -= sold["quantity"].to_numpy()
        low = stock[s_idx, p_idx] < 10
        stock[s_idx[low], p_idx[low]] += 60
        changes.update("inventory", pd.DataFrame({
            "store_id": s_idx + 1,
            "product_id": p_idx + 1,
            "on_hand": stock[s_idx, p_idx],
            "updated_at": _ts(day_us + 22 * 3600 * 1_000_000 + np.arange(s_idx.size, dtype=np.int64)),
        }))
        grid_s, grid_p = np.meshgrid(np.arange(n_stores), retired, indexing="ij")
        changes.deletes["inventory"] = pd.DataFrame({"store_id": grid_s.ravel() + 1, "product_id": grid_p.ravel() + 1})

        launched = self._launch(rng, int(rng.random() < 0.05), d, n_stores)
        changes.inserts["products"] = self.product_rows(launched, day_us + 5 * 3600 * 1_000_000)
        changes.inserts["inventory"] = self.inventory_rows(day_us + 5 * 3600 * 1_000_000, launched)

    def _launch(self, rng, n: int, d: int, n_stores: int) -> np.ndarray:
        a = self.a
        start = a["p_price"].size
        a["stock"] = np.concatenate([a["stock"], rng.integers(20, 120, (n_stores, n))], axis=1)
        category = rng.integers(0, len(CATEGORIES), n).astype(np.int16)
        a["p_category"] = np.concatenate([a["p_category"], category])
        a["p_price"] = np.concatenate([a["p_price"], np.round(rng.uniform(10, 120, n), 2) + 0.99])
        a["p_brand"] = np.concatenate([a["p_brand"], rng.integers(0, 6, n).astype(np.int16)])
        a["p_active"] = np.concatenate([a["p_active"], np.ones(n, dtype=bool)])
        a["p_created"] = np.concatenate([a["p_created"], np.full(n, d, dtype=np.int32)])
        return np.arange(start, start + n)

    def product_rows(self, idx: np.ndarray, ts_us) -> pd.DataFrame:
        a = self.a
        category = np.array(CATEGORIES)[a["p_category"][idx]]
        brand = pd.Series(category).str.title() + " Brand " + (a["p_brand"][idx] + 1).astype(str)
        return pd.DataFrame({
            "product_id": idx + 1,
            "sku": [f"SKU-{i + 1:07d}" for i in idx],
            "name": [f"{c.title()} item {i + 1}" for c, i in zip(category, idx, strict=True)],
            "category": category,
            "brand": brand.to_numpy(),
            "price": a["p_price"][idx],
            "active": a["p_active"][idx],
            "created_at": _ts(a["p_created"][idx].astype(np.int64) * DAY_US + 3600 * 1_000_000),
            "updated_at": _ts(np.broadcast_to(np.asarray(ts_us, dtype=np.int64), idx.shape)),
        })

    def store_rows(self, ts_us: int) -> pd.DataFrame:
        a = self.a
        n = a["s_region"].size
        ids = np.arange(1, n + 1)
        return pd.DataFrame({
            "store_id": ids,
            "name": [f"Store {i:03d}" for i in ids],
            "city": np.array(CITIES)[ids % len(CITIES)],
            "region": np.array(REGIONS)[a["s_region"]],
            "opened_date": pd.to_datetime(a["s_opened"], unit="D").date,
            "updated_at": _ts(np.full(n, ts_us, dtype=np.int64)),
        })

    def inventory_rows(self, ts_us: int, products: np.ndarray | None = None) -> pd.DataFrame:
        a = self.a
        products = np.flatnonzero(a["p_active"]) if products is None else products
        grid_s, grid_p = np.meshgrid(np.arange(a["stock"].shape[0]), products, indexing="ij")
        return pd.DataFrame({
            "store_id": grid_s.ravel() + 1,
            "product_id": grid_p.ravel() + 1,
            "on_hand": a["stock"][grid_s.ravel(), grid_p.ravel()],
            "updated_at": _ts(np.full(grid_s.size, ts_us, dtype=np.int64)),
        })

    # ---------------------------------------------------------------- Segment events
    def _events(self, rng, day, alive, active, orders, lines) -> list[dict]:
        """Browsing sessions (Segment e-commerce spec v2) plus the online orders' checkout sessions."""
        a = self.a
        n = alive.size
        rate = np.where(alive, a["c_browse"], 0.08 * a["c_browse"]) * active
        sessions = rng.poisson(rate)
        writer = EventWriter(day, rng, self.meta["seed"], self)
        for cust in np.repeat(np.arange(n), sessions):
            writer.browse_session(int(cust) + 1)
        for _ in range(int(rng.poisson(0.15 * max(1, int(sessions.sum()))))):
            writer.browse_session(None)
        online = orders[orders["channel"] != "store"]
        if len(online):
            by_order = dict(tuple(lines.groupby("order_id")))
            for order in online.itertuples(index=False):
                writer.checkout_session(order, by_order[order.order_id])
        return writer.events


def _ts(us) -> np.ndarray:
    """Microseconds since the epoch to datetime64[us]."""
    return np.asarray(us, dtype=np.int64).astype("datetime64[us]")


# -------------------------------------------------------------------- writing to the source DB
def _records(frame: pd.DataFrame) -> list[dict]:
    clean = frame.astype(object).where(frame.notna(), None)
    return clean.to_dict("records")


def _py(value):
    if isinstance(value, np.datetime64 | pd.Timestamp):
        return pd.Timestamp(value).to_pydatetime()
    if isinstance(value, np.generic):
        return value.item()
    return value


def apply_changes(conn: sa.Connection, changes: ChangeSet, day: dt.date) -> None:
    """Write a day's changes through SQL: inserts, then updates, then deletes, in table order."""
    for tbl in source.RETAIL_TABLES:
        frame = changes.inserts.get(tbl.name)
        if frame is not None and len(frame):
            conn.execute(tbl.insert(), [{k: _py(v) for k, v in r.items()} for r in _records(frame)])
    for tbl in source.RETAIL_TABLES:
        for frame in changes.updates.get(tbl.name, []):
            keys = PK[tbl.name]
            cols = [c for c in frame.columns if c not in keys]
            stmt = tbl.update().where(*[tbl.c[k] == sa.bindparam("k_" + k) for k in keys]).values(
                {c: sa.bindparam("v_" + c) for c in cols})
            rows = [{("k_" if k in keys else "v_") + k: _py(v) for k, v in r.items()} for r in _records(frame)]
            conn.execute(stmt, rows)
    source.set_clock(conn, dt.datetime.combine(day, dt.time(23, 30)))
    for tbl in source.RETAIL_TABLES:
        frame = changes.deletes.get(tbl.name)
        if frame is not None and len(frame):
            keys = PK[tbl.name]
            stmt = tbl.delete().where(*[tbl.c[k] == sa.bindparam("k_" + k) for k in keys])
            conn.execute(stmt, [{"k_" + k: _py(v) for k, v in r.items()} for r in _records(frame)])
    source.set_clock(conn, dt.datetime.combine(day + dt.timedelta(days=1), dt.time(0)))


class HistoryBuffer:
    """Accumulates history days in memory and resolves them into final table contents."""

    def __init__(self) -> None:
        self.inserts: dict[str, list[pd.DataFrame]] = {}
        self.updates: dict[str, list[pd.DataFrame]] = {}
        self.deletes: dict[str, list[pd.DataFrame]] = {}

    def add(self, changes: ChangeSet) -> None:
        for name, frame in changes.inserts.items():
            if len(frame):
                self.inserts.setdefault(name, []).append(frame)
        for name, frames in changes.updates.items():
            self.updates.setdefault(name, []).extend(frames)
        for name, frame in changes.deletes.items():
            if len(frame):
                self.deletes.setdefault(name, []).append(frame)

    def table(self, name: str, base: pd.DataFrame | None = None) -> pd.DataFrame:
        keys = PK[name]
        frames = ([base] if base is not None else []) + self.inserts.get(name, [])
        if not frames:
            return pd.DataFrame(columns=[c.name for c in source.table(name).columns])
        frame = pd.concat(frames, ignore_index=True)
        if name in self.updates:
            changed = pd.concat(self.updates[name], ignore_index=True).groupby(keys, sort=False).last()
            frame = frame.set_index(keys)
            for column in changed.columns:
                values = changed[column].dropna()
                if frame[column].dtype != values.dtype and values.dtype != object:
                    frame[column] = frame[column].astype(np.result_type(frame[column].dtype, values.dtype))
                frame.loc[values.index, column] = values.to_numpy()
            frame = frame.reset_index()
        if name in self.deletes:
            gone = pd.concat(self.deletes[name], ignore_index=True)
            marker = frame[keys].merge(gone.assign(_gone=True), on=keys, how="left")["_gone"].fillna(False)
            frame = frame[~marker.to_numpy(dtype=bool)]
        return frame[[c.name for c in source.table(name).columns]]


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

    def __init__(self, day: dt.date, rng: np.random.Generator, seed: int, retailer: Retailer):
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


# -------------------------------------------------------------------- the generator's commands
def state_path() -> ObjectStoragePath:
    from crosschannel import storage

    return storage.zone("generator", "state.npz")


def _source_engine() -> sa.Engine:
    from crosschannel.config import get_config

    return source.connect(get_config().source.sqlalchemy_url)


def _segment_logs() -> ObjectStoragePath:
    from crosschannel import storage
    from crosschannel.config import get_config

    return storage.location(get_config().segment.logs_url)


def _record_day(day: dt.date, retailer: Retailer, changes: ChangeSet, n_events: int) -> dict:
    """Keep the day's ground truth and change counts beside the generator state (never in the source DB)."""
    from crosschannel import storage

    folder = storage.zone("generator", "days", f"dt={day.isoformat()}")
    folder.mkdir(parents=True, exist_ok=True)
    with (folder / "truth.parquet").open("wb") as handle:
        retailer.truth(day).to_parquet(handle, index=False)
    summary = {"day": day.isoformat(), "changes": changes.counts(), "events": n_events}
    storage.write_json(folder / "changes.json", summary)
    return summary


def generate(settings: GeneratorSettings, *, force: bool = False) -> dict:
    """Build the retailer's history up to the day before the first partition and switch on change capture."""
    from crosschannel.config import get_config

    engine = _source_engine()
    with engine.connect() as conn:
        if not force and sa.inspect(conn).has_table("customers") and conn.execute(
            sa.select(sa.func.count()).select_from(source.customers)).scalar_one():
            raise RuntimeError(f"the source DB {engine.url!r} already holds customers: pass --force to rebuild it")
    source.metadata.drop_all(engine)
    source.create_schema(engine)

    retailer = Retailer.create(settings)
    first_day = retailer.next_day
    start = dt.date.fromisoformat(settings.start_partition)
    events_from = start - dt.timedelta(days=settings.event_history_days)
    initial = np.arange(1, retailer.meta["customers"] + 1)
    a = retailer.a
    opened_us = day_ordinal(first_day) * DAY_US
    base = {
        "stores": retailer.store_rows(opened_us),
        "products": retailer.product_rows(np.arange(a["p_price"].size), opened_us),
        "customers": retailer.customer_rows(initial, a["c_signup"][initial - 1].astype(np.int64) * DAY_US
                                            + a["c_signup_us"][initial - 1]),
        "inventory": retailer.inventory_rows(opened_us),
    }
    history = HistoryBuffer()
    logs = _segment_logs()
    n_events = 0
    while retailer.next_day < start:
        day = retailer.next_day
        changes, events = retailer.simulate_day(with_events=day >= events_from, n_stores=settings.stores)
        history.add(changes)
        if events:
            write_day(logs, get_config().segment.source_id, day, events)
            n_events += len(events)
    rows = {}
    with engine.begin() as conn:
        for tbl in source.RETAIL_TABLES:
            frame = history.table(tbl.name, base.get(tbl.name))
            rows[tbl.name] = source.bulk_insert(conn, tbl, frame)
        source.set_clock(conn, dt.datetime.combine(start, dt.time(0)))
    source.enable_cdc(engine)
    retailer.save(state_path())
    return {"first_day": first_day.isoformat(), "last_day": (start - dt.timedelta(days=1)).isoformat(),
            "rows": rows, "events": n_events}


def advance(days: int = 1, *, n_stores: int | None = None) -> list[dict]:
    """Simulate the next `days` days live: SQL changes through change capture, Segment files, ground truth."""
    from crosschannel.config import get_config

    cfg = get_config()
    retailer = Retailer.load(state_path())
    engine = _source_engine()
    logs = _segment_logs()
    stores = n_stores or int(retailer.a["s_region"].size)
    summaries = []
    for _ in range(days):
        day = retailer.next_day
        changes, events = retailer.simulate_day(with_events=True, n_stores=stores)
        with engine.begin() as conn:
            apply_changes(conn, changes, day)
        write_day(logs, cfg.segment.source_id, day, events)
        summaries.append(_record_day(day, retailer, changes, len(events)))
        retailer.save(state_path())
    return summaries
