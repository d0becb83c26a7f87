"""The model registry: every trained version, immutable, and the champion that scores.

    <root>/ml/<model>/registry/vNNNN/                every trained version: model.tar.gz, card.json, report.html
    <root>/ml/<model>/registry/bNNNN/                a baseline version (BG/NBD or RFM fitted on the training rows),
                                                     registered only when it becomes the champion
    <root>/ml/<model>/registry/champion.json         the version that scores
Never stall: every training run scores its challenger, the RFM and BG/NBD baselines and the champion on the same
test rows. The challenger is promoted when it beats the strongest baseline and the champion by the margin. Else
the champion changes only where `fallback` says: with no champion yet, or a trained champion that no longer beats
the strongest baseline, the strongest baseline becomes the champion as a baseline version; a baseline champion is
replaced by a newly fitted baseline only when that beats it by the margin (the promotion rule), so a weekly refit
of the same baseline registers nothing and the daily scores stay one version's. A baseline version's model.tar.gz
holds its fitted features.json, which inference.py serves like any other (it names its kind), so scoring runs
through the same CreateModel and batch transform on both targets.
On aws every version is also a model package of the SageMaker model package group
<aws.sagemaker.model_package_group>-<model> (Approved when promoted, Rejected otherwise).
"""

from __future__ import annotations

import datetime as dt
import logging
from typing import TYPE_CHECKING

from crosschannel.core import awsapi, paths, sagemaker, storage
from crosschannel.core.config import get_config
from crosschannel.stages.models import datasets
from crosschannel.stages.models.datasets import BGNBD_INPUTS, matrix, read_snapshots
from crosschannel.stages.models.metrics import auc, evaluate, finite, stable_hash
from crosschannel.stages.models.report import BASELINES, reason_labels, render_report

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


def _next_version(model: str, prefix: str = "v") -> str:
    """Versions are immutable: every training run registers a new one (re-training a partition included),
    so the champion is never overwritten nor compared with itself. `prefix`: v for trained, b for baseline."""
    folder = paths.registry(model)
    taken = [int(p.name[1:]) for p in folder.glob(f"{prefix}*") if p.name[1:].isdigit()] if folder.exists() else []
    return f"{prefix}{max(taken, default=0) + 1:04d}"


def decide(challenger_auc: float, baseline_auc: float, champion: tuple[str, float] | None,
           margin: float) -> tuple[bool, str]:
    """Promote the challenger only if its test AUC beats the strongest baseline's and the champion's (same rows)
    by `margin`; the first model needs to beat the baseline only."""
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


def fallback(strongest: tuple[str, float], current: tuple[str, str, float] | None, margin: float) -> tuple[bool, str]:
    """When the challenger is not promoted: whether the strongest baseline (kind, test AUC) becomes the champion as
    a new baseline version, and why. `current`: the champion's (version, kind, test AUC on the same rows). A trained
    champion stays while it beats the strongest baseline; a baseline champion stays unless the new fit beats it by
    `margin`, whatever its kind, as a challenger would have to."""
    kind, baseline_auc = strongest
    name = BASELINES[kind]
    if current is None:
        return True, f"no trained model beats the {name} (AUC {baseline_auc:.4f}), which becomes the first champion"
    version, current_kind, current_auc = current
    if current_kind == "xgboost":
        if current_auc >= baseline_auc:
            return False, f"trained champion {version} stays: AUC {current_auc:.4f}, the {name}'s {baseline_auc:.4f}"
        return True, (f"trained champion {version} (AUC {current_auc:.4f}) no longer beats the {name} "
                      f"({baseline_auc:.4f}), which replaces it")
    if baseline_auc >= current_auc + margin:
        return True, (f"the {name} fitted now (AUC {baseline_auc:.4f}) beats baseline champion {version} "
                      f"({current_auc:.4f}) by {margin} and replaces it")
    return False, (f"baseline champion {version} ({BASELINES.get(current_kind, current_kind)}) stays: AUC "
                   f"{current_auc:.4f}; the {name} fitted now ({baseline_auc:.4f}) does not beat it by {margin}")


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


