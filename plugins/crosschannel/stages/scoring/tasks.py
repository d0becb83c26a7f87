"""propensity_scoring's tasks, one function per task id, the same on both targets."""

from __future__ import annotations

import datetime as dt

from crosschannel.stages.scoring import scores


def plan_scoring(day: dt.date, run: str) -> list[dict]:
    """Write each model's transform input and its CreateModel / CreateTransformJob configs."""
    return scores.plan_scoring(day, run=run)


def gate_scores(day: dt.date, plans: list[dict]) -> dict:
    """Check and publish the day's scores with deciles, reasons and model version."""
    return scores.finalize(day, plans)
