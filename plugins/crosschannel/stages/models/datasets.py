"""Training datasets: features and labels as of past days, split in time, as SageMaker CSV.

    <root>/ml/snapshots/dt=D/as_of=A/                features and labels as of past day A, from D's state
    <root>/ml/<model>/datasets/dt=D/<split>/         SageMaker CSV (label first, no header) + manifest.json
    <root>/ml/<model>/datasets/dt=D/summary/         per split: rows, positives, bad labels, infinite values
Both are SQL jobs over the snapshots (include/sql/models/), so on aws the rows stay in Glue and S3; the worker
reads the summaries only.

Temporal split without overlap (the `separate` layout): test on the latest as-of day whose label window is
complete at D, validate on the day one horizon before it, train on the `train_as_of_days` (`as_of_step_days` apart)
ending one horizon before validation: every row's label window ends by the next split's as-of day, so no label
looks into the days a later split is judged on. That needs three horizons of history, plus
`models.min_history_days` before the earliest as-of day so its rows have a past to describe. Every as-of day
needs that much order history (from the first order in D's customer 360): training days without it are dropped,
and when no training day of the separate layout has it, the `stepped` layout stands in (validation
`as_of_step_days` before test, training days that far apart before it: label windows overlap the later splits'
periods, so the test AUC is somewhat optimistic), and the manifests, card and report say which and why. When
not even that fits, training fails with a message naming the history it needs.
Features of past as-of days come from D's current state (customer_features.sql only counts what happened
before the as-of day), so a profile attribute changed since (such as the loyalty tier) is not a model
feature by default.
"""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING

from crosschannel.core import engines, paths, sqljobs, storage
from crosschannel.core.config import get_config
from crosschannel.core.errors import DataError
from crosschannel.stages.trusted import features

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

# BG/NBD's summary of a customer in features/customer: purchase days, days since the last, days observed
BGNBD_INPUTS = {"frequency": "order_days_lifetime", "recency": "recency_days", "age": "observed_days"}


class ModelError(DataError, RuntimeError):
    """Training data or a model is unusable; the message names the model, partition and what is wrong."""


# ---------------------------------------------------------------- datasets
def history_start(day: dt.date) -> dt.date | None:
    """The first day of order history in D's state (the earliest first order of its customer 360); None when D's
    customer 360 is not published (a dry run) or holds no order."""
    folder = paths.trusted("customer_360", day)
    if not storage.is_committed(folder):
        return None
    first = sqljobs.column_min(folder, "first_order_ts")
    return None if first is None else first.date()


def split_layout(day: dt.date, model: str, start: dt.date | None) -> tuple[dict[str, list[dt.date]], dict]:
    """The as-of days of each split and how they were laid out: {"layout": "separate" | "stepped", "reason",
    "history_start"}. `start`: the first day of order history (None: enough history assumed)."""
    cfg = get_config().models
    step, horizon = dt.timedelta(days=cfg.as_of_step_days), dt.timedelta(days=cfg.specs[model].horizon_days)
    test = day - horizon
    layouts = {"separate": (test - horizon, test - 2 * horizon), "stepped": (test - step, test - 2 * step)}
    earliest = None if start is None else start + dt.timedelta(days=cfg.min_history_days)
    for layout, (validation, last_train) in layouts.items():
        wanted = [last_train - step * k for k in range(cfg.train_as_of_days - 1, -1, -1)]
        train = [d for d in wanted if earliest is None or d >= earliest]
        if train:
            days = {"train": train, "validation": [validation], "test": [test]}
            reason = ("every label window ends by the next split's as-of day" if layout == "separate" else
                      f"the order history from {start} is too short for the separate layout (its latest training "
                      f"as-of day, {layouts['separate'][1]}, has less than models.min_history_days="
                      f"{cfg.min_history_days} days of history): training and validation label windows overlap the "
                      "test period, so the test AUC is somewhat optimistic")
            if len(train) < len(wanted):
                reason += (f"; {len(wanted) - len(train)} of {len(wanted)} training as-of days dropped: less than "
                           f"{cfg.min_history_days} days of history since {start}")
            return days, {"layout": layout, "reason": reason, "history_start": start and start.isoformat()}
    raise ModelError(f"model {model}, partition {day}: the order history from {start} is too short: the test as-of "
                     f"day {test} needs training days from {earliest} on, each at least {cfg.min_history_days} "
                     "days (models.min_history_days) after the first order and before the validation day; load "
                     "more history (sim: generator.history_days) or lower models.min_history_days")


def split_days(day: dt.date, model: str, start: dt.date | None = None) -> dict[str, list[dt.date]]:
    return split_layout(day, model, start)[0]


def plan_snapshots(day: dt.date) -> list[dict]:
    """One SQL job per as-of day any model needs: customer_features.sql as of that day over D's trusted state."""
    start = history_start(day)
    days = sorted({d for model in get_config().models.specs for days in split_days(day, model, start).values()
                   for d in days})
    return [sqljobs.job(day, f"customer_features_as_of_{as_of}.sql", features.features_sql(as_of, day),
                        features.inputs(day, features.FEATURE_INPUTS, as_of), paths.snapshot(day, as_of))
            for as_of in days]


def read_snapshots(day: dt.date, days: list[dt.date]) -> pd.DataFrame:
    import pandas as pd

    frames = []
    for as_of in days:
        folder = paths.snapshot(day, as_of)
        if not storage.is_committed(folder):
            raise ModelError(f"{storage.url_of(folder)}: the features as of {as_of} were not computed")
        frames.append(sqljobs.read_partition(folder).to_pandas())
    return pd.concat(frames, ignore_index=True)


