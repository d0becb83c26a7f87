"""`python -m crosschannel aws-plan --partition YYYY-MM-DD [--out DIR]`: a dry run for go-live. Every request the aws
target would send for the partition, built by the same code the DAGs run (the provider's GlueJobHook, the bundle's
SageMaker configs and activation builders, the SNS alert builder), checked strictly with crosschannel.core.awsapi,
one JSON file per request (`NNN-<service>-<Operation>-<name>.json`), and a table of them.

It calls no AWS API and opens no connection: the configuration is read and validated as an aws config (target
forced to aws for the run, so a missing key fails naming it), storage URLs are only spelled out, never read.
What the run learns from AWS or from the lake is not guessed:
  - alternatives: DMS's three start types (plan_extract picks one from DescribeReplicationTasks and the
    force_full_load Param), Glue CreateJob or UpdateJob (the job exists or not), Personalize FULL or INCREMENTAL
    (the last import), Pinpoint's segment by name (first day) or by id (later days), Personalize's solutions and
    filter (created only while they do not exist);
  - `${Operation.Field}` placeholders (awsapi.check takes them): job ids, the tuning job's best hyperparameters,
    the champion model, the SQL jobs' input lists and output folders (they depend on the landed files and the run,
    so they are not read from the lake), the source dir uploaded with its content hash, the datasets' versions,
    the champion solution versions and their filter (the recommenders' registry).
Job names carry the hash of a run id: `--run-id` (default `manual__<partition>T00:00:00+00:00`).
Nothing secret is read: connections are never resolved for their values, so no write key or AWS key can appear.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import re
import sys
import types
from collections.abc import Iterator
from pathlib import Path
from unittest import mock

from crosschannel.core import awsapi, dms, gates, paths, sagemaker, storage
from crosschannel.core.config import get_config
from crosschannel.core.partition import run_hash
from crosschannel.stages.activation import audiences, customer_profiles, outbox, personalize, pinpoint, recommended
from crosschannel.stages.models import datasets, jobs
from crosschannel.stages.recommendations import solutions
from crosschannel.stages.scoring.scores import OUTPUTS
from crosschannel.stages.trusted import publish
from crosschannel.wiring import notify, steps

ATTEMPT = "${attempt}"  # the attempt folder is named when the activation run starts
FILE = re.compile(r"^\d{3}-.+\.json$")


def ref(operation: str, field: str) -> str:
    """A placeholder for a value known only when the run has it: `${Operation.Field}`."""
    return f"${{{operation}.{field}}}"


def req(service: str, operation: str, name: str, target: str, params: dict, note: str = "") -> dict:
    return {"service": service, "operation": operation, "name": name, "target": target, "note": note,
            "params": params}


@contextlib.contextmanager
def aws_target() -> Iterator:
    """The configuration as the aws target reads it (validated: a missing aws key raises ConfigError naming
    it), restored afterwards."""
    before = os.environ.get("CROSSCHANNEL__TARGET")
    os.environ["CROSSCHANNEL__TARGET"] = "aws"
    get_config.cache_clear()
    try:
        # The s3:// paths are only spelled out: no file system is attached to them. Attaching one (what
        # ObjectStoragePath does for a path with a connection) looks the storage connection up, from a secrets
        # backend that may itself be AWS, and resolves AWS credentials, possibly from the instance metadata
        # service: network the plan must not use. (A private hook of Airflow's ObjectStoragePath: should it go,
        # patch.object fails loudly rather than the plan going online.) Logs go to stderr; stdout keeps the table.
        from airflow.sdk import ObjectStoragePath

        with mock.patch.object(ObjectStoragePath, "_inject_authenticated_fs", lambda self, wrapped: None), \
                contextlib.redirect_stdout(sys.stderr):
            yield get_config()
    finally:
        if before is None:
            os.environ.pop("CROSSCHANNEL__TARGET", None)
        else:
            os.environ["CROSSCHANNEL__TARGET"] = before
        get_config.cache_clear()


# ---- retail_ingest: DMS

def dms_requests(day: dt.date) -> list[dict]:
    arn = get_config().aws.dms.replication_task_arn
    found = [req("dms", "DescribeReplicationTasks", "replication-task", "retail_ingest.plan_extract",
                 {"Filters": [{"Name": "replication-task-arn", "Values": [arn]}], "WithoutSettings": True},
                 "decides the start type: has the task run (ReplicationTaskStartDate)?")]
    when = {"start-replication": "the task has never run", "resume-processing": "the task has run before",
            "reload-target": "the force_full_load Param is set"}
    return found + [req("dms", "StartReplicationTask", start_type, "retail_ingest.start_replication",
                        {"ReplicationTaskArn": arn, "StartReplicationTaskType": start_type,
                         "CdcStopPosition": dms.cdc_stop_position(day)}, f"one of three: sent when {reason}")
                    for start_type, reason in when.items()]


# ---- SQL steps: the generic Glue job

def sql_steps(day: dt.date) -> list[tuple[str, list[str], dict]]:
    """(dag.task, the SQL files it runs, the optional job arguments they add) of every mapped SQL step."""
    cfg = get_config()
    # the split as if the order history were long enough: the plan reads nothing (the run reads the day's
    # customer 360 for its first order and may fall back to the stepped layout, named in the model card)
    as_of = sorted({d for model in cfg.models.specs for days in datasets.split_days(day, model).values()
                    for d in days})
    channel = {"--output_format": "csv", "--manifest": ref("build_dataset", "manifest")}
    found = [("retail_trusted.merge_table", [f"{t}_cdc_merge.sql" for t in dms.mapped_tables()], {}),
             ("retail_trusted.map_identities", ["identity_map.sql"], {}),
             ("retail_trusted.type_events", ["events.sql"], {}),
             ("retail_trusted.build_derived", ["customer_360.sql", "customer_features.sql"], {}),
             ("propensity_training.snapshot_features", [f"customer_features_as_of_{d}.sql" for d in as_of], {}),
             ("propensity_training.build_dataset", [f"{m}_{s}_rows.sql" for m in cfg.models.specs
                                                    for s in datasets.SPLITS], channel),
             ("propensity_training.build_dataset", [f"{m}_training_summary.sql" for m in cfg.models.specs], {}),
             ("propensity_scoring.build_scoring_input", [f"scoring_input_{m}.sql" for m in cfg.models.specs],
              {"--output_format": "csv"}),
             ("propensity_scoring.check_scores", [f"{kind}_{m}.sql" for m in cfg.models.specs
                                                  for kind in ("scores", "score_checks")], {}),
             ("audience_activation.build_audience", [f"audience_{a}.sql" for a in audiences.names()], {})]
    if cfg.runs("personalize"):
        names = personalize.PERSONALIZE_DATASETS
        found += [("audience_activation.build_personalize", [f"personalize_{d}.csv.sql" for d in names],
                   {"--output_format": "text"}),
                  ("audience_activation.build_personalize", [f"personalize_{d}.checks.sql" for d in names], {})]
    return found


def glue_requests(day: dt.date, run: str) -> list[dict]:
    from airflow.providers.amazon.aws.operators.glue import GlueJobOperator

    sql_job = GlueJobOperator(task_id="sql_job", **steps.glue_job_kwargs())
    config = sql_job.hook.create_glue_job_config()  # what create_or_update_glue_job sends
    name = config["Name"]
    found = [req("glue", "CreateJob", name, "every SQL step (GlueJobOperator)", config,
                 "when the job does not exist yet"),
             req("glue", "UpdateJob", name, "every SQL step (GlueJobOperator, update_config)",
                 {"JobName": name, "JobUpdate": {k: v for k, v in config.items() if k not in ("Name", "Tags")}},
                 "when the job exists and differs from the configuration")]
    def start(run_name: str, target: str, arguments: dict, note: str) -> dict:
        if sql_job.durable and sql_job.deferrable:  # the provider tags each run to find it on a retry
            arguments = {**arguments, GlueJobOperator.TASK_UUID_ARG: ref("TaskInstance", "task_uuid")}
        return req("glue", "StartJobRun", run_name, target, {"JobName": name, "Arguments": arguments}, note)

    for target, files, extra in sql_steps(day):
        task = target.split(".")[1]
        found += [start(file.removesuffix(".sql"), target,
                        {"--sql_path": storage.url_of(paths.sql_file(day, file)), "--inputs": ref(task, "inputs"),
                         "--output_path": ref(task, "output_path"), **extra},
                        "inputs and output follow the landed files and the run: placeholders (inputs over 64 KB are "
                        "passed as --inputs_path, a file beside the SQL)") for file in files]
    found += [start(f"gate_{gate}", f"retail_trusted.check_{gate}",  # the gate jobs: GX Core on Spark, same job
                    {"--gates_path": storage.url_of(paths.sql_file(day, f"gate_{gate}-{run_hash(run)}.json")),
                     "--output_path": storage.url_of(publish.results_folder(day, gate, run)),
                     **gates.glue_arguments()},
                    "GX Core installed from PyPI (or your mirror) at each start; the spec lists the run's candidates")
              for gate in ("trusted", "derived")]
    return found


# ---- propensity_training and propensity_scoring: SageMaker

def sagemaker_requests(day: dt.date, run: str) -> list[dict]:
    cfg = get_config()
    source_dir = ref("UploadSourceDir", "S3Uri")
    channels = {split: ref("build_dataset", split) for split in ("train", "validation")}
    tuned = {name: ref("DescribeHyperParameterTuningJob", name) for name in cfg.models.ranges}
    found = []
    for model in cfg.models.specs:
        output = jobs.models_output(model, day)
        found += [
            req("sagemaker", "CreateHyperParameterTuningJob", model, "propensity_training.tune_model",
                sagemaker.tuning_config(sagemaker.job_name(model, day, "tune", run), channels, output, source_dir)),
            req("sagemaker", "CreateTrainingJob", model, "propensity_training.train_model",
                sagemaker.training_config(sagemaker.job_name(model, day, "train", run), channels, output,
                                          {**sagemaker.static_hyperparameters(source_dir), **tuned}),
                "with the tuning job's best hyperparameters"),
        ]
        model_name = ref("Registry", f"{model}_champion_model")
        found += [
            req("sagemaker", "CreateModel", model, "propensity_scoring.create_model",
                sagemaker.model_config(model_name, ref("Registry", f"{model}_champion_model_data"), source_dir),
                "the champion's name and artifact come from the registry"),
            req("sagemaker", "CreateTransformJob", model, "propensity_scoring.score_model",
                sagemaker.transform_config(sagemaker.job_name(model, day, "score"), model_name,
                                           ref("build_scoring_input", f"{model}_version_folder"),
                                           ref("build_scoring_input", f"{model}_output_folder"),
                                           len(cfg.features()[0]), OUTPUTS),
                "the champion's features: models.features; input and output follow the input's committed version "
                "(<root>/ml/<model>/scores/dt=D/input/<version>/, output/<version>/)"),
        ]
    return found


# ---- audience_activation: Personalize, Customer Profiles, Pinpoint

def activation_requests(day: dt.date, run: str) -> list[dict]:
    cfg, settings, found = get_config(), get_config().activation, []
    if cfg.runs("personalize"):
        for dataset in personalize.PERSONALIZE_DATASETS:
            for mode in ("FULL", "INCREMENTAL"):
                location = storage.url_of(paths.delivery(outbox.PERSONALIZE, day, ATTEMPT, dataset))
                found.append(req("personalize", "CreateDatasetImportJob", f"{dataset}-{mode.lower()}",
                                 "audience_activation.load_personalize", {
                                     "jobName": f"crosschannel-{dataset}-{day:%Y%m%d}-{mode.lower()}-{run_hash(run)}",
                                     "datasetArn": getattr(settings.personalize, f"{dataset}_dataset_arn"),
                                     "dataSource": {"dataLocation": location + "/part-00000.csv"},
                                     "roleArn": settings.personalize.role_arn, "importMode": mode},
                                 "INCREMENTAL when the last import was the day before, else FULL"))
    if cfg.runs("customer_profiles"):
        columns = customer_profiles.upload_columns()
        found += [req("customer-profiles", operation, "upload", "audience_activation.load_customer_profiles",
                      params, "the CSV goes to GetUploadJobPath's presigned URL in between" if
                      operation == "GetUploadJobPath" else "")
                  for operation, params in customer_profiles.upload_job_params(day, run, columns)]
        found += [req("customer-profiles", "CreateSegmentDefinition", audience,
                      "audience_activation.load_customer_profiles",
                      customer_profiles.segment_definition_params(audience),
                      "only while the definition does not exist (GetSegmentDefinition first)")
                  for audience in audiences.names()]
    if cfg.runs("pinpoint"):
        for audience in audiences.names():
            folder = storage.url_of(paths.delivery(outbox.PINPOINT, day, ATTEMPT, audience)) + "/"
            for segment_id, note in ((None, "the first day: defines the segment"),
                                     (ref("GetImportJob", "SegmentId"), "later days: updates the segment")):
                found.append(req("pinpoint", "CreateImportJob", f"{audience}-{'update' if segment_id else 'define'}",
                                 "audience_activation.load_pinpoint",
                                 pinpoint.import_job_params(folder, audience, segment_id), note))
    return found


# ---- recommendations: Personalize training (propensity_training, weekly) and batch inference (audience_activation)

def recommendation_requests(day: dt.date, run: str) -> list[dict]:
    if not get_config().runs("recommendations"):
        return []
    notes = {"CreateSolution": "only while the solution does not exist (then it is used as it is)",
             "CreateFilter": "only while the filter does not exist; the dataset group's one filter, both recipes",
             "CreateSolutionVersion": "FULL training every week, waited for in the triggerer; then GetSolutionMetrics"}
    found, seen = [], set()
    for plan in solutions.plan(day, run):
        for request in plan["requests"]:
            params = request["params"]
            key = (request["operation"], json.dumps(params, sort_keys=True))
            if key not in seen:  # both recipes' plans ensure the same filter: planned once
                seen.add(key)
                found.append(req("personalize", request["operation"], params["name"],
                                 "propensity_training.train_solution", params, notes[request["operation"]]))
    for name, recipe in recommended.JOBS.items():
        short = solutions.SHORT[recipe]
        champion = {"solution_version_arn": ref("Registry", f"{short}_champion_solution_version_arn"),
                    "filter_arn": ref("Registry", f"{short}_champion_filter_arn")}
        folder = paths.delivery(recommended.RECOMMENDATIONS, day, ATTEMPT, name)
        results = (min(500, get_config().recommendations.per_member + recommended.OVERFETCH) if name == "users"
                   else recommended.SIMILAR_RESULTS)
        request = recommended.batch_request(recipe, champion, day, ATTEMPT, folder / f"{name}.json",
                                            folder / "output", results)
        found.append(req("personalize", "CreateBatchInferenceJob", name, "audience_activation.recommend",
                         request["params"], "the champion solution version of the registry, and its filter when "
                                            "it has one; only when the run sends and a champion exists"))
    return found


# ---- alerts: SNS

def sns_requests(day: dt.date, run: str) -> list[dict]:
    alerts = get_config().alerts
    topic, found = alerts.sns_topic_arn, []

    def publish(subject: str, text: str, name: str, target: str) -> dict:
        params = notify.sns_publish_request(topic, notify.sns_subject(subject), notify.sns_message(text))
        return req("sns", "Publish", name, target, params)

    if "sns" in alerts.stakeholders:
        for dag_id in alerts.deadlines:
            context = {"dag_run": {"dag_id": dag_id, "dag_run_id": run, "partition_key": day.isoformat(),
                                   "run_type": ref("DagRun", "run_type"), "state": "running",
                                   "queued_at": ref("DagRun", "queued_at")},
                       "deadline": {"deadline_time": ref("Deadline", "deadline_time")}}
            found.append(publish(*notify.deadline_message(dag_id, context), f"deadline-{dag_id}",
                                 f"{dag_id} DeadlineAlert"))
    if "sns" in alerts.oncall:
        ti = types.SimpleNamespace(dag_id="audience_activation", task_id="load_customer_profiles", map_index=-1,
                                   try_number=1, log_url=ref("TaskInstance", "log_url"))
        context = {"ti": ti, "run_id": run, "partition_key": day.isoformat(), "params": {},
                   "exception": RuntimeError(ref("TaskInstance", "error"))}
        found.append(publish(*notify.failure_message(context), "failure-example", "every task's FailureNotifier"))
    return found


# ---- the plan

def check(request: dict) -> dict:
    """awsapi.check, strict (for SNS with the rules its model lacks)."""
    if request["service"] == "sns":
        return notify.check_publish(request["params"], strict=True)
    return awsapi.check(request["service"], request["operation"], request["params"], strict=True)


def write_plan(day: dt.date, out: Path, run_id: str | None = None) -> list[dict]:
    """Render, check and write every request; returns the table rows (service, operation, name, target, file).
    Nothing is written unless every request passes."""
    run = run_id or f"manual__{day.isoformat()}T00:00:00+00:00"
    with aws_target():
        requests = [*dms_requests(day), *glue_requests(day, run), *sagemaker_requests(day, run),
                    *recommendation_requests(day, run), *activation_requests(day, run), *sns_requests(day, run)]
        for request in requests:
            request["api_version"] = check(request)["api_version"]
    out.mkdir(parents=True, exist_ok=True)
    for old in out.iterdir():  # an earlier plan's files
        if FILE.match(old.name):
            old.unlink()
    rows = []
    for order, request in enumerate(requests, start=1):
        name = re.sub(r"[^A-Za-z0-9_.-]+", "-", request["name"])
        file = out / f"{order:03d}-{request['service']}-{request['operation']}-{name}.json"
        file.write_text(json.dumps({"order": order, "partition": day.isoformat(), "run_id": run, **request},
                                   indent=2) + "\n")
        rows.append({**{k: request[k] for k in ("service", "operation", "name", "target")}, "file": str(file)})
    return rows


def table(rows: list[dict]) -> str:
    """The rows as a text table: service, operation, name / target, file."""
    lines = [("service", "operation", "name / target", "file")]
    lines += [(r["service"], r["operation"], f"{r['name']} / {r['target']}", Path(r["file"]).name) for r in rows]
    widths = [max(len(line[i]) for line in lines) for i in range(4)]
    return "\n".join("  ".join(cell.ljust(width) for cell, width in zip(line, widths, strict=True)).rstrip()
                     for line in lines) + f"\n{len(rows)} request(s) checked against the botocore models (strict)"
