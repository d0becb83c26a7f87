"""Training datasets: features and labels as of past days, split in time, as SageMaker CSV.

    <root>/ml/snapshots/dt=D/as_of=A/                features and labels as of past day A, from D's state
    <root>/ml/<model>/datasets/dt=D/<split>/         SageMaker CSV (label first, no header) + manifest.json

Temporal split: test on the latest as-of day whose label window is complete at D, validate on the one
`as_of_step_days` before, train on the `train_as_of_days` before that; a customer-day is in one split only.
Features of past as-of days come from D's current state (customer_features.sql only counts what happened
before the as-of day), so a profile attribute changed since (such as the loyalty tier) is not a model
feature by default.
"""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING

from crosschannel.core import paths, sagemaker, sqljobs, storage
from crosschannel.core.config import get_config
from crosschannel.core.errors import DataError
from crosschannel.stages.trusted import features

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

class ModelError(DataError, RuntimeError):
    """Training data or a model is unusable; the message names the model, partition and what is wrong."""


# ---------------------------------------------------------------- datasets
def split_days(day: dt.date, model: str) -> dict[str, list[dt.date]]:
    cfg = get_config().models
    spec = cfg.specs[model]
    step = dt.timedelta(days=cfg.as_of_step_days)
    test = day - dt.timedelta(days=spec.horizon_days)
    validation = test - step
    train = [validation - step * k for k in range(cfg.train_as_of_days, 0, -1)]
    return {"train": train, "validation": [validation], "test": [test]}


def plan_snapshots(day: dt.date) -> list[dict]:
    """One SQL job per as-of day any model needs: customer_features.sql as of that day over D's trusted state."""
    days = sorted({d for model in get_config().models.specs for days in split_days(day, model).values() for d in days})
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


def check_channel(model: str, split: str, data: pd.DataFrame) -> None:
    """A SageMaker training channel as train.py and the XGBoost image read it: the label first and 0 or 1
    (binary:logistic), every feature a finite number or empty (missing); infinities would be written as `inf`.
    Names the model, split, column and how many rows break it."""
    import numpy as np

    label, features = data.columns[0], data.columns[1:]
    problems = []
    bad = ~data[label].isin([0.0, 1.0])
    if bad.any():
        problems.append(f"label {label}: {int(bad.sum())} row(s) not 0 or 1 (e.g. {data[label][bad].head(3).tolist()})")
    infinite = {c: int(n) for c, n in np.isinf(data[features]).sum().items() if n}
    if infinite:
        problems.append(f"infinite values in {infinite}")
    if problems:
        raise ModelError(f"model {model}, {split} split: not a SageMaker training channel: {'; '.join(problems)} "
                         "(see include/sql/features/customer_features.sql)")


def build_datasets(day: dt.date) -> dict:
    """Per model: the three splits as SageMaker CSV with a manifest; the test rows also as Parquet (ids,
    as-of day, label and every feature) for evaluation."""
    cfg = get_config().models
    summary = {}
    for model, spec in cfg.specs.items():
        counts = {}
        with storage.committing(paths.dataset(model, day)) as staging:
            for split, days in split_days(day, model).items():
                frame = read_snapshots(day, days)
                if spec.label not in frame.columns:
                    raise ModelError(f"model {model}: label {spec.label!r} is not a column of customer_features.sql")
                frame = frame[frame[spec.label].notna()]
                positives = int(frame[spec.label].sum())
                if len(frame) < 50 or positives == 0 or positives == len(frame):
                    raise ModelError(f"model {model}, partition {day}: the {split} split (as of "
                                     f"{', '.join(map(str, days))}) has {len(frame)} rows and {positives} positives; "
                                     "it needs both classes")
                data = frame[[spec.label, *cfg.features]].astype("float64")
                check_channel(model, split, data)
                folder = staging / split
                folder.mkdir(parents=True, exist_ok=True)
                with (folder / "data.csv").open("wb") as handle:
                    sagemaker.write_csv(data, handle)
                manifest = {"model": model, "label": spec.label, "features": list(cfg.features), "split": split,
                            "as_of": [d.isoformat() for d in days], "rows": len(frame), "positives": positives,
                            "partition": day.isoformat()}
                storage.write_json(folder / "manifest.json", manifest)
                if split == "test":
                    with (staging / "test.parquet").open("wb") as handle:
                        frame.to_parquet(handle, index=False)
                counts[split] = {"rows": len(frame), "positives": positives, "as_of": manifest["as_of"]}
        summary[model] = counts
    return summary
