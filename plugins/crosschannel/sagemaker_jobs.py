"""SageMaker jobs as raw API configs, and their local runs from the very same configs.

The aws target passes these configs to the provider's operators (`SageMakerTuningOperator`,
`SageMakerTrainingOperator`, `SageMakerModelOperator`, `SageMakerTransformOperator`). The local target
runs them here the way SageMaker would, on local disk:

- a training job extracts the `sagemaker_submit_directory` (include/sagemaker as sourcedir.tar.gz), lays
  the channels out as SM_CHANNEL_* folders, runs `python train.py --<hyperparameter> <value>...` in a
  subprocess with the SM_* environment, and tars SM_MODEL_DIR to <output>/<job>/output/model.tar.gz;
- a tuning job draws `MaxNumberOfTrainingJobs` trials from the same `ParameterRanges` (seeded random
  search: the local stand-in for the Bayesian strategy), reads each trial's objective from its log with
  the job's own MetricDefinitions regex, and records the best as DescribeHyperParameterTuningJob does;
- a transform job loads the model with inference.py's `model_fn` and sends the input lines through
  `input_fn` / `predict_fn` / `output_fn`, applying the job's `DataProcessing` (InputFilter, JoinSource,
  OutputFilter) so the output lines carry the customer id like SageMaker's.
"""

from __future__ import annotations

import io
import json
import math
import os
import re
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

from crosschannel import storage
from crosschannel.config import BUNDLE_ROOT, get_config

SOURCE_DIR = BUNDLE_ROOT / "include" / "sagemaker"
OBJECTIVE_METRIC = "validation:auc"
METRIC_DEFINITIONS = [
    {"Name": "validation:auc", "Regex": r"validation-auc:([0-9\.]+)"},
    {"Name": "validation:logloss", "Regex": r"validation-logloss:([0-9\.]+)"},
]


class SageMakerJobError(RuntimeError):
    """A (local) SageMaker job failed; the message names the job and the reason, like FailureReason."""


# ---------------------------------------------------------------- configs (both targets)
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
    target = storage.zone("system", "sagemaker", f"sourcedir-{hashlib.sha256(data).hexdigest()[:12]}.tar.gz")
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
        "AlgorithmSpecification": {"TrainingImage": cfg.image_uri, "TrainingInputMode": "File",
                                   "MetricDefinitions": METRIC_DEFINITIONS},
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


# ---------------------------------------------------------------- local runs of the same configs
def _local_dir(url: str) -> Path:
    if not url.startswith("file://"):
        raise SageMakerJobError(f"{url}: the local target runs SageMaker jobs on file:// locations only")
    return Path(url.removeprefix("file://"))


def _extract_source(url: str, into: Path) -> Path:
    with tarfile.open(_local_dir(url)) as tar:
        tar.extractall(into, filter="data")
    return into


