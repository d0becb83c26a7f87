"""The score gate and the published scores: SQL jobs over a batch transform's output (include/sql/scoring/), the
same on DuckDB and on the Glue script's Spark; the worker judges their checks only."""

from __future__ import annotations

import datetime as dt
import uuid

import numpy as np
import pandas as pd
import pytest

from crosschannel.core import paths, sqljobs, storage
from crosschannel.stages.models import metrics as model_metrics
from crosschannel.stages.scoring import scores as scoring
from tests.test_models import _run

DAY = dt.date(2026, 11, 2)


def _score_day(ids, p, *, day=DAY, features=None, version="v0001", model="churn", spark=None) -> dict:
    """A day's features (`features`, else the scored ids) and a transform output of `ids` scored `p`, then the
    score gate's SQL jobs planned and run as the DAG runs them; the transform plan gate_scores takes."""
    import pyarrow as pa

    sqljobs.write_partition(paths.features(day), pa.table(
        {"customer_id": pa.array(sorted(set(ids)) if features is None else features, pa.int64())}))
    # a folder of its own, as each input version's transform has (Spark's session caches a listed file's length)
    output = scoring.output_folder(model, day, f"_v1-{uuid.uuid4().hex[:12]}")
    output.mkdir(parents=True, exist_ok=True)
    lines = "".join(f"{i},{'' if x is None else repr(float(x))},recency_days,,frequency_365d\n"
                    for i, x in zip(ids, p, strict=True))
    half = len(lines.splitlines()) // 2  # two files, as a transform of two input files leaves
    (output / "part-00000.csv.out").write_text("".join(lines.splitlines(keepends=True)[:half]))
    (output / "part-00001.csv.out").write_text("".join(lines.splitlines(keepends=True)[half:]))
    plan = {"model": model, "version": version, "features_input": sqljobs.parquet([paths.features(day)]),
            "transform_config": {"TransformOutput": {"S3OutputPath": storage.url_of(output)}}}
    _run(scoring.plan_score_gate(day, [plan]), spark)
    return plan


def _previous(p, version: str, day=DAY - dt.timedelta(days=1)) -> None:
    import pyarrow as pa

    sqljobs.write_partition(paths.scores("churn", day, "scores"), pa.table(
        {"customer_id": np.arange(1, len(p) + 1), "probability": p, "model_version": [version] * len(p)}))


def _published(model: str = "churn", day=DAY) -> pd.DataFrame:
    return sqljobs.read_partition(paths.scores(model, day, "scores")).to_pandas()


def test_complete_in_range_scores_are_published_with_deciles_and_version(local_env):
    ids = list(range(1, 101))
    plan = _score_day(ids, np.linspace(0, 1, 100))

    outcome = scoring.gate_scores(DAY, [plan])

    result = storage.read_json(paths.gate_report(DAY, "scores_churn"))
    assert result["success"] and result["psi"] is None and result["rows"] == 100
    assert outcome["models"]["churn"] == {"rows": 100, "version": "v0001", "psi": None,
                                          "mean_probability": pytest.approx(0.5)}
    published = _published()
    assert list(published.columns) == ["customer_id", "probability", "reason_1", "reason_2", "reason_3", "decile",
                                       "model", "model_version", "partition"]
    assert published["customer_id"].tolist() == ids and (published["decile"].value_counts() == 10).all()
    assert published["decile"].is_monotonic_increasing  # probability rises with the id here
    assert published["reason_2"].isna().all() and set(published["reason_1"]) == {"recency_days"}
    assert set(published["model_version"]) == {"v0001"} and set(published["partition"]) == {DAY.isoformat()}


def test_a_retried_gate_publishes_the_same_scores_again(local_env):
    """A gate_scores retried (or cleared after one model was published and another failed) publishes again: the
    candidate is kept until the run's next check_scores replaces it."""
    plan = _score_day(list(range(1, 101)), np.linspace(0, 1, 100))
    scoring.gate_scores(DAY, [plan])
    first = _published()

    again = scoring.gate_scores(DAY, [plan])

    assert again["models"]["churn"]["rows"] == 100
    pd.testing.assert_frame_equal(_published(), first)


def test_score_gate_names_missing_extra_duplicated_and_out_of_range_scores(local_env):
    plan = _score_day([*range(1, 99), 98, 555], [*np.linspace(0, 1, 98), 1.5, np.nan], features=list(range(1, 101)))

    with pytest.raises(scoring.ScoreGateFailed) as failed:
        scoring.gate_scores(DAY, [plan])

    text = str(failed.value)
    assert "2 customer(s) of the day's features not scored, e.g. [99, 100]" in text
    assert "1 scored id(s) not in the day's features, e.g. [555]" in text
    assert "1 customer(s) scored twice, e.g. [98]" in text
    assert "2 probability(ies) outside [0, 1] or missing, e.g. [{'customer_id': 98, 'probability': 1.5}" in text
    assert not storage.is_committed(paths.scores("churn", DAY, "scores"))  # nothing published


def test_score_gate_stops_a_shifted_distribution(local_env):
    _previous(np.random.default_rng(1).beta(2, 8, 1000), "v0001")
    ids = list(range(1, 1001))

    _score_day(ids, np.random.default_rng(2).beta(2, 8, 1000))
    same = scoring.gate("churn", DAY, scoring.read_checks("churn", DAY), "v0001")
    _score_day(ids, np.random.default_rng(2).beta(8, 2, 1000))
    shifted = scoring.gate("churn", DAY, scoring.read_checks("churn", DAY), "v0001")

    assert same["success"] and same["psi"] < 0.1
    assert not shifted["success"] and "PSI" in shifted["failed_critical"][0] and shifted["psi"] > 1


