"""The local target's SageMaker: training, tuning and batch transform jobs run from the very same configs
(crosschannel.core.sagemaker) the way SageMaker would, on local disk. Never imported on the aws target.

- a training job extracts the `sagemaker_submit_directory` (include/sagemaker as sourcedir.tar.gz), lays
  the channels out as SM_CHANNEL_* folders, runs `python train.py --<hyperparameter> <value>...` in a
  subprocess with the SM_* environment, and tars SM_MODEL_DIR to <output>/<job>/output/model.tar.gz;
- a tuning job draws `MaxNumberOfTrainingJobs` trials from the same `ParameterRanges` (seeded random
  search: the local stand-in for the Bayesian strategy), reads each trial's objective from its log with
  the image's built-in metric regexes, and records the best as DescribeHyperParameterTuningJob does;
- CreateModel loads the artifact through inference.py's `model_fn`;
- a transform job sends the input lines through `input_fn` / `predict_fn` / `output_fn`, applying the job's
  `DataProcessing` (InputFilter, JoinSource, OutputFilter) so the output lines carry the customer id like
  SageMaker's.
"""

from __future__ import annotations

import datetime as dt
import functools
import json
import math
import os
import re
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

from crosschannel.core import paths, storage
from crosschannel.core.sagemaker import BUILTIN_METRICS, load_handlers, load_model

if TYPE_CHECKING:
    import pyarrow as pa


class SageMakerJobError(RuntimeError):
    """A (local) SageMaker job failed; the message names the job and the reason, like FailureReason."""


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
    logged = done.stdout.replace("\t", "#011")  # as CloudWatch keeps the log, which SageMaker's regexes read
    for name, regex in BUILTIN_METRICS.items():
        # a metric not last on its line captures the rest of it ("0.51#011validation-auc:0.82"), which is no
        # number: SageMaker emits only the values that parse, and so does this
        found = [float(value) for value in re.findall(regex, logged) if _is_number(value)]
        if found:
            metrics.append({"MetricName": name, "Value": found[-1]})
    return {"TrainingJobName": name, "TrainingJobStatus": "Completed", "FinalMetricDataList": metrics,
            "HyperParameters": config["HyperParameters"],
            "ModelArtifacts": {"S3ModelArtifacts": f"file://{output / 'model.tar.gz'}"}}


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


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


@functools.lru_cache(maxsize=64)
def _json_path_indices(path: str, width: int) -> tuple[int, ...]:
    """The subset of SageMaker's JSONPath filters used here: "$[a:]", "$[i,j,...]" (negative counts back);
    memoised: a transform asks for every line, and its lines are of one width."""
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
    return tuple(indices)


def _fields(data: bytes, name: str) -> pa.Table:
    """SageMaker CSV lines split into their fields, each kept as its text (f0, f1, ...); blank lines skipped."""
    import pyarrow as pa
    from pyarrow import csv

    first = next((line for line in data.splitlines() if line.strip()), None)
    if first is None:
        return pa.table({})
    names = [f"f{i}" for i in range(first.count(b",") + 1)]
    try:
        as_text = csv.ConvertOptions(column_types=dict.fromkeys(names, pa.string()), strings_can_be_null=False,
                                     quoted_strings_can_be_null=False)
        return csv.read_csv(pa.py_buffer(data), read_options=csv.ReadOptions(column_names=names),
                            convert_options=as_text)
    except pa.ArrowInvalid as exc:
        raise SageMakerJobError(f"{name}: not CSV lines of {len(names)} fields each ({exc})") from exc


def _lines(table: pa.Table) -> bytes:
    """The fields written back as CSV lines, each as it was read."""
    import pyarrow as pa
    from pyarrow import csv

    sink = pa.BufferOutputStream()
    csv.write_csv(table, sink, csv.WriteOptions(include_header=False, quoting_style="none"))
    return sink.getvalue().to_pybytes()


def run_transform_job(model: dict, config: dict, batch_lines: int = 5000) -> dict:
    """Run a CreateTransformJob config locally with the model of a CreateModel config: every input file
    becomes <output>/<file name>.out, line for line. Lines are split, filtered and joined as Arrow columns (no
    Python per line); inference.py's handlers get each batch of lines as the text SageMaker would send."""
    import pyarrow as pa

    container = model["PrimaryContainer"]
    handlers = load_handlers(container["Environment"]["SAGEMAKER_SUBMIT_DIRECTORY"])
    loaded = load_model(handlers, container["ModelDataUrl"])
    processing = config["DataProcessing"]
    source = _local_dir(config["TransformInput"]["DataSource"]["S3DataSource"]["S3Uri"])
    output = _local_dir(config["TransformOutput"]["S3OutputPath"])
    output.mkdir(parents=True, exist_ok=True)
    name = config["TransformJobName"]
    records = 0
    for path in sorted(p for p in source.rglob("*") if p.is_file()):
        table = _fields(path.read_bytes(), str(path))
        out = []
        for start in range(0, table.num_rows, batch_lines):
            batch = table.slice(start, batch_lines)
            given = batch.select(list(_json_path_indices(processing["InputFilter"], batch.num_columns)))
            result, content_type = handlers.output_fn(
                handlers.predict_fn(handlers.input_fn(_lines(given).decode(), "text/csv"), loaded), "text/csv")
            if content_type != "text/csv":
                raise SageMakerJobError(f"transform job {name}: inference.py answered {content_type!r}, expected "
                                        "text/csv")
            answer = _fields(result.encode(), f"transform job {name}'s answer")
            if answer.num_rows != batch.num_rows:
                raise SageMakerJobError(f"transform job {name}: inference.py answered {answer.num_rows} lines for "
                                        f"{batch.num_rows}")
            joined = [*batch.columns, *answer.columns] if processing.get("JoinSource") == "Input" else answer.columns
            kept = _json_path_indices(processing["OutputFilter"], len(joined))
            out.append(_lines(pa.table({f"f{n}": joined[i] for n, i in enumerate(kept)})))
        (output / f"{path.name}.out").write_bytes(b"".join(out))
        records += table.num_rows
    return {"TransformJobName": name, "TransformJobStatus": "Completed", "records": records}


def create_model(plan: dict) -> str:
    """The local CreateModel: the champion's artifact loads through inference.py's model_fn."""
    container = plan["model_config"]["PrimaryContainer"]
    handlers = load_handlers(container["Environment"]["SAGEMAKER_SUBMIT_DIRECTORY"])
    loaded = load_model(handlers, container["ModelDataUrl"])
    return f"{plan['model_config']['ModelName']}: {len(loaded.feature_names)} features"


def score_model(plan: dict) -> int:
    """The local batch transform of a scoring plan, into a fresh output folder; the records scored."""
    output = paths.scores(plan["model"], dt.date.fromisoformat(plan["partition"]), "output")
    storage.remove(output)
    return run_transform_job(plan["model_config"], plan["transform_config"])["records"]
