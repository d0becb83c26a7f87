"""Propensity models: training datasets, evaluation, the registry with champion/challenger promotion, and the
model report. The models themselves are trained and served by include/sagemaker/ (see sagemaker_jobs).

Zones, per model (`models.specs` in the configuration):
    <root>/ml/snapshots/dt=D/as_of=A/                features and labels as of past day A, from D's state
    <root>/ml/<model>/datasets/dt=D/<split>/         SageMaker CSV (label first, no header) + manifest.json
    <root>/ml/<model>/models/dt=D/                   tuning and training job outputs
    <root>/ml/<model>/registry/vNNNN/                every trained version: model.tar.gz, card.json, report.html
    <root>/ml/<model>/registry/champion.json         the version that scores
On aws every version is also a model package of the SageMaker model package group
<aws.sagemaker.model_package_group>-<model> (Approved when promoted, Rejected otherwise).
Temporal split: test on the latest as-of day whose label window is complete at D, validate on the one
`as_of_step_days` before, train on the `train_as_of_days` before that; a customer-day is in one split only.
Features of past as-of days come from D's current state (customer_features.sql only counts what happened
before the as-of day), so a profile attribute changed since (such as the loyalty tier) is not a model
feature by default.
"""

from __future__ import annotations

import datetime as dt
import itertools
import json
import logging
from typing import TYPE_CHECKING

from crosschannel import sagemaker_jobs, sqljobs, storage
from crosschannel.config import get_config

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

log = logging.getLogger(__name__)
SPLITS = ("train", "validation", "test")


class ModelError(RuntimeError):
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


def snapshot_dir(day: dt.date, as_of: dt.date):
    return storage.zone("ml", "snapshots", f"dt={day.isoformat()}", f"as_of={as_of.isoformat()}")


def plan_snapshots(day: dt.date) -> list[dict]:
    """One SQL job per as-of day any model needs: customer_features.sql as of that day over D's trusted state."""
    from crosschannel import features

    days = sorted({d for model in get_config().models.specs for days in split_days(day, model).values() for d in days})
    return [sqljobs.job(day, f"customer_features_as_of_{as_of}.sql", features.features_sql(as_of, day),
                        features.inputs(day, features.FEATURE_INPUTS, as_of), snapshot_dir(day, as_of))
            for as_of in days]


def dataset_dir(model: str, day: dt.date):
    return storage.zone("ml", model, "datasets", f"dt={day.isoformat()}")


def read_snapshots(day: dt.date, days: list[dt.date]) -> pd.DataFrame:
    import pandas as pd

    frames = []
    for as_of in days:
        folder = snapshot_dir(day, as_of)
        if not storage.is_committed(folder):
            raise ModelError(f"{storage.url_of(folder)}: the features as of {as_of} were not computed")
        frames.append(sqljobs.read_partition(folder).to_pandas())
    return pd.concat(frames, ignore_index=True)


def matrix(frame: pd.DataFrame, features: list[str]) -> np.ndarray:
    missing = [f for f in features if f not in frame.columns]
    if missing:
        raise ModelError(f"features {missing} are not columns of features/customer (see models.features)")
    return frame[features].astype("float64").to_numpy()


def write_csv(frame: pd.DataFrame, handle) -> None:
    """SageMaker CSV: no header, a missing value as an empty field, floats in their shortest exact form
    (Arrow's writer, ~6x faster than pandas' here)."""
    import pyarrow as pa
    from pyarrow import csv

    csv.write_csv(pa.Table.from_pandas(frame, preserve_index=False), handle, csv.WriteOptions(include_header=False))


def build_datasets(day: dt.date) -> dict:
    """Per model: the three splits as SageMaker CSV with a manifest; the test rows also as Parquet (ids,
    as-of day, label and every feature) for evaluation."""
    cfg = get_config().models
    summary = {}
    for model, spec in cfg.specs.items():
        counts = {}
        with storage.committing(dataset_dir(model, day)) as staging:
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
                folder = staging / split
                folder.mkdir(parents=True, exist_ok=True)
                with (folder / "data.csv").open("wb") as handle:
                    write_csv(data, handle)
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


# ---------------------------------------------------------------- SageMaker job plans
def job_name(model: str, day: dt.date, kind: str, run: str = "") -> str:
    """Names derived from model, partition, step and (for jobs SageMaker cannot re-create under one name) a
    short hash of the Airflow run, so a re-run starts fresh jobs (tuning job names are capped at 32)."""
    import hashlib

    suffix = f"-{hashlib.sha256(run.encode()).hexdigest()[:6]}" if run else ""
    return f"{model[:10]}-{day:%Y%m%d}-{kind}"[: 32 - len(suffix)] + suffix


