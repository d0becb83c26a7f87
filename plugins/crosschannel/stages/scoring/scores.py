"""Daily scoring with each model's champion: the transform's plans over the day's features, then the score gate.

    <root>/ml/<model>/scores/dt=D/input/     customer_id + the champion's features, CSV without header
    <root>/ml/<model>/scores/dt=D/output/    the transform's output: customer_id,probability,reason_1..3
    <root>/ml/<model>/scores/dt=D/scores/    the published scores (Parquet) once the gate passes
The gate: every customer of the day's features is scored exactly once, every probability is in [0, 1], and
the population stability index against the previous day's published scores stays under `models.psi_limit`.
PSI compares scores of the same model version only: on the first day of a new champion (a version that training
promoted, trained or baseline) it is not computed, and the gate result's `psi_note` says so (the scores moved by
design, not by drift); a baseline champion is kept across weekly refits (registry.fallback), so this happens only
when training really changes the champion.
Its result is kept in <root>/reports/dt=D/gates/scores_<model>.json.
"""

from __future__ import annotations

import datetime as dt
import logging
from typing import TYPE_CHECKING

from crosschannel.core import paths, sagemaker, sqljobs, storage
from crosschannel.core.config import get_config
from crosschannel.core.errors import DataError, MissingPartition
from crosschannel.stages.models.datasets import ModelError
from crosschannel.stages.models.metrics import stable_hash
from crosschannel.stages.models.registry import champion

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

log = logging.getLogger(__name__)
OUTPUTS = 1 + 3  # probability and three reasons, after the id (inference.py)


class ScoreGateFailed(DataError, RuntimeError):
    """The day's scores failed their gate; the message names the model, partition and every failed check."""


def plan_scoring(day: dt.date, run: str = "") -> list[dict]:
    """Per model: write the transform input from the day's features and the CreateModel / CreateTransformJob
    configs for its champion."""
    folder = paths.features(day)
    if not storage.is_committed(folder):
        raise MissingPartition(f"{storage.url_of(folder)}: no published features for {day}; run retail_trusted")
    frame = sqljobs.read_partition(folder).to_pandas()
    source_dir = sagemaker.upload_source_dir()
    plans = []
    for model in get_config().models.specs:
        card = champion(model)
        if card is None:
            raise ModelError(f"model {model} has no champion yet: run propensity_training first")
        names = card["features"]
        data = frame[["customer_id"]].join(frame[names].astype("float64"))
        with storage.committing(paths.scores(model, day, "input"), marker=False) as staging, \
                (staging / "part-00000.csv").open("wb") as handle:
            sagemaker.write_csv(data, handle)
        model_name = sagemaker.job_name(model, day, card["version"], run)
        plans.append({
            "model": model, "version": card["version"], "partition": day.isoformat(),
            "model_config": sagemaker.model_config(model_name, card["model_data"], source_dir),
            "transform_config": sagemaker.transform_config(
                sagemaker.job_name(model, day, "score"), model_name, storage.url_of(paths.scores(model, day, "input")),
                storage.url_of(paths.scores(model, day, "output")), len(names), OUTPUTS),
        })
    return plans


def read_output(model: str, day: dt.date) -> pd.DataFrame:
    import io

    import pandas as pd

    folder = paths.scores(model, day, "output")
    files = sorted(folder.glob("*.out")) if folder.exists() else []
    if not files:
        raise FileNotFoundError(f"{storage.url_of(folder)}: the batch transform of {model} for {day} left no output")
    names = ["customer_id", "probability", "reason_1", "reason_2", "reason_3"]
    return pd.concat([pd.read_csv(io.StringIO(f.read_text()), header=None, names=names) for f in files],
                     ignore_index=True)


PSI_DIGITS = 3  # scores are compared at this resolution: a point mass moving by less is no shift


def psi(previous: np.ndarray, current: np.ndarray, bins: int = 10) -> float:
    """Population stability index of current vs previous scores, on the previous scores' deciles; when a point
    mass fills more than a decile, on ten equal probability bands instead. Both are rounded to PSI_DIGITS first:
    a baseline champion gives large groups of customers one probability each (every one-time buyer observed as
    long), which moves a little each day; a decile edge that sits on such a mass would otherwise move it whole
    into the next bin (measured at 100,000 customers: PSI 1.37 between two days whose deciles agree to 3 digits)."""
    import numpy as np

    previous, current = np.round(previous, PSI_DIGITS), np.round(current, PSI_DIGITS)
    edges = np.unique(np.quantile(previous, np.linspace(0, 1, bins + 1)))
    if len(edges) < bins + 1:
        edges = np.linspace(0.0, 1.0, bins + 1)
    edges = np.concatenate([[-np.inf], edges[1:-1], [np.inf]])
    expected = np.histogram(previous, edges)[0] / len(previous)
    actual = np.histogram(current, edges)[0] / len(current)
    expected, actual = np.clip(expected, 1e-6, None), np.clip(actual, 1e-6, None)
    return float(np.sum((actual - expected) * np.log(actual / expected)))


