"""propensity_scoring's tasks, one function per task id, the same on both targets."""

from __future__ import annotations

import datetime as dt

from crosschannel.stages.scoring import scores


def plan_scoring(day: dt.date) -> list[dict]:
    """Each model's champion and the SQL job writing its transform input from the day's features."""
    return scores.plan_scoring(day)


def plan_transforms(day: dt.date, plans: list[dict], run: str) -> list[dict]:
    """Each model's CreateModel / CreateTransformJob configs over its committed input."""
    return scores.plan_transforms(day, plans, run)


def plan_score_gate(day: dt.date, transforms: list[dict]) -> list[dict]:
    """The SQL jobs over each transform's output: the candidate scores with deciles and the gate's checks."""
    return scores.plan_score_gate(day, transforms)


def gate_scores(day: dt.date, transforms: list[dict]) -> dict:
    """Judge each model's checks and publish its candidate scores if they pass."""
    return scores.gate_scores(day, transforms)