def _channels(model: str, day: dt.date) -> dict[str, str]:
    base = dataset_dir(model, day)
    return {"train": storage.url_of(base / "train"), "validation": storage.url_of(base / "validation")}


def models_output(model: str, day: dt.date) -> str:
    return storage.url_of(storage.zone("ml", model, "models", f"dt={day.isoformat()}"))


def plan_tuning(day: dt.date, names: list[str] | None = None, run: str = "") -> list[dict]:
    """CreateHyperParameterTuningJob configs, one per model (the source dir uploaded first)."""
    source_dir = sagemaker_jobs.upload_source_dir()
    plans = []
    for model in names or get_config().models.specs:
        output = storage.location(models_output(model, day))
        output.mkdir(parents=True, exist_ok=True)
        plans.append(sagemaker_jobs.tuning_config(job_name(model, day, "tune", run), _channels(model, day),
                                                  storage.url_of(output), source_dir))
    return plans


def describe_tuning(name: str, day: dt.date, model: str) -> dict:
    """The tuning job's outcome: DescribeHyperParameterTuningJob on aws, the local run's record on local."""
    if get_config().target == "aws":
        from airflow.providers.amazon.aws.hooks.sagemaker import SageMakerHook

        cfg = get_config().aws
        hook = SageMakerHook(aws_conn_id=cfg.conn_id, region_name=cfg.region)
        return hook.describe_tuning_job(name)
    return storage.read_json(storage.location(models_output(model, day)) / f"{name}.tuning.json")


def plan_final_training(day: dt.date, tuning: list[dict], names: list[str] | None = None,
                        run: str = "") -> list[dict]:
    """CreateTrainingJob configs with each model's best tuned hyperparameters (`tuning`: the tuning configs,
    in the order of `names`, by default every model)."""
    source_dir = sagemaker_jobs.upload_source_dir()
    plans = []
    for model, config in zip(names or list(get_config().models.specs), tuning, strict=True):
        name = config["HyperParameterTuningJobName"]
        tuned = describe_tuning(name, day, model)
        if tuned.get("HyperParameterTuningJobStatus") != "Completed" or "BestTrainingJob" not in tuned:
            raise ModelError(f"model {model}: tuning job {name} ended "
                             f"{tuned.get('HyperParameterTuningJobStatus')} without a best training job "
                             f"({tuned.get('FailureReason', 'no reason given')})")
        best = tuned["BestTrainingJob"]
        log.info("model %s: best trial %s, %s", model, best["TrainingJobName"],
                 best["FinalHyperParameterTuningJobObjectiveMetric"])
        hps = {**sagemaker_jobs.static_hyperparameters(source_dir), **best["TunedHyperParameters"]}
        plans.append(sagemaker_jobs.training_config(job_name(model, day, "train", run), _channels(model, day),
                                                    models_output(model, day), hps))
    return plans


def artifact_of(trained) -> str:
    """The model.tar.gz a training task reported: SageMakerTrainingOperator's {"Training": Describe...} on
    aws, the local run's URL on local."""
    if isinstance(trained, dict):
        return trained["Training"]["ModelArtifacts"]["S3ModelArtifacts"]
    return trained


# ---------------------------------------------------------------- metrics
def auc(y: np.ndarray, p: np.ndarray) -> float:
    from scipy.stats import rankdata

    positives = y == 1
    n1, n0 = positives.sum(), (~positives).sum()
    if not n1 or not n0:
        return float("nan")
    ranks = rankdata(p)
    return float((ranks[positives].sum() - n1 * (n1 + 1) / 2) / (n1 * n0))


def average_precision(y: np.ndarray, p: np.ndarray) -> float:
    import numpy as np

    order = np.argsort(-p, kind="stable")
    hits = y[order] == 1
    precision = np.cumsum(hits) / np.arange(1, len(y) + 1)
    return float(precision[hits].sum() / max(hits.sum(), 1))


