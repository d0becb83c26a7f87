"""The campaign effect with known truth: a send changes its treatment members' purchase rate for a while.

When an audience is sent on day D, each of its *treatment* members buys at `lam * (1 + c)` instead of `lam` on
days D + 1 to D + `days` (c: `readouts.effect.hazard_change[<audience>]`, `days`: `readouts.effect.days`); control
members are never sent, so never changed. Campaigns of different audiences multiply; a second send of the same
audience while its effect lasts extends it and does not stack. Every treated member's send is kept in the
generator's state (the x_* arrays: day, last day of effect, change, audience, customer), never in the source DB.

The truth of a readout follows exactly from the latents: a customer buys on an eligible day t (signed up before t,
not lapsed, since the lapse day is pre-drawn) with probability 1 - exp(-lam m_t), m_t the day's product of
campaign factors. So for a treatment member, P(an order in days D+1..D+h) is 1 - exp(-lam sum_t m_t) as things
happened, and with the audience's campaign taken out, its m_t without the audience's factor. `campaign_truth` gives
their mean difference over the treatment members (the effect on the treated, which treatment minus control
estimates: the hold-out is a random half of nothing but the hash), relative and in expected orders.
"""

from __future__ import annotations

import datetime as dt

import numpy as np

from crosschannel.sim.timeline import day_ordinal
from crosschannel.stages.activation.audiences import is_control

LOG = {"x_day": np.int32, "x_until": np.int32, "x_change": np.float64, "x_aud": np.int16, "x_cust": np.int64}
PLANTED_SHARE = 0.15  # of the signed-up customers, the size of an audience the demo plants
PLANTED_RANKS = {"win_back": "p_churn_90d", "repurchase_lookalike": "p_repurchase_30d", "high_value": "c_lam"}


class CampaignMixin:
    """Retailer methods for the campaign effect: the sends log, the day's purchase-rate factors, the truth."""

    a: dict[str, np.ndarray]
    meta: dict

    def record_send(self, audience: str, day: dt.date, treated_ids: np.ndarray, change: float, days: int) -> None:
        """Treatment members (customer ids) of `audience` sent on `day` buy at (1 + change) times their rate on the
        `days` days after it."""
        if change == 0 or len(treated_ids) == 0:
            return
        names = self.meta.setdefault("campaign_audiences", [])
        if audience not in names:
            names.append(audience)
        n, d = len(treated_ids), day_ordinal(day)
        new = {"x_day": np.full(n, d), "x_until": np.full(n, d + days), "x_change": np.full(n, change),
               "x_aud": np.full(n, names.index(audience)), "x_cust": np.asarray(treated_ids) - 1}
        for key, kind in LOG.items():
            self.a[key] = np.concatenate([self.a.get(key, np.zeros(0, kind)), new[key].astype(kind)])

    def purchase_factor(self, d: int, *, without: str | None = None) -> np.ndarray:
        """Per customer, the factor on their purchase rate on day ordinal `d` (1 without a campaign); `without`
        leaves that audience's campaign out (its counterfactual)."""
        factor = np.ones(self.a["c_lam"].size)
        if "x_day" not in self.a:
            return factor
        a = self.a
        active = (a["x_day"] < d) & (a["x_until"] >= d)
        names = self.meta.get("campaign_audiences", [])
        if without is not None and without in names:
            active &= a["x_aud"] != names.index(without)
        if not active.any():
            return factor
        keys = a["x_aud"][active].astype(np.int64) * (1 << 40) + a["x_cust"][active]
        _, first = np.unique(keys, return_index=True)  # one factor per audience and customer: refreshes don't stack
        np.multiply.at(factor, a["x_cust"][active][first], 1.0 + a["x_change"][active][first])
        return factor

    def campaign_truth(self, audience: str, send_day: dt.date, horizon: int, treated_ids: np.ndarray) -> dict:
        """The true effect of `audience`'s campaign on its treatment members `treated_ids` of the send of `send_day`
        over days send_day + 1 .. + horizon: conversion (any order) and expected orders, with and without it."""
        a = self.a
        i = np.asarray(treated_ids, dtype=np.int64) - 1
        lam = a["c_lam"][i]
        exposure = {True: np.zeros(i.size), False: np.zeros(i.size)}
        orders = {True: np.zeros(i.size), False: np.zeros(i.size)}
        d0 = day_ordinal(send_day)
        for t in range(d0 + 1, d0 + horizon + 1):
            eligible = (a["c_signup"][i] < t) & (a["c_lapse"][i] > t)
            for sent in (True, False):
                rate = eligible * lam * self.purchase_factor(t, without=None if sent else audience)[i]
                exposure[sent] += rate
                orders[sent] += 1.0 - np.exp(-rate)
        p_sent, p_unsent = (1.0 - np.exp(-exposure[s]) for s in (True, False))
        if i.size == 0:
            return {"treated": 0, "uplift": None, "relative_uplift": None, "orders_uplift": None}
        base = float(p_unsent.mean())
        return {"treated": int(i.size), "conversion_sent": round(float(p_sent.mean()), 6),
                "conversion_unsent": round(base, 6), "uplift": round(float((p_sent - p_unsent).mean()), 6),
                "relative_uplift": round(float(p_sent.mean()) / base - 1, 6) if base > 0 else None,
                "orders_uplift": round(float((orders[True] - orders[False]).mean()), 6),
                "incremental_orders": round(float((orders[True] - orders[False]).sum()), 3)}

    def planted_members(self, audience: str, day: dt.date, holdout_percent: float) -> tuple[np.ndarray, np.ndarray]:
        """A send the demo plants in the history: PLANTED_SHARE of the customers signed up by `day`, those not lapsed
        highest in the audience's latent rank (churn or repurchase probability, purchase rate), or else a seeded
        random draw; and whether each is in control, by the activation stage's stable hash. Customer ids, is_control."""
        d = day_ordinal(day)
        eligible = np.flatnonzero((self.a["c_signup"] <= d) & ~self.a["c_deleted"])
        size = max(1, round(PLANTED_SHARE * eligible.size))
        rank = PLANTED_RANKS.get(audience)
        if rank is None:
            rng = np.random.default_rng([self.meta["seed"], d, sum(audience.encode())])
            chosen = rng.choice(eligible, size, replace=False)
        else:  # among the customers who have not lapsed: a lapsed one never buys again, sent or not
            alive = eligible[self.a["c_lapse"][eligible] > d]
            values = self.a[rank][alive] if rank in self.a else \
                self.truth(day).set_index("customer_id")[rank].reindex(alive + 1).to_numpy()
            chosen = alive[np.argsort(-values, kind="stable")[:size]]
        ids = np.sort(chosen) + 1
        return ids, np.array([is_control(audience, int(c), holdout_percent) for c in ids], dtype=bool)