def gate(model: str, day: dt.date, scores: pd.DataFrame, customers: pd.Series, version: str | None = None) -> dict:
    import numpy as np

    failures = []
    missing = set(customers) - set(scores["customer_id"])
    extra = set(scores["customer_id"]) - set(customers)
    if missing:
        failures.append(f"{len(missing)} customer(s) of the day's features not scored, e.g. {sorted(missing)[:5]}")
    if extra:
        failures.append(f"{len(extra)} scored id(s) not in the day's features, e.g. {sorted(extra)[:5]}")
    duplicated = scores["customer_id"][scores["customer_id"].duplicated()]
    if len(duplicated):
        failures.append(f"{len(duplicated)} customer(s) scored twice, e.g. {sorted(set(duplicated))[:5]}")
    p = scores["probability"].to_numpy(dtype="float64")
    bad = scores[~((p >= 0) & (p <= 1))]
    if len(bad):
        failures.append(f"{len(bad)} probability(ies) outside [0, 1] or missing, e.g. "
                        f"{bad[['customer_id', 'probability']].head(5).to_dict('records')}")
    previous_dir = paths.scores(model, day - dt.timedelta(days=1), "scores")
    stability, note = None, "no previous day's scores"
    limit = get_config().models.psi_limit
    previous = None
    if storage.is_committed(previous_dir) and len(p):
        previous = sqljobs.read_partition(previous_dir)
        names = previous.column_names
        before = set(previous.column("model_version").to_pylist()) if "model_version" in names else set()
        if version and before and before != {version}:
            note = (f"not compared: the previous day's scores are of {', '.join(sorted(before))} and the champion is "
                    f"now {version} (promoted by training); the drift check resumes against {version}'s own scores")
            previous = None
    if previous is not None:
        stability, note = psi(previous.column("probability").to_numpy(), np.nan_to_num(p)), None
        if stability > limit:
            failures.append(f"score distribution shifted: PSI {stability:.3f} vs the previous day's scores of "
                            f"{version or 'the champion'} is above models.psi_limit {limit}")
    if note:
        log.info("scores of %s for %s: PSI %s", model, day, note)
    result = {"suite": f"scores_{model}", "partition": day.isoformat(), "rows": len(scores), "model_version": version,
              "success": not failures, "failed_critical": failures, "psi": stability, "psi_limit": limit,
              "psi_note": note}
    storage.write_json(paths.gate_report(day, f"scores_{model}"), result)
    return result


def deciles(scores: pd.DataFrame, model: str) -> pd.Series:
    """1..10 by probability (10 = the highest), equal probabilities ranked by the stable hash of customer and
    model, so a tie (every one-time buyer alike, or a baseline champion's coarse scores) is cut at random but the
    same way every day, never by customer id."""
    import numpy as np
    import pandas as pd

    order = np.lexsort((stable_hash(scores["customer_id"], model), scores["probability"].to_numpy()))
    ranks = np.empty(len(scores), dtype="int64")
    ranks[order] = np.arange(len(scores))
    return pd.Series(ranks * 10 // max(len(scores), 1) + 1, index=scores.index)


def finalize(day: dt.date, plans: list[dict]) -> dict:
    """Deciles, reasons and model version for every customer; published per model only if its gate passes
    (a failing model raises after the others are checked; its previous partitions are untouched)."""
    import pyarrow as pa

    customers = sqljobs.read_partition(paths.features(day)).column("customer_id").to_pandas()
    summary, failed = {}, []
    for plan in plans:
        model, version = plan["model"], plan["version"]
        scores = read_output(model, day)
        result = gate(model, day, scores, customers, version)
        if not result["success"]:
            failed.append(f"scores of {model} (partition {day}):\n    " + "\n    ".join(result["failed_critical"]))
            continue
        scores["decile"] = deciles(scores, model)
        scores["model"] = model
        scores["model_version"] = version
        scores["partition"] = day.isoformat()
        scores = scores.sort_values("customer_id", kind="stable")
        sqljobs.write_partition(paths.scores(model, day, "scores"), pa.Table.from_pandas(scores, preserve_index=False))
        summary[model] = {"rows": len(scores), "version": version, "psi": result["psi"],
                          "mean_probability": float(scores["probability"].mean())}
    if failed:
        raise ScoreGateFailed("score gate failed:\n  " + "\n  ".join(failed))
    return {"partition": day.isoformat(), "models": summary}
