"""Treatment against control: the statistics of one campaign readout, from each group's sufficient statistics
(members, converters, and the sums and sums of squares of orders and revenue per member).

- Conversion (a member who ordered at least once in the window) is a proportion per group. The absolute uplift
  p_t - p_c has Newcombe's hybrid score interval (method 10 of Newcombe 1998: the Wilson score intervals of the
  two proportions combined), which keeps near-nominal coverage for small groups and rates near 0, where the Wald
  interval does not. The relative uplift p_t / p_c - 1 has the log risk-ratio (Katz) interval; none when a
  group has no converter.
- Orders and revenue per member are means. The uplift m_t - m_c has Welch's t interval (unequal variances,
  Welch-Satterthwaite degrees of freedom); the relative uplift m_t / m_c - 1 the delta method's normal interval.
- Incremental converters, orders and revenue: the absolute uplift times the treatment members (what the send
  added to the members who got it), the interval scaled alike.
- Power: the two-sided two-proportion z-test's power to detect a relative uplift of `min_relative_uplift` on the
  control's conversion rate (the pooled rate when the control has none) with these group sizes. Below the
  configured power the readout is `underpowered`: a result that is not significant then says little.
  `detectable_uplift` is the smallest absolute uplift the groups detect with that power.
- `significant`: the conversion uplift's interval excludes 0.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from statistics import NormalDist

METHODS = {
    "conversion": "Newcombe hybrid score interval (Wilson); relative: log risk ratio (Katz)",
    "per_member": "Welch t interval; relative: delta method",
    "power": "two-sided two-proportion z-test",
}
METRICS = ("orders", "revenue")


@dataclass(frozen=True)
class Group:
    """One arm of a send: its members and their outcomes in the window, summed."""

    members: int
    converters: int
    orders: float = 0.0
    orders_sq: float = 0.0
    revenue: float = 0.0
    revenue_sq: float = 0.0

    @classmethod
    def of(cls, row: Mapping) -> Group:
        return cls(**{name: row[name] for name in cls.__dataclass_fields__})

    def mean(self, metric: str) -> float:
        return getattr(self, metric) / self.members

    def variance(self, metric: str) -> float:
        """The sample variance of the metric per member (0 for a single member)."""
        if self.members < 2:
            return 0.0
        total, squares = getattr(self, metric), getattr(self, f"{metric}_sq")
        return max(0.0, (squares - total * total / self.members) / (self.members - 1))

    def figures(self) -> dict:
        rate = self.converters / self.members if self.members else None
        per_member = {f"{m}_per_member": _round(self.mean(m)) if self.members else None for m in METRICS}
        return {"members": self.members, "converters": self.converters, "conversion_rate": _round(rate),
                "orders": _round(self.orders), "revenue": _round(self.revenue), **per_member}


def z_value(confidence: float) -> float:
    return NormalDist().inv_cdf((1 + confidence) / 2)


def wilson(successes: int, n: int, z: float) -> tuple[float, float]:
    """The Wilson score interval of a proportion."""
    p = successes / n
    denominator = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denominator
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denominator
    return max(0.0, centre - half), min(1.0, centre + half)


def newcombe(x1: int, n1: int, x0: int, n0: int, z: float) -> tuple[float, float]:
    """Newcombe's hybrid score interval of p1 - p0."""
    p1, p0 = x1 / n1, x0 / n0
    (l1, u1), (l0, u0) = wilson(x1, n1, z), wilson(x0, n0, z)
    difference = p1 - p0
    return (difference - math.sqrt((p1 - l1) ** 2 + (u0 - p0) ** 2),
            difference + math.sqrt((u1 - p1) ** 2 + (p0 - l0) ** 2))


def bought_listed(treatment: Mapping | None, control: Mapping | None, confidence: float) -> dict | None:
    """"Bought a recommended item" for treatment against control: per group the members with a list and those who
    bought from it in the window, the rates, and the uplift with Newcombe's interval; None unless both groups had
    lists (the send day had no recommendations, or a group had no member with one)."""
    if not treatment or not control or not treatment.get("listed") or not control.get("listed"):
        return None
    groups = {arm: {"listed": int(row["listed"]), "bought": int(row["bought_listed"]),
                    "rate": _round(row["bought_listed"] / row["listed"])}
              for arm, row in (("treatment", treatment), ("control", control))}
    t, c = groups["treatment"], groups["control"]
    low, high = newcombe(t["bought"], t["listed"], c["bought"], c["listed"], z_value(confidence))
    uplift = t["bought"] / t["listed"] - c["bought"] / c["listed"]
    return {**groups, "uplift": _round(uplift), "interval": [_round(low), _round(high)],
            "significant": low > 0 or high < 0}


def risk_ratio(x1: int, n1: int, x0: int, n0: int, z: float) -> tuple[float, list[float]] | None:
    """p1 / p0 - 1 with the log risk-ratio interval; None when either group has no success."""
    if x1 == 0 or x0 == 0:
        return None
    ratio = (x1 / n1) / (x0 / n0)
    se = math.sqrt(1 / x1 - 1 / n1 + 1 / x0 - 1 / n0)
    return ratio - 1, [ratio * math.exp(-z * se) - 1, ratio * math.exp(z * se) - 1]


