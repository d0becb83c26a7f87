"""SageMaker as the aws target receives it: raw API configs (tuning, training, model, batch transform), job names,
the script-mode source dir (include/sagemaker) and its CSV format, and loading a model through inference.py.

The aws target passes these configs to the provider's operators (`SageMakerTuningOperator`,
`SageMakerTrainingOperator`, `SageMakerModelOperator`, `SageMakerTransformOperator`); the local target runs the
very same configs with crosschannel.local.sagemaker. Evaluation loads models the way the endpoint does, through
inference.py's `model_fn` and `predict_fn`, on both targets.
"""

from __future__ import annotations

import datetime as dt
import io
import tarfile
import tempfile
from pathlib import Path

from crosschannel.core import paths, storage
from crosschannel.core.config import BUNDLE_ROOT, get_config
from crosschannel.core.partition import run_hash

SOURCE_DIR = BUNDLE_ROOT / "include" / "sagemaker"
OBJECTIVE_METRIC = "validation:auc"
# The XGBoost image's built-in metrics (sagemaker-xgboost-container, algorithm_mode/metrics.py): the first-party
# image rejects custom MetricDefinitions in a tuning job (aws/sagemaker-xgboost-container#121), so the jobs name
# none and train.py prints its result in the format these read. #011 is a tab as CloudWatch keeps the log.
# The XGBoost framework image tags this bundle supports, with the Python and XGBoost that train.py and inference.py
# run on there. 3.2-0, the default: XGBoost 3.2.0 (the version the local target pins, so both targets train and
# read models with one library), Python 3.12, released 2026-05-13, patched until 2027-05-13 (aws/deep-learning-
# containers: docs/src/data/sagemaker-xgboost/3.2-0-cpu-sagemaker.yml, docker/xgboost/pyproject.toml). 1.7-1:
# XGBoost 1.7, Python 3.8 (end of life), kept for deployments that pinned it.
IMAGES = {"3.2-0": {"python": "3.12", "xgboost": "3.2.0"}, "1.7-1": {"python": "3.8", "xgboost": "1.7"}}
BUILTIN_METRICS = {name: rf".*\[[0-9]+\].*#011validation-{name.split(':')[1]}:(\S+)"
                   for name in ("validation:auc", "validation:logloss")}


def job_name(model: str, day: dt.date, kind: str, run: str = "") -> str:
    """Names derived from model, partition, step and (for jobs SageMaker cannot re-create under one name) a
    short hash of the Airflow run, so a re-run starts fresh jobs (tuning job names are capped at 32)."""
    suffix = f"-{run_hash(run)}" if run else ""
    return f"{model[:10]}-{day:%Y%m%d}-{kind}"[: 32 - len(suffix)] + suffix


def upload_source_dir() -> str:
    """include/sagemaker as sourcedir-<content hash>.tar.gz under <root>/system/sagemaker/ (what script mode
    downloads): running jobs and registered models keep the code they were created with."""
    import gzip
    import hashlib

    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        for path in sorted(SOURCE_DIR.glob("*.py")):
            info = tarfile.TarInfo(path.name)
            data = path.read_bytes()
            info.size, info.mtime, info.mode = len(data), 0, 0o644
            tar.addfile(info, io.BytesIO(data))
    data = gzip.compress(buffer.getvalue(), mtime=0)  # same code, same bytes, same name
    target = paths.system("sagemaker", f"sourcedir-{hashlib.sha256(data).hexdigest()[:12]}.tar.gz")
    if not target.exists():
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)
    return storage.url_of(target)


def _channel(name: str, url: str) -> dict:
    return {"ChannelName": name, "ContentType": "text/csv", "InputMode": "File",
            "DataSource": {"S3DataSource": {"S3DataType": "S3Prefix", "S3Uri": url,
                                            "S3DataDistributionType": "FullyReplicated"}}}


def _training_definition(channels: dict[str, str], output: str) -> dict:
    """What a training job and a tuning job's trials share: image, role, channels, output, resources."""
    cfg = get_config().aws.sagemaker
    return {
        "AlgorithmSpecification": {"TrainingImage": cfg.image_uri, "TrainingInputMode": "File"},
        "RoleArn": cfg.role_arn,
        "InputDataConfig": [_channel(c, url) for c, url in channels.items()],
        "OutputDataConfig": {"S3OutputPath": output},
        "ResourceConfig": {"InstanceType": cfg.instance_type, "InstanceCount": 1, "VolumeSizeInGB": 30},
        "StoppingCondition": {"MaxRuntimeInSeconds": 3600},
    }


def static_hyperparameters(source_dir: str) -> dict[str, str]:
    models = get_config().models
    return {"sagemaker_program": "train.py", "sagemaker_submit_directory": source_dir,
            "num_round": str(models.max_rounds), "early_stopping_rounds": str(models.early_stopping_rounds),
            "seed": str(models.seed)}


