"""The model registry: every trained version, immutable, and the champion that scores.

    <root>/ml/<model>/registry/vNNNN/                every trained version: model.tar.gz, card.json, report.html
    <root>/ml/<model>/registry/champion.json         the version that scores
On aws every version is also a model package of the SageMaker model package group
<aws.sagemaker.model_package_group>-<model> (Approved when promoted, Rejected otherwise).
"""

from __future__ import annotations

import datetime as dt
import logging
from typing import TYPE_CHECKING

from crosschannel.core import awsapi, paths, sagemaker, storage
from crosschannel.core.config import get_config
from crosschannel.stages.models.datasets import matrix, read_snapshots, split_days
from crosschannel.stages.models.metrics import baseline_scores, evaluate
from crosschannel.stages.models.report import render_report

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

log = logging.getLogger(__name__)


def champion(model: str) -> dict | None:
    """The champion's card (metrics, version, model location), or None before the first promotion."""
    pointer = paths.registry(model) / "champion.json"
    if not pointer.exists():
        return None
    version = storage.read_json(pointer)["version"]
    return storage.read_json(storage.resolve(paths.registry(model) / version) / "card.json")


def _next_version(model: str) -> str:
    """Versions are immutable: every training run registers a new one (re-training a partition included),
    so the champion is never overwritten nor compared with itself."""
    folder = paths.registry(model)
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
    source_dir = sagemaker.upload_source_dir()
    request = {
        "ModelPackageGroupName": group,
        "ModelPackageDescription": f"{card['version']} trained on partition {card['training_partition']}",
        "InferenceSpecification": {
            "Containers": [{"Image": cfg.aws.sagemaker.image_uri, "ModelDataUrl": card["model_data"],
                            "Environment": {"SAGEMAKER_PROGRAM": "inference.py",
                                            "SAGEMAKER_SUBMIT_DIRECTORY": source_dir}}],
            "SupportedContentTypes": ["text/csv"], "SupportedResponseMIMETypes": ["text/csv"]},
        "ModelApprovalStatus": "Approved" if card["promoted"] else "Rejected",
        "CustomerMetadataProperties": {
            "version": card["version"], "training_partition": card["training_partition"],
            "test_auc": f"{card['metrics']['auc']:.6f}", "baseline_auc": f"{card['baseline']['auc']:.6f}",
            "decision": card["decision"][:250]},
    }
    awsapi.check("sagemaker", "CreateModelPackage", request)  # AWS's own limits (descriptions, metadata values)
    return client.create_model_package(**request)["ModelPackageArn"]


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
    data = storage.resolve(paths.dataset(model, day))
    with (data / "test.parquet").open("rb") as handle:
        import pandas as pd

        test = pd.read_parquet(handle)
    train = read_snapshots(day, split_days(day, model)["train"])
    train = train[train[spec.label].notna()]
    y = test[spec.label].to_numpy().astype("float64")
    handlers = sagemaker.load_handlers(sagemaker.upload_source_dir())
    challenger = sagemaker.load_model(handlers, artifact)
    p = predict(handlers, challenger, test)
    metrics = evaluate(y, p)
    baseline_p = baseline_scores(train, test, spec.label)
    baseline = evaluate(y, baseline_p)
    baseline.update(log_loss=float("nan"), calibration_error=float("nan"), calibration=[])  # a rank, not a probability
    current = champion(model)
    champion_metrics = None
    if current is not None:
        champion_model = sagemaker.load_model(handlers, current["model_data"])
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
    target = paths.registry(model) / version
    with storage.committing(target) as staging:
        (staging / "model.tar.gz").write_bytes(storage.location(artifact).read_bytes())
        card["model_data"] = storage.url_of(staging / "model.tar.gz")  # the committed version is this folder
        card["model_package_arn"] = register_model_package(card)
        report = render_report(card, y, {"challenger": p, "baseline": baseline_p})
        (staging / "report.html").write_text(report)
        storage.write_json(staging / "card.json", card)
    reports = paths.reports(day, "models", f"{model}.html")
    reports.parent.mkdir(parents=True, exist_ok=True)
    reports.write_text(report)
    if promoted:
        storage.write_json(paths.registry(model) / "champion.json",
                           {"version": version, "promoted_on": day.isoformat()})
    log.info("model %s %s: test AUC %.4f (baseline %.4f, champion %s): %s; report %s", model, version,
             metrics["auc"], baseline["auc"], champion_metrics and round(champion_metrics["auc"], 4),
             card["decision"], storage.url_of(reports))
    return {"model": model, "version": version, "promoted": promoted, "decision": card["decision"],
            "test_auc": metrics["auc"], "baseline_auc": baseline["auc"],
            "champion_auc": champion_metrics and champion_metrics["auc"], "report": storage.url_of(reports),
            "registry": storage.url_of(target)}