def matrix(frame: pd.DataFrame, columns: list[str]) -> np.ndarray:
    missing = [f for f in columns if f not in frame.columns]
    if missing:
        raise ModelError(f"features {missing} are not columns of features/customer (see models.features)")
    return frame[columns].astype("float64").to_numpy()


SPLITS = ("train", "validation", "test")


def plan_datasets(day: dt.date) -> list[dict]:
    """Per model, SQL jobs over the feature snapshots (the data never passes through the worker): each split as
    its SageMaker channel (CSV, label first, with the manifest train.py reads the feature names from) and a
    summary of the splits (include/sql/models/training_summary.sql) that `check_datasets` judges."""
    cfg = get_config().models
    features, skipped = get_config().features()
    start = history_start(day)
    plans = []
    for model, spec in cfg.specs.items():
        days, layout = split_layout(day, model, start)
        views = {split: sqljobs.parquet([paths.snapshot(day, as_of) for as_of in days[split]]) for split in SPLITS}
        sql = engines.render("models/training_rows.sql", label=spec.label, features=features)  # every split's
        for split in SPLITS:
            manifest = {"model": model, "label": spec.label, "features": features, "split": split,
                        "as_of": [d.isoformat() for d in days[split]], "partition": day.isoformat(),
                        "layout": layout, "features_skipped": skipped}
            if set(BGNBD_INPUTS.values()) <= set(features):  # train.py derives the BG/NBD features
                manifest["bgnbd"] = {"inputs": BGNBD_INPUTS, "horizon_days": spec.horizon_days}
            plans.append(sqljobs.job(day, f"{model}_{split}_rows.sql", sql, {"snapshots": views[split]},
                                     paths.dataset(model, day) / split, output_format="csv", manifest=manifest))
        sql = engines.render("models/training_summary.sql", label=spec.label, features=features, splits=SPLITS)
        plans.append(sqljobs.job(day, f"{model}_training_summary.sql", sql, views,
                                 paths.dataset(model, day) / "summary"))
    return plans


def manifests(model: str, day: dt.date) -> dict[str, dict]:
    """Each split's channel manifest (model, label, features, as-of days, layout) with its rows and positives
    from the summary job."""
    base = paths.dataset(model, day)
    found = {}
    for row in sqljobs.read_partition(base / "summary").to_pylist():
        manifest = storage.read_json(storage.resolve(base / row["split"]) / "manifest.json")
        found[row["split"]] = {**manifest, "rows": row["row_count"], "positives": row["positives"], "summary": row}
    return {split: found[split] for split in SPLITS if split in found}


def check_datasets(day: dt.date) -> dict:
    """Judge each model's splits by their summary: both classes and at least 50 rows, labels 0 or 1, no infinite
    feature (a SageMaker channel as train.py and the XGBoost image read it); names the model, split and column.
    Every split must be what this run planned (its as-of days and features): a split another run of the partition
    wrote (a retry of one mapped job after the plan changed) is refused, not mixed in.
    Returns per model each split's rows, positives and as-of days, and the layout."""
    summary, start = {}, history_start(day)
    features, _ = get_config().features()
    for model in get_config().models.specs:
        counts, described = {}, manifests(model, day)
        planned, _ = split_layout(day, model, start)
        for split in SPLITS:
            manifest = described.get(split)
            wanted = [d.isoformat() for d in planned[split]]
            if manifest is None or manifest["as_of"] != wanted or manifest["features"] != features:
                held = "no summary" if manifest is None else (f"as-of days {manifest['as_of']} and "
                                                               f"{len(manifest['features'])} features")
                raise ModelError(f"model {model}, partition {day}: the {split} split holds {held}, this run planned "
                                 f"as-of days {wanted} and {len(features)} features: it was written by another run "
                                 f"({storage.url_of(paths.dataset(model, day) / split)}); run plan_datasets and "
                                 "build_dataset again")
            rows, positives, found = manifest["rows"], manifest["positives"], manifest["summary"]
            if rows < 50 or positives == 0 or positives == rows:
                raise ModelError(f"model {model}, partition {day}: the {split} split (as of "
                                 f"{', '.join(manifest['as_of'])}) has {rows} rows and {positives} positives; "
                                 "it needs both classes")
            problems = []
            if found["bad_labels"]:
                problems.append(f"label {manifest['label']}: {found['bad_labels']} row(s) not 0 or 1 (from "
                                f"{found['bad_label_min']} to {found['bad_label_max']})")
            infinite = {f: found[f"infinite_{i}"] for i, f in enumerate(manifest["features"]) if found[f"infinite_{i}"]}
            if infinite:
                problems.append(f"infinite values in {infinite}")
            if problems:
                raise ModelError(f"model {model}, {split} split: not a SageMaker training channel: "
                                 f"{'; '.join(problems)} (see include/sql/trusted/customer_features.sql)")
            counts[split] = {"rows": rows, "positives": positives, "as_of": manifest["as_of"]}
        skipped = described["train"]["features_skipped"]
        summary[model] = {**counts, "layout": described["train"]["layout"]["layout"],
                          **({"features_skipped": skipped} if skipped else {})}
    return summary


def test_rows(model: str, day: dt.date, described: dict[str, dict] | None = None) -> pd.DataFrame:
    """The test split's rows with every column of the snapshots (ids, as-of day, label, features), in the
    channel's order: what the evaluation scores. `described`: the model's `manifests`, when already read."""
    label = get_config().models.specs[model].label
    days = [dt.date.fromisoformat(d) for d in (described or manifests(model, day))["test"]["as_of"]]
    frame = read_snapshots(day, days)
    return frame[frame[label].notna()].reset_index(drop=True)
