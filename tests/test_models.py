"""include/sagemaker/train.py and inference.py in the SageMaker layout (run from the same job configs as on
AWS), the evaluation metrics and the promotion rule."""

from __future__ import annotations

import datetime as dt
import decimal
import io
import itertools
import json
import re
import tarfile

import numpy as np
import pandas as pd
import pytest

from crosschannel.core import paths, storage
from crosschannel.core import sagemaker as sagemaker_jobs
from crosschannel.core.config import get_config
from crosschannel.local import sagemaker as local_sagemaker
from crosschannel.stages.models import datasets as model_datasets
from crosschannel.stages.models import metrics as model_metrics
from crosschannel.stages.models import registry as model_registry
from crosschannel.stages.scoring import scores as scoring

FEATURES = ["recency_days", "frequency_365d", "noise"]


def _frame(rng, n: int) -> pd.DataFrame:
    recency = rng.exponential(60, n)
    frequency = rng.poisson(3, n).astype(float)
    logit = 0.03 * recency - 0.6 * frequency + 0.5
    label = (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(float)
    recency[rng.random(n) < 0.05] = np.nan  # missing values travel as empty CSV fields
    return pd.DataFrame({"label": label, "recency_days": recency, "frequency_365d": frequency,
                         "noise": rng.normal(size=n)})


@pytest.fixture
def channels(local_env):
    """train / validation channels as model_datasets.build_datasets writes them, and the source dir uploaded."""
    rng = np.random.default_rng(3)
    root = storage.zone("ml", "churn", "datasets", "dt=2026-11-01")
    urls = {}
    for split, n in (("train", 3000), ("validation", 1000)):
        folder = root / split
        folder.mkdir(parents=True, exist_ok=True)
        with (folder / "data.csv").open("w") as handle:
            _frame(rng, n).to_csv(handle, header=False, index=False)
        storage.write_json(folder / "manifest.json", {"features": FEATURES})
        urls[split] = storage.url_of(folder)
    output = storage.zone("ml", "churn", "models", "dt=2026-11-01")
    output.mkdir(parents=True, exist_ok=True)
    return {"channels": urls, "output": storage.url_of(output), "source_dir": sagemaker_jobs.upload_source_dir(),
            "rng": rng}


def _train(channels, name="cc-churn-test-train", **tuned):
    hps = {**sagemaker_jobs.static_hyperparameters(channels["source_dir"]), "max_depth": "3", **tuned}
    config = sagemaker_jobs.training_config(name, channels["channels"], channels["output"], hps)
    return local_sagemaker.run_training_job(config)


def test_train_script_runs_in_the_sagemaker_layout(channels):
    job = _train(channels)

    (auc,) = [m["Value"] for m in job["FinalMetricDataList"] if m["MetricName"] == "validation:auc"]
    assert 0.7 < auc <= 1.0
    artifact = storage.location(job["ModelArtifacts"]["S3ModelArtifacts"])
    assert artifact.path.endswith("/cc-churn-test-train/output/model.tar.gz")
    with tarfile.open(artifact.path) as tar:
        assert sorted(tar.getnames()) == ["features.json", "xgboost-model.json"]
        card = json.load(tar.extractfile("features.json"))
    assert card["features"] == FEATURES and card["hyperparameters"]["max_depth"] == 3 and card["kind"] == "xgboost"
    log = (artifact.parent / "training.log").read_text()
    # the best round, last, in the form the image's built-in metric reads: its AUC is the job's objective
    last = log.strip().splitlines()[-1]
    assert re.fullmatch(r"\[\d+\]\tvalidation-logloss:[0-9.]+\tvalidation-auc:" + f"{auc:.6f}", last)


def test_a_failing_training_job_names_the_job_and_the_reason(channels):
    broken = storage.location(channels["channels"]["validation"]) / "manifest.json"
    storage.write_json(broken, {"features": FEATURES[:2]})

    with pytest.raises(local_sagemaker.SageMakerJobError,
                       match=r"training job cc-churn-test-train failed: .*names 2 features, the CSV files have 3"):
        _train(channels)


def test_tuning_draws_the_budget_from_the_configured_ranges_and_keeps_the_best(channels, monkeypatch):

    monkeypatch.setenv("CROSSCHANNEL__MODELS__MAX_TRIALS", "3")
    get_config.cache_clear()
    config = sagemaker_jobs.tuning_config("cc-churn-20261101-tune", channels["channels"], channels["output"],
                                          channels["source_dir"])

    described = local_sagemaker.run_tuning_job(config)

    trials = described["TrainingJobs"]
    assert len(trials) == 3 and len({json.dumps(t["TunedHyperParameters"]) for t in trials}) == 3
    ranges = get_config().models.ranges
    for trial, (name, spec) in itertools.product(trials, ranges.items()):
        assert spec.min <= float(trial["TunedHyperParameters"][name]) <= spec.max
    values = [t["FinalHyperParameterTuningJobObjectiveMetric"]["Value"] for t in trials]
    assert described["BestTrainingJob"]["FinalHyperParameterTuningJobObjectiveMetric"]["Value"] == max(values)
    recorded = storage.read_json(storage.location(channels["output"]) / "cc-churn-20261101-tune.tuning.json")
    assert recorded == described


def test_batch_transform_keeps_every_score_on_its_customer_line(channels):
    job = _train(channels)
    frame = _frame(channels["rng"], 500).drop(columns="label")
    ids = np.arange(1001, 1501)
    folder = storage.zone("ml", "churn", "scores", "dt=2026-11-01")
    (folder / "input").mkdir(parents=True, exist_ok=True)
    with (folder / "input" / "part-00000.csv").open("w") as handle:
        frame.assign(customer_id=ids)[["customer_id", *FEATURES]].to_csv(handle, header=False, index=False)
    model = sagemaker_jobs.model_config("cc-churn-v1", job["ModelArtifacts"]["S3ModelArtifacts"],
                                        channels["source_dir"])
    transform = sagemaker_jobs.transform_config("cc-churn-score", "cc-churn-v1", storage.url_of(folder / "input"),
                                                storage.url_of(folder / "output"), len(FEATURES), scoring.OUTPUTS)

    done = local_sagemaker.run_transform_job(model, transform, batch_lines=128)

    assert transform["DataProcessing"] == {"InputFilter": "$[1:]", "JoinSource": "Input",
                                           "OutputFilter": "$[0,4,5,6,7]"}
    out = pd.read_csv((folder / "output" / "part-00000.csv.out").path, header=None)
    assert done["records"] == len(out) == 500
    assert out[0].tolist() == ids.tolist()
    assert out[1].between(0, 1).all()
    assert set(out[2]) | set(out[3]) | set(out[4]) <= set(FEATURES)
    handlers = sagemaker_jobs.load_handlers(channels["source_dir"])
    loaded = sagemaker_jobs.load_model(handlers, job["ModelArtifacts"]["S3ModelArtifacts"])
    import xgboost as xgb

    direct = loaded.booster.predict(xgb.DMatrix(frame[FEATURES].to_numpy(), feature_names=FEATURES))
    assert np.allclose(out[1].to_numpy(), direct, atol=1e-6)


def test_inference_refuses_unsupported_content_and_wrong_widths(channels):
    job = _train(channels)
    handlers = sagemaker_jobs.load_handlers(channels["source_dir"])
    booster = sagemaker_jobs.load_model(handlers, job["ModelArtifacts"]["S3ModelArtifacts"])

    with pytest.raises(ValueError, match="content type 'application/json' is not supported"):
        handlers.input_fn(b"{}", "application/json")
    with pytest.raises(ValueError, match="2 features per line, the model expects 3"):
        handlers.predict_fn(handlers.input_fn("1,2\n", "text/csv"), booster)


def test_json_path_filters():
    assert local_sagemaker._json_path_indices("$[1:]", 4) == (1, 2, 3)
    assert local_sagemaker._json_path_indices("$[0,-1]", 5) == (0, 4)
    assert local_sagemaker._json_path_indices("$[0,4,5]", 6) == (0, 4, 5)


def test_metrics_against_direct_computations():
    rng = np.random.default_rng(5)
    y = (rng.random(400) < 0.3).astype(float)
    p = np.clip(0.3 * y + rng.random(400) * 0.7, 0, 1)
    pairs = [(a, b) for a in p[y == 1] for b in p[y == 0]]

    metrics = model_metrics.evaluate(y, p)

    assert metrics["auc"] == pytest.approx(np.mean([1.0 if a > b else 0.5 if a == b else 0.0 for a, b in pairs]))
    top = np.argsort(-p)[:40]
    assert metrics["top_decile_capture"] == pytest.approx(y[top].sum() / y.sum())
    assert metrics["top_decile_lift"] == pytest.approx(y[top].mean() / y.mean())
    expected_log_loss = -np.mean(y * np.log(p.clip(1e-7)) + (1 - y) * np.log((1 - p).clip(1e-7)))
    assert metrics["log_loss"] == pytest.approx(expected_log_loss)
    assert sum(b["rows"] for b in metrics["calibration"]) == 400
    assert model_metrics.auc(y, -p) == pytest.approx(1 - metrics["auc"])


@pytest.mark.parametrize(("challenger", "champion", "promoted", "says"), [
    (0.80, None, True, "promoted: the first model"),
    (0.72, None, False, "does not beat the baseline"),
    (0.80, ("v0001", 0.78), True, "beats the baseline and champion v0001"),
    (0.80, ("v0001", 0.798), False, "kept champion v0001"),
    (0.80, ("v0001", 0.85), False, "kept champion v0001"),
])
def test_promotion_needs_the_margin_over_the_baseline_and_the_champion(challenger, champion, promoted, says):
    decided, decision = model_registry.decide(challenger, 0.72, champion, 0.005)

    assert decided is promoted and says in decision


def test_split_days_are_temporal_and_complete(local_env):
    days = model_datasets.split_days(dt.date(2026, 11, 1), "churn")

    assert days["test"] == [dt.date(2026, 8, 3)]  # 90 days before: the latest complete churn window
    assert days["validation"] == [dt.date(2026, 5, 5)]  # its label window ends on the test day
    assert days["train"] == [dt.date(2025, 12, 24), dt.date(2026, 1, 7), dt.date(2026, 1, 21), dt.date(2026, 2, 4)]
    horizon = dt.timedelta(days=90)
    assert max(days["train"]) + horizon <= min(days["validation"])
    assert days["validation"][0] + horizon <= days["test"][0]


def test_a_split_never_reaches_before_the_order_history(local_env):
    """(Issue 14) test_demo's retailer (orders from 2026-03-26, 220 days) put churn's separate training days
    months before its first order: every training row had no past, and the churn model, both baselines and the
    scores came out degenerate (AUC 0.5, a PSI of 0.31 the next day). Every as-of day now needs
    models.min_history_days of history: the separate layout drops training days without it, a history shorter
    than that falls back to the stepped layout and says so, and a history too short for either is refused."""
    day, min_history = dt.date(2026, 11, 1), get_config().models.min_history_days

    days, layout = model_datasets.split_layout(day, "churn", dt.date(2026, 3, 26))

    assert layout["layout"] == "stepped" and "too short for the separate layout" in layout["reason"]
    assert days == {"test": [dt.date(2026, 8, 3)], "validation": [dt.date(2026, 7, 20)],
                    "train": [dt.date(2026, 5, 25), dt.date(2026, 6, 8), dt.date(2026, 6, 22), dt.date(2026, 7, 6)]}
    assert min(days["train"]) >= dt.date(2026, 3, 26) + dt.timedelta(days=min_history)
    days, layout = model_datasets.split_layout(day, "repurchase", dt.date(2026, 3, 26))  # 30 days: three fit
    assert layout["layout"] == "separate" and days["train"][0] == dt.date(2026, 6, 22)
    days, layout = model_datasets.split_layout(day, "churn", dt.date(2025, 11, 10))  # some separate days fit
    assert layout["layout"] == "separate" and days["train"] == [dt.date(2026, 1, 7), dt.date(2026, 1, 21),
                                                                 dt.date(2026, 2, 4)]
    assert "1 of 4 training as-of days dropped" in layout["reason"]
    with pytest.raises(model_datasets.ModelError, match="the order history from 2026-06-01 is too short"):
        model_datasets.split_layout(day, "churn", dt.date(2026, 6, 1))


@pytest.mark.parametrize(("current", "strongest", "replaced", "says"), [
    (None, ("bgnbd", 0.80), True, "becomes the first champion"),
    (("v0001", "xgboost", 0.801), ("bgnbd", 0.80), False, "trained champion v0001 stays"),
    (("v0001", "xgboost", 0.799), ("bgnbd", 0.80), True, "no longer beats the BG/NBD baseline"),
    (("b0001", "bgnbd", 0.80), ("bgnbd", 0.804), False, "baseline champion b0001 (BG/NBD baseline) stays"),
    (("b0001", "bgnbd", 0.80), ("rfm", 0.804), False, "does not beat it by 0.005"),
    (("b0001", "rfm", 0.80), ("bgnbd", 0.806), True, "beats baseline champion b0001 (0.8000) by 0.005"),
])
def test_a_baseline_champion_is_replaced_only_as_the_promotion_rule_says(current, strongest, replaced, says):
    """Never stall, without churning the champion: a weekly refit of the baseline champion (same or other kind)
    replaces it only when it beats it by the margin on the same rows, so the daily scores stay one version's and
    the PSI gate keeps comparing like with like; a trained champion gives way once the baseline beats it."""
    decided, why = model_registry.fallback(strongest, current, 0.005)

    assert decided is replaced and says in why


def _snapshots(day: dt.date, plant: dict | None = None) -> None:
    """Feature snapshots of every as-of day the splits need, 80 customers each, written in no particular order
    (ids descending): a label missing here and there, a decimal and a null feature. `plant`: {column: value} set
    on one row of churn's latest training day."""
    import pyarrow as pa

    from crosschannel.core import sqljobs

    features, _ = get_config().features()
    days = sorted({d for m in get_config().models.specs for v in model_datasets.split_days(day, m).values() for d in v})
    for number, as_of in enumerate(days):
        rng, n = np.random.default_rng(number), 80
        columns = {"customer_id": pa.array(np.arange(n, 0, -1), pa.int64()),
                   "as_of": pa.array([as_of] * n, pa.date32())}
        for label in ("churn_90d", "repurchase_30d"):
            values = rng.integers(0, 2, n).tolist()
            values[0] = None  # a label whose window is not complete: not a training row
            columns[label] = pa.array(values, pa.int32())
        for feature in features:
            values = rng.exponential(30, n).round(2).tolist()
            values[1], values[3] = None, float("nan")  # missing: an empty CSV field
            columns[feature] = (pa.array([None if v is None or v != v else decimal.Decimal(f"{v:.2f}")
                                          for v in values], pa.decimal128(14, 2))
                                if feature.startswith("monetary") else pa.array(values, pa.float64()))
        table = pa.table(columns)
        if plant and as_of == model_datasets.split_days(day, "churn")["train"][-1]:
            for column, value in plant.items():  # on the third row (its labels are known)
                values = table.column(column).to_pylist()
                table = table.set_column(table.column_names.index(column), column,
                                         pa.array([*values[:2], value, *values[3:]], table.schema.field(column).type))
        sqljobs.write_partition(paths.snapshot(day, as_of), table)


def _run(plans: list[dict], spark=None) -> None:
    from crosschannel.core import sqljobs
    from tests.conftest import glue_script

    for plan in plans:
        if spark is None:
            sqljobs.run_local(plan)
        else:
            args = glue_script().parse_args([token for pair in plan.items() for token in pair])
            glue_script().run(spark, **args)


def _channel(model: str, day: dt.date, split: str) -> tuple[bytes, dict]:
    folder = storage.resolve(paths.dataset(model, day) / split)
    (data,) = folder.glob("*.csv")
    return data.read_bytes(), storage.read_json(folder / "manifest.json")


def test_training_channels_are_sql_jobs_alike_on_both_engines_in_the_snapshots_order(local_env, spark):
    """Issue 15: the channels are written by SQL jobs (the rows never pass through the worker): label first, every
    feature as a number, a null as an empty field, rows by as-of day then customer; Spark writes the same values
    as DuckDB, and the summary the check judges is the same."""
    day = dt.date(2026, 11, 1)
    _snapshots(day)
    plans = model_datasets.plan_datasets(day)
    _run(plans)
    local = {(m, s): _channel(m, day, s) for m in get_config().models.specs for s in model_datasets.SPLITS}
    checked = model_datasets.check_datasets(day)
    summaries = {m: sorted(r.items()) for m in get_config().models.specs
                 for r in [model_datasets.manifests(m, day)["train"]["summary"]]}
    features, _ = get_config().features()
    data, manifest = local[("churn", "train")]
    rows = [line.split(",") for line in data.decode().splitlines()]
    train_days = model_datasets.split_days(day, "churn")["train"]
    assert checked["churn"]["train"] == {"rows": 79 * len(train_days), "as_of": manifest["as_of"],
                                         "positives": checked["churn"]["train"]["positives"]}
    assert len(rows) == 79 * len(train_days) and {len(r) for r in rows} == {1 + len(features)}
    assert manifest["features"] == features and manifest["as_of"] == [d.isoformat() for d in train_days]
    snapshots = pd.concat([pd.read_parquet(storage.resolve(paths.snapshot(day, d)).path) for d in train_days])
    expected = (snapshots[snapshots["churn_90d"].notna()].sort_values(["as_of", "customer_id"])
                [["churn_90d", *features]].astype("float64").reset_index(drop=True))
    written = pd.read_csv(io.BytesIO(data), header=None, names=expected.columns, dtype="float64")
    pd.testing.assert_frame_equal(written, expected)  # the order, the decimals as numbers, the nulls
    assert rows[78][features.index("frequency_7d") + 1] == "" and written.iloc[0, 0] in (0, 1)  # customer 79
    assert rows[76][features.index("frequency_7d") + 1] == ""  # customer 77's NaN

    _run(plans, spark)
    for (model, split), (data, manifest) in local.items():
        glue_data, glue_manifest = _channel(model, day, split)
        parsed = [pd.read_csv(io.BytesIO(b), header=None, dtype="float64") for b in (data, glue_data)]
        pd.testing.assert_frame_equal(parsed[0], parsed[1])
        assert b"nan" not in glue_data.lower()
        assert glue_manifest == manifest
    assert {m: sorted(r.items()) for m in get_config().models.specs
            for r in [model_datasets.manifests(m, day)["train"]["summary"]]} == summaries


@pytest.mark.parametrize(("column", "value", "problem"), [
    ("churn_90d", 2, r"label churn_90d: 1 row\(s\) not 0 or 1 \(from 2\.0 to 2\.0\)"),
    ("recency_days", float("inf"), r"infinite values in \{'recency_days': 1\}"),
])
def test_a_training_channel_that_the_image_would_misread_is_refused(local_env, column, value, problem):
    """Issue 13: the CSV channels handed to SageMaker (label first, no header, numbers) are checked from the
    splits' summary: a label the binary objective cannot take, or an infinity written as `inf`, stops the run
    before training, naming the model, split and column."""
    day = dt.date(2026, 11, 1)
    _snapshots(day, {column: value})
    _run(model_datasets.plan_datasets(day))
    with pytest.raises(model_datasets.ModelError, match=r"model churn, train split: not a SageMaker training "
                                                        r"channel: " + problem):
        model_datasets.check_datasets(day)


def _customers(rng, n: int, horizon: int = 30) -> pd.DataFrame:
    """Customers of a buy-till-you-die retailer: a purchase rate, a dropout, their summary and next-window label."""
    rate = rng.gamma(1.5, 1 / 40, n)
    observed = rng.integers(30, 400, n).astype(float)
    lifetime = rng.exponential(300, n)
    active = np.minimum(observed, lifetime)
    purchases = rng.poisson(rate * active)
    last = np.where(purchases > 0, active * rng.random(n) ** (1 / np.maximum(purchases, 1)), np.nan)
    alive = lifetime > observed
    bought = alive & (rng.random(n) < 1 - np.exp(-rate * horizon))
    return pd.DataFrame({"customer_id": np.arange(1, n + 1), "order_days_lifetime": purchases.astype(float),
                         "recency_days": np.floor(observed - last), "observed_days": observed,
                         "frequency_365d": purchases.astype(float), "monetary_365d": purchases * 40.0,
                         "repurchase_30d": bought.astype(float), "churn_90d": (~bought).astype(float)})


def test_bgnbd_recovers_its_parameters_and_ranks_who_comes_back(channels):
    """The BG/NBD likelihood (inference.py) fitted on customers drawn from BG/NBD itself finds their parameters,
    and its P(no purchase) / P(a purchase) are the baseline scores a trained model must beat."""
    rng = np.random.default_rng(11)
    r, alpha, a, b, n = 0.8, 20.0, 0.8, 4.0, 20000
    rate, dropout = rng.gamma(r, 1 / alpha, n), rng.beta(a, b, n)
    T = rng.integers(60, 400, n).astype(float)
    x, t_x, alive = np.zeros(n), np.zeros(n), np.ones(n, dtype=bool)
    for i in range(n):
        t = 0.0
        while True:
            t += rng.exponential(1 / rate[i])
            if t > T[i]:
                break
            x[i], t_x[i] = x[i] + 1, t
            if rng.random() < dropout[i]:
                alive[i] = False
                break
    handlers = sagemaker_jobs.load_handlers(channels["source_dir"])

    fitted = handlers.bgnbd_fit(x, t_x, T)

    assert fitted["r"] == pytest.approx(r, rel=0.15) and fitted["alpha"] == pytest.approx(alpha, rel=0.2)
    assert fitted["a"] == pytest.approx(a, rel=0.3) and fitted["b"] == pytest.approx(b, rel=0.4)
    p_alive, expected, p_none = handlers.bgnbd_predict(fitted, x, t_x, T, 30)
    assert ((p_alive >= 0) & (p_alive <= 1) & (p_none >= 0) & (p_none <= 1) & (expected >= 0)).all()
    assert p_alive[x == 0].min() == 1.0  # BG/NBD: nobody drops out before a purchase
    assert model_metrics.auc(alive.astype(float), p_alive) > 0.7
    assert model_metrics.auc((alive & (rate > np.median(rate))).astype(float), expected) > 0.8


@pytest.mark.parametrize("model", ["churn", "repurchase"])
def test_baselines_fit_serve_and_orient_themselves_for_either_label(channels, model):
    """fit_baseline's features.json is a model version inference.py serves (the baseline champion): the same
    handlers and CSV lines as a trained model, probabilities in [0, 1], three reasons, and the right direction."""
    rng = np.random.default_rng(5)
    train, test = _customers(rng, 6000), _customers(rng, 3000)
    label = {"churn": "churn_90d", "repurchase": "repurchase_30d"}[model]
    handlers = sagemaker_jobs.load_handlers(channels["source_dir"])
    names = ["frequency_365d", "monetary_365d", "observed_days", "order_days_lifetime", "recency_days"]
    inputs = {"frequency": "order_days_lifetime", "recency": "recency_days", "age": "observed_days"}
    for kind in ("bgnbd", "rfm"):
        card = handlers.fit_baseline(kind, train[names].to_numpy(), names, train[label].to_numpy(), 30, inputs)
        json.dumps(card, allow_nan=False)
        loaded = handlers.Propensity(card)
        body = "".join(",".join("" if v != v else str(v) for v in row) + "\n"
                       for row in test[loaded.feature_names].to_numpy())

        rows = handlers.predict_fn(handlers.input_fn(body, "text/csv"), loaded)

        p = np.array([row[0] for row in rows])
        assert len(rows) == len(test) and ((p >= 0) & (p <= 1)).all(), kind
        assert all(len(row) == 4 and set(row[1:]) <= set(loaded.feature_names) for row in rows), kind
        assert model_metrics.auc(test[label].to_numpy(), p) > 0.65, kind


def test_cards_are_valid_json():
    card = {"auc": float("nan"), "nested": [{"lift": float("inf")}, 1.5], "ok": "x"}

    assert json.loads(json.dumps(model_metrics.finite(card), allow_nan=False)) == {
        "auc": None, "nested": [{"lift": None}, 1.5], "ok": "x"}


def test_a_split_another_run_wrote_is_refused_not_mixed_in(local_env, monkeypatch):
    """The splits are separate SQL jobs: when the plan changes between runs of a partition (here the number of
    training days), the check refuses the splits the current plan did not write, naming the split."""
    day = dt.date(2026, 11, 1)
    _snapshots(day)
    _run(model_datasets.plan_datasets(day))
    assert model_datasets.check_datasets(day)["churn"]["train"]["rows"] > 0
    monkeypatch.setenv("CROSSCHANNEL__MODELS__TRAIN_AS_OF_DAYS", "3")
    get_config.cache_clear()
    with pytest.raises(model_datasets.ModelError, match=r"model churn, partition 2026-11-01: the train split holds "
                                                        r"as-of days \[.*\] and \d+ features, this run planned"):
        model_datasets.check_datasets(day)
