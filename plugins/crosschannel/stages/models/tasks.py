"""propensity_training's tasks, one function per task id, the same on both targets."""

from __future__ import annotations

import datetime as dt

from crosschannel.core.config import get_config
from crosschannel.stages.models import datasets, jobs, registry


def plan_snapshots(day: dt.date) -> list[dict]:
    """One features job per as-of day of the temporal split, over the partition's trusted state."""
    return datasets.plan_snapshots(day)


def plan_datasets(day: dt.date) -> list[dict]:
    """Per model, SQL jobs writing the train / validation / test channels (CSV, label first, no header, with a
    feature manifest) and a summary of them."""
    return datasets.plan_datasets(day)


def check_datasets(day: dt.date) -> dict:
    """Each model's splits judged by their summaries (both classes, labels 0 or 1, finite features)."""
    return datasets.check_datasets(day)


def plan_tuning(day: dt.date, run: str) -> list[dict]:
    """CreateHyperParameterTuningJob configs, one per model."""
    return jobs.plan_tuning(day, run=run)


def plan_training(day: dt.date, tuning: list[dict], run: str) -> list[dict]:
    """CreateTrainingJob configs with each model's best tuned hyperparameters."""
    return jobs.plan_final_training(day, tuning, run=run)


def evaluate_models(day: dt.date, trained) -> dict:
    """Evaluate every challenger against the baseline and the champion; register and maybe promote it.
    `trained`: what each mapped train_model task returned, in the order of `models.specs`."""
    names = list(get_config().models.specs)
    results = [trained[i] for i in range(len(names))]  # by index: iterating asks for one past the end (a 404)
    return {model: registry.evaluate_and_promote(day, model, jobs.artifact_of(result))
            for model, result in zip(names, results, strict=True)}
