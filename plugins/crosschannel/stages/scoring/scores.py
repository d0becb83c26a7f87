"""Daily scoring with each model's champion: SQL jobs around the batch transform, then the score gate.

    <root>/ml/<model>/scores/dt=D/input/       customer_id + the champion's features, CSV without header (a SQL job)
    <root>/ml/<model>/scores/dt=D/output/<v>/  the transform's output of input version <v>: customer_id,
                                               probability, reason_1..3
    <root>/ml/<model>/scores/dt=D/candidate/   the scores with their deciles (a SQL job,
                                               include/sql/scoring/scores.sql), copied to scores/ once the gate
                                               passes (and kept: a retried gate copies it again)
    <root>/ml/<model>/scores/dt=D/checks/      what the gate judges (a SQL job, include/sql/scoring/checks.sql)
    <root>/ml/<model>/scores/dt=D/scores/      the published scores (Parquet): the candidate, once the gate passes
Every step that touches a row is a SQL job (DuckDB locally, the generic Glue job on aws) or the transform itself:
the worker writes plans and reads the checks, a few rows per model.
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

from crosschannel.core import engines, paths, sagemaker, sqljobs, storage
from crosschannel.core.config import get_config
from crosschannel.core.errors import DataError, MissingPartition
from crosschannel.stages.models.datasets import ModelError
from crosschannel.stages.models.registry import champion

if TYPE_CHECKING:
    import numpy as np
    from airflow.sdk import ObjectStoragePath

log = logging.getLogger(__name__)
OUTPUTS = 1 + 3  # probability and three reasons, after the id (inference.py)
OUTPUT_SCHEMA = "customer_id BIGINT, probability DOUBLE, reason_1 STRING, reason_2 STRING, reason_3 STRING"
PREVIOUS_SCHEMA = "probability DOUBLE, model_version STRING"


class ScoreGateFailed(DataError, RuntimeError):
    """The day's scores failed their gate; the message names the model, partition and every failed check."""


def plan_scoring(day: dt.date) -> list[dict]:
    """Per model: its champion (version, artifact, features) and the SQL job writing its transform input from the
    day's features."""
    folder = paths.features(day)
    if not storage.is_committed(folder):
        raise MissingPartition(f"{storage.url_of(folder)}: no published features for {day}; run retail_trusted")
    plans = []
    for model in get_config().models.specs:
        card = champion(model)
        if card is None:
            raise ModelError(f"model {model} has no champion yet: run propensity_training first")
        names = card["features"]
        sql = engines.render("scoring/input.sql", features=names)
        features = sqljobs.parquet([folder])  # the version every job of the run reads
        plans.append({
            "model": model, "version": card["version"], "model_data": card["model_data"], "features": names,
            "partition": day.isoformat(), "features_input": features,
            "job": sqljobs.job(day, f"scoring_input_{model}.sql", sql, {"features": features},
                               paths.scores(model, day, "input"), output_format="csv"),
        })
    return plans


def plan_transforms(day: dt.date, plans: list[dict], run: str = "") -> list[dict]:
    """Per model: the CreateModel and CreateTransformJob configs over the input its SQL job committed, into an
    output folder of that input version's own (a re-run never mixes in an earlier run's output files)."""
    source_dir = sagemaker.upload_source_dir()
    planned = []
    for plan in plans:
        model = plan["model"]
        given = paths.scores(model, day, "input")
        if not storage.is_committed(given):
            raise MissingPartition(f"{storage.url_of(given)}: the transform input of {model} was not written")
        version = storage.version_of(given)
        model_name = sagemaker.job_name(model, day, plan["version"], run)
        planned.append({
            **{k: v for k, v in plan.items() if k != "job"},
            "model_config": sagemaker.model_config(model_name, plan["model_data"], source_dir),
            "transform_config": sagemaker.transform_config(
                # trailing slashes: an S3Prefix matches keys by prefix, and `_v1` is a prefix of `_v12`
                sagemaker.job_name(model, day, "score"), model_name, storage.url_of(storage.resolve(given)) + "/",
                storage.url_of(output_folder(model, day, version)) + "/", len(plan["features"]), OUTPUTS),
        })
    return planned


def output_folder(model: str, day: dt.date, version: str | None):
    """Where the transform of input version `version` writes: <root>/ml/<model>/scores/dt=D/output/<version>/."""
    return paths.scores(model, day, "output") / (version or "unversioned")