def evaluate(y: np.ndarray, p: np.ndarray) -> dict:
    import numpy as np

    clipped = np.clip(p, 1e-7, 1 - 1e-7)
    top = np.argsort(-p, kind="stable")[: max(1, int(np.ceil(len(p) / 10)))]
    base_rate = float(y.mean())
    edges = np.linspace(0, 1, 11)
    bins = []
    for low, high in itertools.pairwise(edges):
        inside = (p >= low) & ((p < high) if high < 1 else (p <= high))
        if inside.any():
            bins.append({"low": float(low), "high": float(high), "rows": int(inside.sum()),
                         "mean_predicted": float(p[inside].mean()), "observed_rate": float(y[inside].mean())})
    return {
        "rows": len(y), "positive_rate": base_rate, "auc": auc(y, p), "pr_auc": average_precision(y, p),
        "log_loss": float(-np.mean(y * np.log(clipped) + (1 - y) * np.log(1 - clipped))),
        "top_decile_lift": float(y[top].mean() / base_rate) if base_rate else float("nan"),
        "top_decile_capture": float(y[top].sum() / y.sum()) if y.sum() else float("nan"),
        "calibration_error": float(sum(b["rows"] * abs(b["mean_predicted"] - b["observed_rate"]) for b in bins)
                                   / len(y)),
        "calibration": bins,
    }


def rfm_score(frame: pd.DataFrame) -> np.ndarray:
    """Recency/frequency/monetary quintiles summed (higher = more recent, frequent, valuable): the baseline."""
    import numpy as np

    recency = frame["recency_days"].astype("float64").fillna(1e6)
    parts = [-recency, frame["frequency_365d"].astype("float64"), frame["monetary_365d"].astype("float64")]
    return np.sum([part.rank(pct=True).to_numpy() for part in parts], axis=0)


def baseline_scores(train: pd.DataFrame, test: pd.DataFrame, label: str) -> np.ndarray:
    """The RFM score, oriented on the training rows (for churn, a low RFM score means likely to lapse)."""
    sign = 1.0 if auc(train[label].to_numpy(), rfm_score(train)) >= 0.5 else -1.0
    return sign * rfm_score(test)


# ---------------------------------------------------------------- registry
def registry_dir(model: str):
    return storage.zone("ml", model, "registry")


def champion(model: str) -> dict | None:
    """The champion's card (metrics, version, model location), or None before the first promotion."""
    pointer = registry_dir(model) / "champion.json"
    if not pointer.exists():
        return None
    version = storage.read_json(pointer)["version"]
    return storage.read_json(registry_dir(model) / version / "card.json")


def _next_version(model: str) -> str:
    """Versions are immutable: every training run registers a new one (re-training a partition included),
    so the champion is never overwritten nor compared with itself."""
    folder = registry_dir(model)
    taken = [int(p.name[1:]) for p in folder.glob("v*") if p.name[1:].isdigit()] if folder.exists() else []
    return f"v{max(taken, default=0) + 1:04d}"


def decide(challenger_auc: float, baseline_auc: float, champion: tuple[str, float] | None,
           margin: float) -> tuple[bool, str]:
    """Promote the challenger only if its test AUC beats the baseline's and the champion's (same rows) by
    `margin`; the first model needs to beat the baseline only."""
    if not challenger_auc >= baseline_auc + margin:
        return False, (f"not promoted: AUC {challenger_auc:.4f} does not beat the baseline's {baseline_auc:.4f} "
                       f"by {margin}")
    if champion is None:
        return True, "promoted: the first model, and it beats the baseline"
    version, champion_auc = champion
    if not challenger_auc >= champion_auc + margin:
        return False, (f"kept champion {version}: AUC {challenger_auc:.4f} does not beat its {champion_auc:.4f} "
                       f"by {margin}")
    return True, f"promoted: beats the baseline and champion {version} ({champion_auc:.4f})"