def tuning_config(name: str, channels: dict[str, str], output: str, source_dir: str) -> dict:
    """CreateHyperParameterTuningJob: Bayesian over the configured ranges, maximizing validation AUC."""
    models = get_config().models
    ranges: dict[str, list] = {"IntegerParameterRanges": [], "ContinuousParameterRanges": [],
                               "CategoricalParameterRanges": []}
    for key, spec in models.ranges.items():
        kind = "IntegerParameterRanges" if spec.kind == "integer" else "ContinuousParameterRanges"
        low, high = (int(spec.min), int(spec.max)) if spec.kind == "integer" else (spec.min, spec.max)
        ranges[kind].append({"Name": key, "MinValue": str(low), "MaxValue": str(high), "ScalingType": spec.scaling})
    return {
        "HyperParameterTuningJobName": name,
        "HyperParameterTuningJobConfig": {
            "Strategy": "Bayesian",
            "HyperParameterTuningJobObjective": {"Type": "Maximize", "MetricName": OBJECTIVE_METRIC},
            "ResourceLimits": {"MaxNumberOfTrainingJobs": models.max_trials,
                               "MaxParallelTrainingJobs": models.max_parallel_trials},
            "ParameterRanges": ranges,
            "RandomSeed": models.seed,
        },
        "TrainingJobDefinition": {"StaticHyperParameters": static_hyperparameters(source_dir),
                                  **_training_definition(channels, output)},
    }


def training_config(name: str, channels: dict[str, str], output: str, hyperparameters: dict[str, str]) -> dict:
    """CreateTrainingJob with the given (tuned) hyperparameters."""
    return {"TrainingJobName": name, "HyperParameters": {k: str(v) for k, v in hyperparameters.items()},
            **_training_definition(channels, output)}


def model_config(name: str, model_data: str, source_dir: str) -> dict:
    """CreateModel: the XGBoost framework image serving inference.py from the source dir."""
    cfg = get_config().aws.sagemaker
    return {
        "ModelName": name,
        "ExecutionRoleArn": cfg.role_arn,
        "PrimaryContainer": {"Image": cfg.image_uri, "ModelDataUrl": model_data,
                             "Environment": {"SAGEMAKER_PROGRAM": "inference.py",
                                             "SAGEMAKER_SUBMIT_DIRECTORY": source_dir}},
    }


def transform_config(name: str, model_name: str, input_url: str, output_url: str, n_features: int,
                     n_outputs: int) -> dict:
    """CreateTransformJob: one CSV line per customer (id first); the model sees the features only, and each
    output line is the id followed by the model's outputs (JoinSource Input, then OutputFilter)."""
    cfg = get_config().aws.sagemaker
    kept = ",".join(str(i) for i in [0, *range(n_features + 1, n_features + 1 + n_outputs)])
    return {
        "TransformJobName": name,
        "ModelName": model_name,
        "MaxPayloadInMB": 6,
        "BatchStrategy": "MultiRecord",
        "TransformInput": {"DataSource": {"S3DataSource": {"S3DataType": "S3Prefix", "S3Uri": input_url}},
                           "ContentType": "text/csv", "SplitType": "Line"},
        "TransformOutput": {"S3OutputPath": output_url, "Accept": "text/csv", "AssembleWith": "Line"},
        "TransformResources": {"InstanceType": cfg.instance_type, "InstanceCount": 1},
        "DataProcessing": {"InputFilter": "$[1:]", "JoinSource": "Input", "OutputFilter": f"$[{kept}]"},
    }


def write_csv(table, handle) -> None:
    """SageMaker CSV (an Arrow table or a pandas frame): no header, a missing value as an empty field, floats in
    their shortest exact form (Arrow's writer, ~6x faster than pandas' here)."""
    import pyarrow as pa
    from pyarrow import csv

    if not isinstance(table, pa.Table):
        table = pa.Table.from_pandas(table, preserve_index=False)
    csv.write_csv(table, handle, csv.WriteOptions(include_header=False))


def load_handlers(source_dir: str):
    """inference.py from the source dir (sourcedir.tar.gz) as a module."""
    import importlib.util

    with tempfile.TemporaryDirectory(prefix="sm-inference-") as tmp:
        with tarfile.open(fileobj=io.BytesIO(storage.location(source_dir).read_bytes())) as tar:
            tar.extractall(tmp, filter="data")
        spec = importlib.util.spec_from_file_location("crosschannel_inference", Path(tmp) / "inference.py")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
    return module


def load_model(handlers, model_data: str):
    """model_fn over an extracted model.tar.gz (file:// or s3://)."""
    with tempfile.TemporaryDirectory(prefix="sm-model-") as tmp:
        with tarfile.open(fileobj=io.BytesIO(storage.location(model_data).read_bytes())) as tar:
            tar.extractall(tmp, filter="data")
        return handlers.model_fn(tmp)  # the booster is in memory: the folder can go
