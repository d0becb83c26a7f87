"""The `readouts` section of the configuration (crosschannel.core.config.Config.readouts): campaign readouts'
horizons, confidence and power, the optional stakeholder digest, and the generator's planted campaign effect.

Its own module because config.py is at its size limit; it imports nothing of the bundle (config imports it).
"""

from __future__ import annotations

import math
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class SimulatedEffect(_Section):
    """The campaign effect the synthetic retailer plants (crosschannel.sim), so readouts have a known truth. A
    deployment's own data has none: these keys only matter to the generator and `make demo`."""

    # Per audience (a file of include/sql/audiences/), the relative change in a treatment member's daily purchase
    # rate for `days` days after a send: 0.5 = half as many purchases again; an audience not listed has none.
    hazard_change: dict[str, float] = {"cart_abandoners": 0.5, "high_value": 0.25, "in_market_category": 0.0,
                                       "repurchase_lookalike": 0.3, "win_back": 0.6}
    days: int = Field(14, ge=1, le=365)
    # `make demo` plants a send of every audience this many days before generator.start_partition (one per
    # horizon by default, so each horizon's readout is due on the demo's first day).
    planted_sends: tuple[int, ...] = (30, 14, 7)

    @field_validator("hazard_change")
    @classmethod
    def _rates_stay_positive(cls, value: dict[str, float]) -> dict[str, float]:
        for audience, change in value.items():
            if not math.isfinite(change) or change <= -1:
                raise ValueError(f"{audience}: {change} would make the purchase rate zero or negative "
                                 "(expected a finite number above -1)")
        return value

    @field_validator("planted_sends")
    @classmethod
    def _in_the_history(cls, value: tuple[int, ...]) -> tuple[int, ...]:
        if any(days < 1 for days in value):
            raise ValueError(f"{list(value)}: days before the start partition must be 1 or more")
        return tuple(sorted(set(value), reverse=True))


class Readouts(_Section):
    # For each audience and send day, treatment is compared with control once each horizon has passed.
    horizons_days: tuple[int, ...] = (7, 14, 30)
    confidence: float = Field(0.95, gt=0.5, lt=1)       # of every interval
    power: float = Field(0.8, gt=0.5, lt=1)             # a readout is flagged underpowered below this power
    min_relative_uplift: float = Field(0.1, gt=0)       # ... to detect this relative uplift in conversion
    digest: tuple[Literal["smtp", "slack", "sns"], ...] = ()  # the stakeholders' daily digest; none by default
    effect: SimulatedEffect = SimulatedEffect()

    @field_validator("horizons_days")
    @classmethod
    def _horizons(cls, value: tuple[int, ...]) -> tuple[int, ...]:
        if not value or any(days < 1 or days > 365 for days in value):
            raise ValueError(f"{list(value)}: expected one or more horizons of 1 to 365 days")
        return tuple(sorted(set(value)))