def register_model_package(card: dict) -> str | None:
    """aws target: the version as a model package of the model's group (<model_package_group>-<model>),
    Approved when promoted, Rejected otherwise, with its metrics and training partition as metadata."""
    cfg = get_config()
    if cfg.target != "aws":
        return None
    from airflow.providers.amazon.aws.hooks.sagemaker import SageMakerHook

    client = SageMakerHook(aws_conn_id=cfg.aws.conn_id, region_name=cfg.aws.region).conn
    group = f"{cfg.aws.sagemaker.model_package_group}-{card['model']}"
    try:
        client.describe_model_package_group(ModelPackageGroupName=group)
    except client.exceptions.ClientError:
        client.create_model_package_group(ModelPackageGroupName=group,
                                          ModelPackageGroupDescription=f"crosschannel {card['model']} propensity")
    source_dir = sagemaker_jobs.upload_source_dir()
    return client.create_model_package(
        ModelPackageGroupName=group,
        ModelPackageDescription=f"{card['version']} trained on partition {card['training_partition']}",
        InferenceSpecification={
            "Containers": [{"Image": cfg.aws.sagemaker.image_uri, "ModelDataUrl": card["model_data"],
                            "Environment": {"SAGEMAKER_PROGRAM": "inference.py",
                                            "SAGEMAKER_SUBMIT_DIRECTORY": source_dir}}],
            "SupportedContentTypes": ["text/csv"], "SupportedResponseMIMETypes": ["text/csv"]},
        ModelApprovalStatus="Approved" if card["promoted"] else "Rejected",
        CustomerMetadataProperties={
            "version": card["version"], "training_partition": card["training_partition"],
            "test_auc": f"{card['metrics']['auc']:.6f}", "baseline_auc": f"{card['baseline']['auc']:.6f}",
            "decision": card["decision"][:250]},
    )["ModelPackageArn"]


def predict(handlers, loaded, frame: pd.DataFrame) -> np.ndarray:
    import numpy as np

    rows = handlers.predict_fn(matrix(frame, list(loaded.feature_names)), loaded)
    return np.array([row[0] for row in rows], dtype="float64")


def evaluate_and_promote(day: dt.date, model: str, artifact: str) -> dict:
    """Score the held-out test rows with the challenger, the RFM baseline and the champion; register the
    challenger as a new version with its metrics and report; promote it only if its test AUC beats both
    the baseline and the champion (on the same rows) by `models.promotion_margin`."""
    cfg = get_config()
    spec = cfg.models.specs[model]
    data = dataset_dir(model, day)
    with (data / "test.parquet").open("rb") as handle:
        import pandas as pd

        test = pd.read_parquet(handle)
    train = read_snapshots(day, split_days(day, model)["train"])
    train = train[train[spec.label].notna()]
    y = test[spec.label].to_numpy().astype("float64")
    handlers = sagemaker_jobs.load_handlers(sagemaker_jobs.upload_source_dir())
    challenger = sagemaker_jobs.load_model(handlers, artifact)
    p = predict(handlers, challenger, test)
    metrics = evaluate(y, p)
    baseline_p = baseline_scores(train, test, spec.label)
    baseline = evaluate(y, baseline_p)
    baseline.update(log_loss=float("nan"), calibration_error=float("nan"), calibration=[])  # a rank, not a probability
    current = champion(model)
    champion_metrics = None
    if current is not None:
        champion_model = sagemaker_jobs.load_model(handlers, current["model_data"])
        champion_metrics = evaluate(y, predict(handlers, champion_model, test))
    margin = cfg.models.promotion_margin
    promoted, decision = decide(metrics["auc"], baseline["auc"],
                                None if current is None else (current["version"], champion_metrics["auc"]), margin)
    version = _next_version(model)
    importance = challenger.get_score(importance_type="gain")
    card = {
        "model": model, "version": version, "label": spec.label, "training_partition": day.isoformat(),
        "split_days": {k: [d.isoformat() for d in v] for k, v in split_days(day, model).items()},
        "features": list(challenger.feature_names), "metrics": metrics, "baseline": baseline,
        "champion": None if current is None else {"version": current["version"], "metrics": champion_metrics},
        "promoted": promoted, "promotion_margin": margin, "decision": decision,
        "feature_importance_gain": dict(sorted(importance.items(), key=lambda kv: -kv[1])),
        "trained_artifact": artifact,
    }
    target = registry_dir(model) / version
    with storage.committing(target) as staging:
        (staging / "model.tar.gz").write_bytes(storage.location(artifact).read_bytes())
        card["model_data"] = storage.url_of(target / "model.tar.gz")
        card["model_package_arn"] = register_model_package(card)
        report = render_report(card, y, {"challenger": p, "baseline": baseline_p})
        (staging / "report.html").write_text(report)
        storage.write_json(staging / "card.json", card)
    reports = storage.zone("reports", f"dt={day.isoformat()}", "models", f"{model}.html")
    reports.parent.mkdir(parents=True, exist_ok=True)
    reports.write_text(report)
    if promoted:
        storage.write_json(registry_dir(model) / "champion.json", {"version": version, "promoted_on": day.isoformat()})
    log.info("model %s %s: test AUC %.4f (baseline %.4f, champion %s): %s; report %s", model, version,
             metrics["auc"], baseline["auc"], champion_metrics and round(champion_metrics["auc"], 4),
             card["decision"], storage.url_of(reports))
    return {"model": model, "version": version, "promoted": promoted, "decision": card["decision"],
            "test_auc": metrics["auc"], "baseline_auc": baseline["auc"],
            "champion_auc": champion_metrics and champion_metrics["auc"], "report": storage.url_of(reports),
            "registry": storage.url_of(target)}