def plan_score_gate(day: dt.date, transforms: list[dict]) -> list[dict]:
    """Per model, two SQL jobs over the transform's output files: the candidate scores with deciles, and the
    checks the gate reads."""
    jobs = []
    for plan in transforms:
        model = plan["model"]
        folder = storage.location(plan["transform_config"]["TransformOutput"]["S3OutputPath"])
        files = sorted(folder.glob("*.out")) if folder.exists() else []
        if not files:
            raise FileNotFoundError(f"{storage.url_of(folder)}: the batch transform of {model} for {day} left no "
                                    "output")
        scored = {"format": "csv", "paths": [storage.url_of(f) for f in files], "schema": OUTPUT_SCHEMA}
        previous_day = paths.scores(model, day - dt.timedelta(days=1), "scores")
        previous = {"format": "parquet", "paths": [], "schema": PREVIOUS_SCHEMA}  # none: no drift check
        if _unversioned(previous_day):
            log.warning("scores of %s for %s: the previous day's scores carry no model_version; not drift-checked "
                        "against them", model, day)
        elif storage.is_committed(previous_day):
            previous = sqljobs.parquet([previous_day])
        scores_sql = engines.render("scoring/scores.sql", model=model, version=plan["version"],
                                    partition=day.isoformat())
        jobs += [sqljobs.job(day, f"scores_{model}.sql", scores_sql, {"scored": scored},
                             paths.scores(model, day, "candidate")),
                 sqljobs.job(day, f"score_checks_{model}.sql", engines.render("scoring/checks.sql"),
                             {"scored": scored, "customers": plan["features_input"],
                              "previous": previous},
                             paths.scores(model, day, "checks"))]
    return jobs


def _unversioned(scores: ObjectStoragePath) -> bool:
    """Published scores written before model_version was recorded (by a release before it: an upgrade's first day)
    cannot be drift-checked against (only the Parquet footer is read)."""
    return storage.is_committed(scores) and "model_version" not in sqljobs.column_names(scores)


PSI_MILLIS = 1000  # scores are compared at a thousandth (checks.sql): a point mass moving by less is no shift


def _quantiles(values: np.ndarray, counts: np.ndarray, q: np.ndarray) -> np.ndarray:
    """numpy.quantile's default (linear) of the sample holding each of the sorted `values` `counts` times."""
    import numpy as np

    ends = np.cumsum(counts)
    h = (ends[-1] - 1) * q
    below = np.floor(h)
    t = h - below
    lower = values[np.searchsorted(ends, below, side="right")]
    upper = values[np.searchsorted(ends, np.minimum(below + 1, ends[-1] - 1), side="right")]
    # numpy's own interpolation (numpy.lib._function_base_impl._lerp), so an edge is numpy's to the last bit
    return np.where(t >= 0.5, upper - (upper - lower) * (1 - t), lower + (upper - lower) * t)


def psi(previous: dict[float, int], current: dict[float, int], bins: int = 10) -> float:
    """Population stability index of the current vs the previous scores, each given as {score at a thousandth:
    how many}, on the previous scores' deciles; when a point mass fills more than a decile, on ten equal
    probability bands instead. Rounding first matters: a baseline champion gives large groups of customers one
    probability each (every one-time buyer observed as long), which moves a little each day; a decile edge that
    sits on such a mass would otherwise move it whole into the next bin (measured at 100,000 customers: PSI 1.37
    between two days whose deciles agree to 3 digits)."""
    import numpy as np

    def sample(counted: dict[float, int]) -> tuple[np.ndarray, np.ndarray]:
        values = np.array(sorted(counted), dtype="float64")
        return values, np.array([counted[v] for v in sorted(counted)], dtype="float64")

    (before, before_n), (now, now_n) = sample(previous), sample(current)
    edges = np.unique(_quantiles(before, before_n, np.linspace(0, 1, bins + 1)))
    if len(edges) < bins + 1:
        edges = np.linspace(0.0, 1.0, bins + 1)
    edges = np.concatenate([[-np.inf], edges[1:-1], [np.inf]])
    expected = np.histogram(before, edges, weights=before_n)[0] / before_n.sum()
    actual = np.histogram(now, edges, weights=now_n)[0] / now_n.sum()
    expected, actual = np.clip(expected, 1e-6, None), np.clip(actual, 1e-6, None)
    return float(np.sum((actual - expected) * np.log(actual / expected)))