def welch(treatment: Group, control: Group, metric: str, confidence: float) -> tuple[float, list[float] | None]:
    """m_t - m_c with Welch's t interval (None with fewer than two members in a group)."""
    difference = treatment.mean(metric) - control.mean(metric)
    if treatment.members < 2 or control.members < 2:
        return difference, None
    a, b = treatment.variance(metric) / treatment.members, control.variance(metric) / control.members
    if a + b == 0:
        return difference, [difference, difference]
    df = (a + b) ** 2 / (a * a / (treatment.members - 1) + b * b / (control.members - 1))
    from scipy.stats import t

    half = float(t.ppf((1 + confidence) / 2, df)) * math.sqrt(a + b)
    return difference, [difference - half, difference + half]


def relative_mean(treatment: Group, control: Group, metric: str, z: float) -> tuple[float, list[float]] | None:
    """m_t / m_c - 1 with the delta method's interval; None when the control's mean is 0."""
    m1, m0 = treatment.mean(metric), control.mean(metric)
    if m0 <= 0:
        return None
    variance = (treatment.variance(metric) / (treatment.members * m0 * m0)
                + m1 * m1 * control.variance(metric) / (control.members * m0**4))
    half = z * math.sqrt(variance)
    return m1 / m0 - 1, [m1 / m0 - 1 - half, m1 / m0 - 1 + half]


def power(p0: float, uplift: float, n1: int, n0: int, confidence: float) -> float:
    """The two-sided two-proportion z-test's power to detect `uplift` over a rate of p0."""
    p1 = min(1.0, max(0.0, p0 + uplift))
    uplift = p1 - p0  # a rate cannot pass 0 or 1: an uplift beyond that cannot be detected
    pooled = (n1 * p1 + n0 * p0) / (n1 + n0)
    se0 = math.sqrt(pooled * (1 - pooled) * (1 / n1 + 1 / n0))
    se1 = math.sqrt(p1 * (1 - p1) / n1 + p0 * (1 - p0) / n0)
    if uplift == 0 or se1 == 0:
        return 1 - confidence if uplift == 0 else 1.0
    z, normal = z_value(confidence), NormalDist()
    return normal.cdf((abs(uplift) - z * se0) / se1) + normal.cdf((-abs(uplift) - z * se0) / se1)


def detectable_uplift(p0: float, n1: int, n0: int, confidence: float, target_power: float) -> float | None:
    """The smallest absolute uplift over p0 that the groups detect with `target_power` (None: not even p0 -> 1)."""
    low, high = 0.0, 1.0 - p0
    if high <= 0 or power(p0, high, n1, n0, confidence) < target_power:
        return None
    for _ in range(60):  # power grows with the uplift: bisect
        middle = (low + high) / 2
        low, high = (middle, high) if power(p0, middle, n1, n0, confidence) < target_power else (low, middle)
    return high


def readout(treatment: Group, control: Group, *, confidence: float, target_power: float,
            min_relative_uplift: float) -> dict:
    """Treatment against control: conversion, orders and revenue per member, uplifts with their intervals,
    incremental figures and the power check (the module docstring says how each is computed)."""
    result = {"treatment": treatment.figures(), "control": control.figures(), "confidence": confidence,
              "methods": METHODS}
    if not treatment.members or not control.members:
        empty = "treatment" if not treatment.members else "control"
        return {**result, "status": f"no {empty} members", "significant": False, "underpowered": True}
    z = z_value(confidence)
    p1, p0 = treatment.converters / treatment.members, control.converters / control.members
    interval = newcombe(treatment.converters, treatment.members, control.converters, control.members, z)
    relative = risk_ratio(treatment.converters, treatment.members, control.converters, control.members, z)
    result["conversion"] = _uplift(p1 - p0, list(interval), relative)
    incremental = {"converters": _scaled(p1 - p0, list(interval), treatment.members)}
    for metric in METRICS:
        difference, bounds = welch(treatment, control, metric, confidence)
        result[f"{metric}_per_member"] = _uplift(difference, bounds, relative_mean(treatment, control, metric, z))
        incremental[metric] = _scaled(difference, bounds, treatment.members)
    result["incremental"] = incremental
    base = p0 or (treatment.converters + control.converters) / (treatment.members + control.members)
    minimum = base * min_relative_uplift
    achieved = power(base, minimum, treatment.members, control.members, confidence) if minimum > 0 else 0.0
    detectable = detectable_uplift(base, treatment.members, control.members, confidence, target_power)
    result["power"] = {"baseline_rate": _round(base), "min_relative_uplift": min_relative_uplift,
                       "min_uplift": _round(minimum), "power": _round(achieved), "target": target_power,
                       "detectable_uplift": _round(detectable)}
    return {**result, "status": "ok", "significant": not interval[0] <= 0 <= interval[1],
            "underpowered": achieved < target_power}


def _uplift(estimate: float, interval: list[float] | None, relative: tuple[float, list[float]] | None) -> dict:
    return {"uplift": _round(estimate), "interval": _round(interval),
            "relative_uplift": _round(relative[0]) if relative else None,
            "relative_interval": _round(relative[1]) if relative else None}


def _scaled(estimate: float, interval: list[float] | None, members: int) -> dict:
    return {"estimate": _round(estimate * members),
            "interval": _round([bound * members for bound in interval]) if interval else None}


def _round(value, digits: int = 6):
    if value is None:
        return None
    if isinstance(value, list):
        return [_round(v, digits) for v in value]
    return round(float(value), digits)