# ---------------------------------------------------------------- report
def render_report(card: dict, y: np.ndarray, scores: dict[str, np.ndarray]) -> str:
    """One self-contained HTML page: metrics, decision, ROC, precision-recall, gain, calibration, importance."""
    import base64
    import html

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    fig, axes = plt.subplots(2, 3, figsize=(15, 9))
    (roc, pr, gain), (calibration, importance, blank) = axes
    positives = max(y.sum(), 1)
    points = np.unique(np.linspace(0, len(y) - 1, 400).astype(int))  # curves drawn through 400 cut-offs
    for name, p in scores.items():
        order = np.argsort(-p, kind="stable")
        hits = y[order]
        tpr = np.cumsum(hits) / positives
        fpr = np.cumsum(1 - hits) / max(len(y) - y.sum(), 1)
        roc.plot(np.concatenate([[0], fpr[points]]), np.concatenate([[0], tpr[points]]),
                 label=f"{name} (AUC {auc(y, p):.3f})")
        precision = np.cumsum(hits) / np.arange(1, len(y) + 1)
        pr.plot(tpr[points], precision[points], label=name)
        gain.plot((points + 1) / len(y), tpr[points], label=name)
    roc.plot([0, 1], [0, 1], "k:", linewidth=0.8)
    gain.plot([0, 1], [0, 1], "k:", linewidth=0.8)
    for axis, title, xlabel, ylabel in ((roc, "ROC", "false positive rate", "true positive rate"),
                                        (pr, "Precision-recall", "recall", "precision"),
                                        (gain, "Cumulative gain (lift)", "share of customers targeted",
                                         "share of positives captured")):
        axis.set(title=title, xlabel=xlabel, ylabel=ylabel)
        axis.legend(loc="lower right" if axis is not pr else "upper right", fontsize=8)
    bins = card["metrics"]["calibration"]
    calibration.plot([b["mean_predicted"] for b in bins], [b["observed_rate"] for b in bins], "o-")
    calibration.plot([0, 1], [0, 1], "k:", linewidth=0.8)
    calibration.set(title="Calibration", xlabel="mean predicted probability", ylabel="observed rate")
    top = list(card["feature_importance_gain"].items())[:15][::-1]
    importance.barh([k for k, _ in top], [v for _, v in top])
    importance.set(title="Feature importance (gain)")
    blank.axis("off")
    fig.tight_layout()
    buffer = __import__("io").BytesIO()
    fig.savefig(buffer, format="png", dpi=80)
    plt.close(fig)
    image = base64.b64encode(buffer.getvalue()).decode()

    def row(name: str, metrics: dict | None) -> str:
        if metrics is None:
            return ""
        keys = ("auc", "pr_auc", "log_loss", "top_decile_lift", "top_decile_capture", "calibration_error")
        cells = "".join(f"<td>{metrics[k]:.4f}</td>" if metrics[k] == metrics[k] else "<td>n/a</td>" for k in keys)
        return f"<tr><th>{html.escape(name)}</th>{cells}</tr>"

    champion_metrics = card["champion"]["metrics"] if card["champion"] else None
    return f"""<!doctype html><html><head><meta charset="utf-8"><title>{card['model']} {card['version']}</title>
<style>body{{font-family:sans-serif;margin:2em}} td,th{{padding:4px 10px;text-align:right}}</style></head><body>
<h1>Model {html.escape(card['model'])} {card['version']} ({html.escape(card['label'])})</h1>
<p>Trained on partition {card['training_partition']}; as-of days {html.escape(json.dumps(card['split_days']))}.</p>
<p><b>{html.escape(card['decision'])}</b> (margin {card['promotion_margin']}).</p>
<table><tr><th></th><th>AUC</th><th>PR-AUC</th><th>log loss</th><th>top-decile lift</th>
<th>top-decile capture</th><th>calibration error</th></tr>
{row('challenger', card['metrics'])}{row('RFM baseline', card['baseline'])}{row('champion', champion_metrics)}
</table><img alt="evaluation plots" src="data:image/png;base64,{image}"></body></html>
"""