def read_checks(model: str, day: dt.date) -> dict:
    """The checks job's rows by kind: {"rows": (n, mean), "missing" | "extra" | "duplicated" | "out_of_range":
    (n, [sample ids or {customer_id, probability}]), "current" | "previous": {score: n}, "version": {...}}."""
    rows = sqljobs.read_partition(paths.scores(model, day, "checks")).to_pylist()
    found: dict = {"rows": (0, None), "current": {}, "previous": {}, "version": set()}
    for row in sorted(rows, key=lambda r: (r["kind"], r["customer_id"] is None, r["customer_id"] or 0)):
        kind = row["kind"]
        if kind == "rows":
            found["rows"] = (row["n"], row["value"])
        elif kind in ("current", "previous"):
            found[kind][row["value"] / PSI_MILLIS] = row["n"]
        elif kind == "version":
            found["version"].add(row["text"])
        else:
            _, sample = found.get(kind, (0, []))
            item = row["customer_id"] if kind != "out_of_range" else \
                {"customer_id": row["customer_id"], "probability": row["value"]}
            found[kind] = (row["n"], [*sample, item])
    return found


FINDINGS = {  # checks.sql's kinds of finding that fail the gate, as its message says them
    "missing": "customer(s) of the day's features not scored",
    "extra": "scored id(s) not in the day's features",
    "duplicated": "customer(s) scored twice",
    "out_of_range": "probability(ies) outside [0, 1] or missing",
}


def gate(model: str, day: dt.date, checks: dict, version: str | None = None) -> dict:
    """The score gate's result from the checks job's findings (read_checks), kept as the day's gate report."""
    failures = [f"{checks[kind][0]} {text}, e.g. {checks[kind][1]}" for kind, text in FINDINGS.items()
                if kind in checks]
    limit = get_config().models.psi_limit
    stability, note = None, "no previous day's scores"
    if _unversioned(paths.scores(model, day - dt.timedelta(days=1), "scores")):
        note = "not compared: the previous day's scores carry no model_version (written before it was recorded)"
    if checks["previous"] and checks["current"]:
        before = checks["version"]
        if version and before and before != {version}:
            note = (f"not compared: the previous day's scores are of {', '.join(sorted(before))} and the champion is "
                    f"now {version} (promoted by training); the drift check resumes against {version}'s own scores")
        else:
            stability, note = psi(checks["previous"], checks["current"]), None
            if stability > limit:
                failures.append(f"score distribution shifted: PSI {stability:.3f} vs the previous day's scores of "
                                f"{version or 'the champion'} is above models.psi_limit {limit}")
    if note:
        log.info("scores of %s for %s: PSI %s", model, day, note)
    result = {"suite": f"scores_{model}", "partition": day.isoformat(), "rows": checks["rows"][0],
              "model_version": version, "success": not failures, "failed_critical": failures, "psi": stability,
              "psi_limit": limit, "psi_note": note}
    storage.write_json(paths.gate_report(day, f"scores_{model}"), result)
    return result


def gate_scores(day: dt.date, transforms: list[dict]) -> dict:
    """Each model's gate from its checks; a passing model's candidate (deciles, reasons, model version) is
    published, a failing one raises after the others are checked (its previous partitions are untouched)."""
    summary, failed = {}, []
    for plan in transforms:
        model, version = plan["model"], plan["version"]
        checks = read_checks(model, day)
        result = gate(model, day, checks, version)
        if not result["success"]:
            failed.append(f"scores of {model} (partition {day}):\n    " + "\n    ".join(result["failed_critical"]))
            continue
        # the candidate stays (the run's next check_scores replaces it): a retried or cleared gate_scores, after
        # one model was published and another failed, publishes the same scores again
        storage.promote(paths.scores(model, day, "candidate"), paths.scores(model, day, "scores"))
        rows, mean = checks["rows"]
        summary[model] = {"rows": rows, "version": version, "psi": result["psi"], "mean_probability": mean}
    if failed:
        raise ScoreGateFailed("score gate failed:\n  " + "\n  ".join(failed))
    return {"partition": day.isoformat(), "models": summary}