def predict(loaded, frame: pd.DataFrame) -> np.ndarray:
    """The probabilities inference.py serves for the frame's rows (its scoring without the reason codes: the
    per-row reason lists of predict_fn took most of the evaluation's scoring time)."""
    probabilities, _ = loaded.score(matrix(frame, list(loaded.feature_names)), reasons=False)
    return probabilities.astype("float64")


def fit_baselines(handlers, model: str, train: pd.DataFrame) -> dict[str, dict]:
    """The RFM and BG/NBD baselines' features.json, fitted on the latest training as-of day's rows."""
    spec = get_config().models.specs[model]
    names = sorted({*handlers.RFM_INPUTS, *BGNBD_INPUTS.values()})
    y = train[spec.label].to_numpy().astype("float64")
    return {kind: handlers.fit_baseline(kind, matrix(train, names), names, y, spec.horizon_days, BGNBD_INPUTS)
            for kind in BASELINES}


def oracle_auc(model: str, test: pd.DataFrame) -> float | None:
    """The AUC of the generator's true probabilities on the test rows, where it wrote them (a generated retailer's
    live days: <root>/generator/days/dt=<as-of>/truth.parquet); None otherwise."""
    import pandas as pd

    label = get_config().models.specs[model].label
    frames = []
    for as_of in sorted(set(test["as_of"])):
        truth = paths.partition("generator", "days", day=as_of) / "truth.parquet"
        if not truth.exists():
            return None
        with truth.open("rb") as handle:
            frames.append(pd.read_parquet(handle).assign(as_of=as_of))
    joined = test.merge(pd.concat(frames), on=["customer_id", "as_of"], how="inner")
    column = f"p_{label}"
    return auc(joined[label].to_numpy(), joined[column].to_numpy()) if column in joined and len(joined) else None


def _write_version(model: str, version: str, card: dict, artifact: bytes, report: str) -> dict:
    with storage.committing(paths.registry(model) / version) as staging:
        (staging / "model.tar.gz").write_bytes(artifact)
        card["model_data"] = storage.url_of(staging / "model.tar.gz")  # the committed version is this folder
        card["model_package_arn"] = register_model_package(card)
        (staging / "report.html").write_text(report)
        storage.write_json(staging / "card.json", finite(card))
    return card


