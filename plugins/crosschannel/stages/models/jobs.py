"""SageMaker job plans of the weekly training: a tuning job per model, then a training job with its best
hyperparameters. The configs are crosschannel.core.sagemaker's; outputs go to <root>/ml/<model>/models/dt=D/.
"""

from __future__ import annotations

import datetime as dt
import logging

from crosschannel.core import paths, sagemaker, storage
from crosschannel.core.config import get_config
from crosschannel.stages.models.datasets import ModelError

log = logging.getLogger(__name__)


def _channels(model: str, day: dt.date) -> dict[str, str]:
    base = paths.dataset(model, day)
    return {split: storage.url_of(storage.resolve(base / split)) for split in ("train", "validation")}


def models_output(model: str, day: dt.date) -> str:
    return storage.url_of(paths.model_output(model, day))


def plan_tuning(day: dt.date, names: list[str] | None = None, run: str = "") -> list[dict]:
    """CreateHyperParameterTuningJob configs, one per model (the source dir uploaded first)."""
    source_dir = sagemaker.upload_source_dir()
    plans = []
    for model in names or get_config().models.specs:
        output = storage.location(models_output(model, day))
        output.mkdir(parents=True, exist_ok=True)
        plans.append(sagemaker.tuning_config(sagemaker.job_name(model, day, "tune", run), _channels(model, day),
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
    source_dir = sagemaker.upload_source_dir()
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
        hps = {**sagemaker.static_hyperparameters(source_dir), **best["TunedHyperParameters"]}
        plans.append(sagemaker.training_config(sagemaker.job_name(model, day, "train", run), _channels(model, day),
                                               models_output(model, day), hps))
    return plans


def artifact_of(trained) -> str:
    """The model.tar.gz a training task reported: SageMakerTrainingOperator's {"Training": Describe...} on
    aws, the local run's URL on local."""
    if isinstance(trained, dict):
        return trained["Training"]["ModelArtifacts"]["S3ModelArtifacts"]
    return trained