def run_training_job(config: dict) -> dict:
    """Run a CreateTrainingJob config locally; returns DescribeTrainingJob-like fields."""
    name = config["TrainingJobName"]
    hps = dict(config["HyperParameters"])
    output = _local_dir(config["OutputDataConfig"]["S3OutputPath"]) / name / "output"
    with tempfile.TemporaryDirectory(prefix=f"sm-{name}-") as tmp:
        work = Path(tmp)
        code = _extract_source(hps.pop("sagemaker_submit_directory"), work / "code")
        program = hps.pop("sagemaker_program")
        env = {**os.environ, "SM_MODEL_DIR": str(work / "model"), "SM_OUTPUT_DATA_DIR": str(work / "output"),
               "SM_HPS": json.dumps(hps), "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "2")}
        for channel in config["InputDataConfig"]:
            env[f"SM_CHANNEL_{channel['ChannelName'].upper()}"] = str(
                _local_dir(channel["DataSource"]["S3DataSource"]["S3Uri"]))
        argv = [token for key, value in sorted(hps.items()) for token in (f"--{key}", str(value))]
        done = subprocess.run([sys.executable, str(code / program), *argv], env=env, capture_output=True, text=True,
                              check=False)
        output.mkdir(parents=True, exist_ok=True)
        (output / "training.log").write_text(done.stdout + done.stderr)
        if done.returncode != 0:
            reason = (done.stderr.strip().splitlines() or ["no output"])[-1]
            raise SageMakerJobError(f"training job {name} failed: {reason} (log: {output / 'training.log'})")
        with tarfile.open(output / "model.tar.gz", "w:gz") as tar:
            for path in sorted((work / "model").iterdir()):
                tar.add(path, arcname=path.name)
        if (work / "output").exists():
            for path in (work / "output").iterdir():
                (output / path.name).write_bytes(path.read_bytes())
    metrics = []
    for definition in config["AlgorithmSpecification"].get("MetricDefinitions", []):
        found = re.findall(definition["Regex"], done.stdout)
        if found:
            metrics.append({"MetricName": definition["Name"], "Value": float(found[-1])})
    return {"TrainingJobName": name, "TrainingJobStatus": "Completed", "FinalMetricDataList": metrics,
            "HyperParameters": config["HyperParameters"],
            "ModelArtifacts": {"S3ModelArtifacts": f"file://{output / 'model.tar.gz'}"}}


def _draw(rng, spec: dict, integer: bool):
    low, high = float(spec["MinValue"]), float(spec["MaxValue"])
    if spec.get("ScalingType") == "Logarithmic":
        value = math.exp(rng.uniform(math.log(low), math.log(high)))
    else:
        value = rng.uniform(low, high)
    return str(round(value)) if integer else f"{value:.6g}"


def run_tuning_job(config: dict) -> dict:
    """Run a CreateHyperParameterTuningJob config locally (seeded random search over the same ranges and
    budget); returns DescribeHyperParameterTuningJob-like fields and keeps them as tuning.json."""
    import random

    name = config["HyperParameterTuningJobName"]
    tuning = config["HyperParameterTuningJobConfig"]
    definition = config["TrainingJobDefinition"]
    objective = tuning["HyperParameterTuningJobObjective"]
    rng = random.Random(tuning.get("RandomSeed", 0))
    trials = []
    for number in range(1, tuning["ResourceLimits"]["MaxNumberOfTrainingJobs"] + 1):
        ranges = tuning["ParameterRanges"]
        tuned = {r["Name"]: _draw(rng, r, True) for r in ranges.get("IntegerParameterRanges", [])}
        tuned |= {r["Name"]: _draw(rng, r, False) for r in ranges.get("ContinuousParameterRanges", [])}
        tuned |= {r["Name"]: rng.choice(r["Values"]) for r in ranges.get("CategoricalParameterRanges", [])}
        job = run_training_job({
            "TrainingJobName": f"{name}-{number:03d}",
            "HyperParameters": {**definition["StaticHyperParameters"], **tuned},
            "AlgorithmSpecification": definition["AlgorithmSpecification"],
            "InputDataConfig": definition["InputDataConfig"],
            "OutputDataConfig": definition["OutputDataConfig"],
        })
        value = next((m["Value"] for m in job["FinalMetricDataList"] if m["MetricName"] == objective["MetricName"]),
                     None)
        if value is None:
            raise SageMakerJobError(f"tuning job {name}: trial {number} logged no {objective['MetricName']}")
        trials.append({"TrainingJobName": job["TrainingJobName"], "TunedHyperParameters": tuned,
                       "FinalHyperParameterTuningJobObjectiveMetric": {"MetricName": objective["MetricName"],
                                                                       "Value": value}})
    sign = 1 if objective["Type"] == "Maximize" else -1
    best = max(trials, key=lambda t: sign * t["FinalHyperParameterTuningJobObjectiveMetric"]["Value"])
    described = {"HyperParameterTuningJobName": name, "HyperParameterTuningJobStatus": "Completed",
                 "BestTrainingJob": best, "TrainingJobs": trials}
    target = _local_dir(definition["OutputDataConfig"]["S3OutputPath"]) / f"{name}.tuning.json"
    target.write_text(json.dumps(described, indent=2))
    return described


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


def _json_path_indices(path: str, width: int) -> list[int]:
    """The subset of SageMaker's JSONPath filters used here: "$[a:]", "$[i,j,...]" (negative counts back)."""
    inner = re.fullmatch(r"\$\[(.*)\]", path.strip())
    if not inner:
        raise SageMakerJobError(f"filter {path!r}: expected $[...]")
    indices: list[int] = []
    for part in inner[1].split(","):
        if ":" in part:
            start, _, stop = part.partition(":")
            indices += list(range(width))[slice(int(start) if start else None, int(stop) if stop else None)]
        else:
            index = int(part)
            indices.append(index if index >= 0 else width + index)
    return indices


def run_transform_job(model: dict, config: dict, batch_lines: int = 5000) -> dict:
    """Run a CreateTransformJob config locally with the model of a CreateModel config: every input file
    becomes <output>/<file name>.out, line for line."""
    container = model["PrimaryContainer"]
    handlers = load_handlers(container["Environment"]["SAGEMAKER_SUBMIT_DIRECTORY"])
    loaded = load_model(handlers, container["ModelDataUrl"])
    processing = config["DataProcessing"]
    source = _local_dir(config["TransformInput"]["DataSource"]["S3DataSource"]["S3Uri"])
    output = _local_dir(config["TransformOutput"]["S3OutputPath"])
    output.mkdir(parents=True, exist_ok=True)
    records = 0
    for path in sorted(p for p in source.rglob("*") if p.is_file()):
        lines = [line for line in path.read_text().splitlines() if line.strip()]
        out = []
        for start in range(0, len(lines), batch_lines):
            batch = [line.split(",") for line in lines[start : start + batch_lines]]
            filtered = [[row[i] for i in _json_path_indices(processing["InputFilter"], len(row))] for row in batch]
            body = "".join(",".join(row) + "\n" for row in filtered)
            result = handlers.output_fn(handlers.predict_fn(handlers.input_fn(body, "text/csv"), loaded), "text/csv")
            for row, answer in zip(batch, result.splitlines(), strict=True):
                joined = row + answer.split(",") if processing.get("JoinSource") == "Input" else answer.split(",")
                out.append(",".join(joined[i] for i in _json_path_indices(processing["OutputFilter"], len(joined))))
        (output / f"{path.name}.out").write_text("".join(line + "\n" for line in out))
        records += len(out)
    return {"TransformJobName": config["TransformJobName"], "TransformJobStatus": "Completed", "records": records}
