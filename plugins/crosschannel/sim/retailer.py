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
events. Everything is drawn from numpy generators seeded with (seed, day), so a seed gives the same retailer
however the days are split across runs.

A sent audience's treatment members buy at a changed rate for a while (`campaigns.py`: the campaign effect and
its exact truth); `truth(day)`, the models' oracle, ignores it.

This module holds the customers and the day's loop; orders (`orders.py`), the catalogue (`catalogue.py`),
campaigns (`campaigns.py`) and the Segment sessions (`events.py`) are mixed in or called from here.
"""

from __future__ import annotations

import datetime as dt
import io
import json
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from crosschannel.sim.campaigns import CampaignMixin
from crosschannel.sim.catalogue import CATEGORIES, REGIONS, CatalogueMixin
from crosschannel.sim.changes import ChangeSet
from crosschannel.sim.events import EventWriter
from crosschannel.sim.orders import OrdersMixin
from crosschannel.sim.timeline import DAY_US, EPOCH, day_ordinal, timestamps

if TYPE_CHECKING:
    from airflow.sdk import ObjectStoragePath

    from crosschannel.core.config import Generator as GeneratorSettings

TIERS = ("none", "silver", "gold", "platinum")
FIRST = ("Ava", "Ben", "Chloe", "Dan", "Ella", "Finn", "Grace", "Hugo", "Ivy", "Jack", "Kira", "Liam",
         "Maya", "Noah", "Olga", "Paul", "Quinn", "Rosa", "Sam", "Tara", "Uma", "Victor", "Wendy", "Yara")
LAST = ("Adams", "Baker", "Clark", "Diaz", "Evans", "Fox", "Garcia", "Hill", "Ito", "Jones", "Khan", "Lopez",
        "Moore", "Nguyen", "Ortiz", "Patel", "Reed", "Smith", "Turner", "Usman", "Vega", "Wong", "Young")
TRUTH_HORIZONS = {"p_churn_90d": 90, "p_repurchase_30d": 30}


def no_purchase_probability(lam: np.ndarray, hazard: np.ndarray, alive: np.ndarray, days: int) -> np.ndarray:
    """P(no purchase in the next `days` days) given the latent state (see the module docstring)."""
    sr = (1.0 - hazard) * np.exp(-lam)
    stay = sr**days
    geometric = np.where(np.isclose(sr, 1.0), days, (1.0 - stay) / np.where(sr == 1.0, 0.5, 1.0 - sr))
    return np.where(alive, hazard * geometric + stay, 1.0)


class Retailer(OrdersMixin, CatalogueMixin, CampaignMixin):
    """The simulated retailer's state: latents per customer, catalogue, stock, pending work, id counters.

    The order and catalogue methods come from `OrdersMixin` (orders.py) and `CatalogueMixin` (catalogue.py), the
    campaign effect of sent audiences (and its truth) from `CampaignMixin` (campaigns.py).
    """

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
            "updated_at": timestamps(ts_us),
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
        q = 1.0 - np.exp(-a["c_lam"] * self.purchase_factor(d))  # a sent audience's treatment members: campaigns.py
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