def test_the_score_gate_says_why_a_new_champion_is_not_drift_checked(local_env):
    _previous(np.random.default_rng(1).beta(2, 8, 1000), "b0001")
    _score_day(list(range(1, 1001)), np.random.default_rng(2).beta(8, 2, 1000))
    checks = scoring.read_checks("churn", DAY)

    same = scoring.gate("churn", DAY, checks, "b0001")
    promoted = scoring.gate("churn", DAY, checks, "v0002")

    assert not same["success"] and same["psi"] > 1 and "scores of b0001" in same["failed_critical"][0]
    assert promoted["success"] and promoted["psi"] is None and promoted["model_version"] == "v0002"
    assert "previous day's scores are of b0001 and the champion is now v0002" in promoted["psi_note"]


def test_ties_are_cut_by_a_stable_hash_of_customer_and_model_never_by_id(local_env):
    ids = pd.Series(range(1, 2001))

    def deciles(model: str) -> pd.Series:
        scoring.gate_scores(DAY, [_score_day(ids.tolist(), [0.3] * 2000, model=model)])
        return _published(model).set_index("customer_id")["decile"]

    churn, again, repurchase = deciles("churn"), deciles("churn"), deciles("repurchase")

    top = churn.index[churn == 10].to_series()
    assert len(top) == 200 and churn.equals(again)  # the same cut on every run
    assert top.min() < 200 and top.max() > 1800  # spread over the ids, not the highest or lowest 200
    assert not (churn == 10).equals(repurchase == 10)  # each model cuts its own way
    y = ids.isin(top).to_numpy(dtype=float)  # the evaluation's top decile is the same customers as decile 10
    assert model_metrics.evaluate(y, np.full(2000, 0.3), model_metrics.stable_hash(ids, "churn"))[
        "top_decile_capture"] == 1.0


def test_the_score_jobs_give_the_same_tables_on_spark(local_env, spark):
    """Issue 15: the scores and the gate's checks are SQL jobs; the Glue script's Spark writes the same candidate
    (deciles with their ties cut the same way) and the same checks as DuckDB, over planted failures too."""
    _previous(np.random.default_rng(1).beta(2, 8, 300), "v0001")
    rng = np.random.default_rng(4)
    p = np.round(rng.beta(2, 5, 300), 2)  # coarse: many ties
    cases = {"clean": (list(range(1, 301)), p, None),
             "planted": ([*range(1, 298), 7, 9001, 9002], [*p[:297], 1.5, np.nan, 0.2], list(range(1, 301)))}
    for name, (ids, scores, features) in cases.items():
        found = {}
        for engine in ("duckdb", "spark"):
            _score_day(ids, scores, features=features, spark=spark if engine == "spark" else None)
            found[engine] = {part: sqljobs.read_partition(paths.scores("churn", DAY, part)).to_pandas()
                             for part in ("candidate", "checks")}
        for part in ("candidate", "checks"):
            duck, sparked = found["duckdb"][part], found["spark"][part]
            assert list(duck.columns) == list(sparked.columns), (name, part)
            pd.testing.assert_frame_equal(sparked.reset_index(drop=True), duck.reset_index(drop=True),
                                          check_dtype=False, rtol=1e-12, obj=f"{name} {part}")
        assert scoring.read_checks("churn", DAY)["previous"]  # the previous day's scores were read


def test_a_point_mass_that_moves_a_little_is_no_shift():
    """Found at 100,000 customers (bench/scale.py): a baseline champion's 18% of customers at one probability sat on
    a decile edge; the next day it moved by 0.00005 and the whole mass hopped into the next bin (PSI 1.37)."""
    rng = np.random.default_rng(3)
    mass = 0.02948  # 21% of the scores below it, 18% on it, 61% above: the 30% quantile edge sits on it
    spread = np.concatenate([rng.uniform(0.0, 0.028, 2100), rng.uniform(0.031, 0.98, 6100)])

    def counted(p: np.ndarray) -> dict[float, int]:  # as checks.sql gives them
        values, counts = np.unique(np.floor(p * 1000 + 0.5), return_counts=True)
        return {float(v) / 1000: int(n) for v, n in zip(values, counts, strict=True)}

    previous = counted(np.concatenate([spread, np.full(1800, mass)]))
    current = counted(np.concatenate([spread, np.full(1800, mass - 5e-5)]))

    assert scoring.psi(previous, current) < 0.01
    assert scoring.psi(previous, counted(rng.beta(6, 1.2, 10000))) > 1  # a real shift still shows


def test_the_psi_quantiles_of_counted_scores_are_numpys():
    rng = np.random.default_rng(5)
    sample = np.floor(rng.beta(2, 8, 5000) * 1000 + 0.5) / 1000
    values, counts = np.unique(sample, return_counts=True)
    q = np.linspace(0, 1, 11)

    assert np.array_equal(scoring._quantiles(values, counts.astype(float), q), np.quantile(sample, q))


def test_previous_scores_without_a_model_version_are_not_compared(local_env):
    """An upgrade's first day: the day before's scores were written before model_version was recorded; the gate
    publishes without a drift check instead of failing on the missing column."""
    import pyarrow as pa

    sqljobs.write_partition(paths.scores("churn", DAY - dt.timedelta(days=1), "scores"), pa.table(
        {"customer_id": np.arange(1, 1001), "probability": np.random.default_rng(1).beta(8, 2, 1000)}))
    plan = _score_day(list(range(1, 1001)), np.random.default_rng(2).beta(2, 8, 1000))

    result = scoring.gate("churn", DAY, scoring.read_checks("churn", DAY), "v0001")
    assert result["success"] and result["psi"] is None and "carry no model_version" in result["psi_note"]
    scoring.gate_scores(DAY, [plan])
    assert len(_published()) == 1000
