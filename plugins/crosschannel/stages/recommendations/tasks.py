"""propensity_training's recommender tasks, one function per task id, the same on both targets (the training itself
is crosschannel.wiring.steps.train_solution: Personalize on aws, `solutions.run_local` on local)."""

from __future__ import annotations

import datetime as dt

from crosschannel.stages.recommendations import solutions


def plan_solutions(day: dt.date, run: str, backfill: bool) -> list[dict]:
    """One training plan per recipe: CreateSolution, CreateFilter and CreateSolutionVersion, validated (none from a
    backfill)."""
    return solutions.plan(day, run, backfill=backfill)


def register_solutions(day: dt.date, trained: list[dict]) -> dict:
    """Register each trained version with its card; promote it unless it is worse than the champion."""
    return solutions.register(day, [trained[i] for i in range(len(trained))])  # iterating asks one past the end