def _baseline_artifact(features: dict) -> bytes:
    """model.tar.gz of a baseline version: its features.json, which inference.py's model_fn reads."""
    import io
    import json
    import tarfile

    buffer, data = io.BytesIO(), json.dumps(features, indent=2).encode()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        info = tarfile.TarInfo("features.json")
        info.size, info.mtime, info.mode = len(data), 0, 0o644
        tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def evaluate_and_promote(day: dt.date, model: str, artifact: str) -> dict:
    """Score the held-out test rows with the challenger, both baselines and the champion; register the challenger
    as a new version with its metrics and report; promote it only if its test AUC beats the strongest baseline
    and the champion (on the same rows) by `models.promotion_margin`; else register the strongest baseline as a
    version and make it the champion where `fallback` says so."""

    cfg = get_config()
    spec = cfg.models.specs[model]
    manifests = datasets.manifests(model, day)
    test = datasets.test_rows(model, day, manifests)
    days = {split: [dt.date.fromisoformat(d) for d in m["as_of"]] for split, m in manifests.items()}
    train = read_snapshots(day, days["train"][-1:])
    train = train[train[spec.label].notna()]
    y = test[spec.label].to_numpy().astype("float64")
    ties = stable_hash(test["customer_id"], model)
    handlers = sagemaker.load_handlers(sagemaker.upload_source_dir())
    challenger = sagemaker.load_model(handlers, artifact)
    scores = {"challenger": predict(challenger, test)}
    metrics = evaluate(y, scores["challenger"], ties)
    fitted = fit_baselines(handlers, model, train)
    baselines = {}
    for kind, features in fitted.items():
        scores[BASELINES[kind]] = predict(handlers.Propensity(features), test)
        baselines[kind] = evaluate(y, scores[BASELINES[kind]], ties)
    strongest = max(baselines, key=lambda k: baselines[k]["auc"])
    current = champion(model)
    champion_metrics = None
    if current is not None:
        champion_model = sagemaker.load_model(handlers, current["model_data"])
        champion_metrics = evaluate(y, predict(champion_model, test), ties)
    margin = cfg.models.promotion_margin
    promoted, decision = decide(metrics["auc"], baselines[strongest]["auc"],
                                None if current is None else (current["version"], champion_metrics["auc"]), margin)
    baseline_version = None
    if not promoted:
        replace, why = fallback((strongest, baselines[strongest]["auc"]), None if current is None else (
            current["version"], current.get("kind", "xgboost"), champion_metrics["auc"]), margin)
        baseline_version = _next_version(model, "b") if replace else None
        decision += f"; {why}" + (f" as version {baseline_version}" if replace else "")
    version = _next_version(model)
    importance = challenger.booster.get_score(importance_type="gain")
    card = {
        "model": model, "kind": "xgboost", "version": version, "label": spec.label,
        "training_partition": day.isoformat(), "split_days": {k: [d.isoformat() for d in v] for k, v in days.items()},
        "split": manifests["test"].get("layout"),
        "splits": {k: {"rows": m["rows"], "positives": m["positives"], "positive_rate": m["positives"] / m["rows"]}
                   for k, m in manifests.items()},
        "features": list(challenger.feature_names), "metrics": metrics,
        "baseline": {**baselines[strongest], "name": strongest}, "baselines": baselines,
        "oracle_auc": oracle_auc(model, test),
        "champion": None if current is None else {"version": current["version"], "kind": current.get("kind", "xgboost"),
                                                  "metrics": champion_metrics},
        "promoted": promoted, "promotion_margin": margin, "decision": decision,
        "serving_champion": version if promoted else baseline_version or current["version"],
        "feature_importance_gain": dict(sorted(importance.items(), key=lambda kv: -kv[1])),
        "reason_labels": reason_labels(challenger.reason_names), "trained_artifact": artifact,
    }
    report = render_report(card, y, scores, ties)
    _write_version(model, version, card, storage.location(artifact).read_bytes(), report)
    if baseline_version:
        features = fitted[strongest]
        _write_version(model, baseline_version, {
            **{k: card[k] for k in ("model", "label", "training_partition", "split_days", "split", "splits",
                                    "baselines", "oracle_auc", "promotion_margin", "decision", "champion")},
            "kind": strongest, "version": baseline_version, "features": features["features"],
            "metrics": baselines[strongest], "baseline": card["baseline"], "promoted": True,
            "serving_champion": baseline_version,
            "fitted": features, "challenger": version, "reason_labels": reason_labels(features["features"]),
        }, _baseline_artifact(features), report)
    reports = paths.reports(day, "models", f"{model}.html")
    reports.parent.mkdir(parents=True, exist_ok=True)
    reports.write_text(report)
    if promoted or baseline_version:
        storage.write_json(paths.registry(model) / "champion.json",
                           {"version": version if promoted else baseline_version, "promoted_on": day.isoformat()})
    log.info("model %s %s: test AUC %.4f (RFM %.4f, BG/NBD %.4f, champion %s): %s; report %s", model, version,
             metrics["auc"], baselines["rfm"]["auc"], baselines["bgnbd"]["auc"],
             champion_metrics and round(champion_metrics["auc"], 4), decision, storage.url_of(reports))
    return finite({"model": model, "version": version, "promoted": promoted, "decision": decision,
                   "champion": card["serving_champion"], "test_auc": metrics["auc"],
                   "baseline_auc": baselines[strongest]["auc"],
                   "baselines": {k: v["auc"] for k, v in baselines.items()}, "oracle_auc": card["oracle_auc"],
                   "champion_auc": champion_metrics and champion_metrics["auc"], "report": storage.url_of(reports),
                   "registry": storage.url_of(paths.registry(model) / version)})
