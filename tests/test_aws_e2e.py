"""The whole chain on the aws target, end to end: the five DAGs with `target: aws` against a moto server on
loopback, through the provider's operators (mapped Glue runs, DMS start and sensor, SageMaker tuning, training,
model and transform, model packages) and the bundle's own; where AWS would run compute, the real scripts run on
what the requests point to (tests/aws_cloud.py). The same retailer's day runs on the local target, and the
outputs are compared.
"""

from __future__ import annotations

import collections
import datetime as dt
import json
import re

import boto3
import pytest
import requests

from crosschannel.core import paths
from crosschannel.core.config import get_config
from crosschannel.core.sqljobs import read_partition
from tests.aws_cloud import Cloud
from tests.conftest import AWS_ENV, BUNDLE, LoopbackServer, configure, run_dag

pytestmark = pytest.mark.e2e

DAY = dt.date(2026, 11, 1)
DAGS = ("retail_ingest", "retail_trusted", "propensity_training", "propensity_scoring", "audience_activation")
RETAILER = {"CROSSCHANNEL__GENERATOR__CUSTOMERS": "400", "CROSSCHANNEL__GENERATOR__HISTORY_DAYS": "220",
            "CROSSCHANNEL__MODELS__MAX_TRIALS": "2", "CROSSCHANNEL__ACTIVATION__PERSONALIZE__MIN_INTERACTIONS": "50",
            "CROSSCHANNEL__ACTIVATION__PINPOINT__ENABLED": "false"}  # off by default (end of support)
TABLES = ("stores", "products", "customers", "inventory", "orders", "order_lines", "returns", "identity_map",
          "events", "customer_360")


def _outputs() -> dict:
    """What a chain's day left in the lake, as comparable values: every table, score and audience, and the files
    each destination was handed (the requests themselves name target-specific locations)."""
    from crosschannel.stages.activation import audiences

    found = {f"trusted/{t}": read_partition(paths.trusted(t, DAY)) for t in TABLES}
    found["features"] = read_partition(paths.features(DAY))
    for model in get_config().models.specs:
        found[f"scores/{model}"] = read_partition(paths.scores(model, DAY, "scores"))
    for audience in audiences.names():
        found[f"audience/{audience}"] = read_partition(paths.audience_members(audience, DAY))
    for destination in ("customer_profiles", "personalize", "segment"):
        (attempt,) = paths.deliveries(destination, DAY)
        for file in sorted(attempt.rglob("*")):
            relative = str(file).removeprefix(str(attempt) + "/")
            if file.is_file() and not relative.startswith("outbox/"):
                found[f"{destination}/{relative}"] = file.read_bytes()
    return found


def _run_chain() -> dict:
    """The day through the five DAGs, stopping at the first that fails (the next ones would only fail on it)."""
    states = {}
    for dag in DAGS:
        states[dag] = run_dag(dag, DAY.isoformat()).state
        if states[dag] != "success":
            break
    return states


def _copy_db(source, target) -> None:
    """A consistent copy of a SQLite DB in WAL mode (the file alone misses what the WAL holds)."""
    import sqlite3

    with sqlite3.connect(source) as src, sqlite3.connect(target) as dst:
        src.backup(dst)


def _frame(table):
    """A table as sorted rows of plain values: Spark and DuckDB agree on values, not on every physical type, and
    a floating aggregate (AVG, STDDEV_SAMP) only to its last bits, so doubles are compared to 9 decimals."""
    frame = table.to_pandas()
    frame = frame[sorted(frame.columns)]
    for column in frame.columns:
        if frame[column].dtype.kind == "f":
            frame[column] = frame[column].round(9)
    return frame.astype(str).sort_values(list(frame.columns)).reset_index(drop=True)


@pytest.fixture(scope="module")
def chains(tmp_path_factory, airflow_db, moto_server, spark):
    """The retailer's history and day, then that day through all five DAGs on each target from its own copy
    of the source DB."""
    from crosschannel.sim import generator

    base = tmp_path_factory.mktemp("aws-e2e")
    result = {}
    with pytest.MonkeyPatch.context() as monkeypatch:
        from crosschannel.wiring import defaults

        monkeypatch.setitem(defaults.DEFAULT_ARGS, "retries", 0)  # a failure shows at once, not after the retries
        configure(monkeypatch, base / "retailer", **RETAILER)
        generator.generate(get_config().generator, force=True)
        generator.advance(1)
        source, logs = base / "retailer" / "source.db", base / "retailer" / "segment-logs"

        _copy_db(source, base / "local.db")
        configure(monkeypatch, base / "local", **RETAILER, CROSSCHANNEL__SOURCE__URL=f"sqlite:///{base / 'local.db'}",
                  CROSSCHANNEL__SEGMENT__LOGS_URI=str(logs))
        result["local"] = _run_chain()
        result["local_outputs"] = _outputs() if set(result["local"].values()) == {"success"} else {}

        _copy_db(source, base / "aws.db")
        s3 = boto3.client("s3", endpoint_url=moto_server)
        s3.create_bucket(Bucket="lake")
        for file in sorted(p for p in logs.rglob("*") if p.is_file()):
            s3.upload_file(str(file), "lake", f"segment-logs/{file.relative_to(logs).as_posix()}")
        for script in ("run_sql.py", "gx_checks.py"):
            s3.upload_file(str(BUNDLE / "include/glue" / script), "lake", f"code/{script}")
        dms = boto3.client("dms", endpoint_url=moto_server, region_name="us-east-1")
        task = dms.create_replication_task(
            ReplicationTaskIdentifier="retail-e2e", MigrationType="full-load-and-cdc",
            SourceEndpointArn="arn:aws:dms:us-east-1:123456789012:endpoint:S",
            TargetEndpointArn="arn:aws:dms:us-east-1:123456789012:endpoint:T",
            ReplicationInstanceArn="arn:aws:dms:us-east-1:123456789012:rep:I",
            TableMappings=(BUNDLE / "include/dms/table-mappings.json").read_text())["ReplicationTask"]
        segment, uploads = LoopbackServer().start(), LoopbackServer().start()
        cloud = Cloud(moto_server, base / "cloud", spark, f"{uploads.url}/profiles-upload")
        cloud._moto("dms").replication_tasks[task["ReplicationTaskArn"]].ready()
        configure(monkeypatch, base / "aws", **{
            **AWS_ENV, **RETAILER, "CROSSCHANNEL__SOURCE__URL": f"sqlite:///{base / 'aws.db'}",
            "CROSSCHANNEL__AWS__DMS__REPLICATION_TASK_ARN": task["ReplicationTaskArn"]})
        monkeypatch.setenv("AIRFLOW_CONN_SEGMENT_DEFAULT", json.dumps(
            {"conn_type": "http", "host": segment.url, "password": "e2e-write-key"}))
        cloud.install(monkeypatch)
        try:
            result["aws"] = _run_chain()
            result["aws_outputs"] = _outputs() if set(result["aws"].values()) == {"success"} else {}
        finally:
            monkeypatch.undo()
            segment.stop()
            uploads.stop()
        result.update(cloud=cloud, segment=segment.received, uploads=uploads.received,
                      dms_task_arn=task["ReplicationTaskArn"])
        yield result
    # the moto server lives for the session: the jobs, model packages and buckets of this run must not meet the
    # other tests (moto's own reset), nor must Glue job runs keep succeeding at once
    from moto.moto_api import state_manager

    state_manager.unset_transition("glue::job_run")
    requests.post(f"{moto_server}/moto-api/reset", timeout=30).raise_for_status()
    get_config.cache_clear()


def test_every_dag_succeeds_on_both_targets(chains):
    assert chains["local"] == dict.fromkeys(DAGS, "success")
    assert chains["aws"] == dict.fromkeys(DAGS, "success")


def test_the_aws_chain_ran_its_work_in_the_services(chains):
    """The Glue job ran the gates too (GX on Spark), and the worker read no trusted or features candidate's data:
    not to gate it, not to publish it (S3 copies it); nor a score, nor a Personalize file (Glue writes it, S3 copies
    it into the attempt's folder)."""
    gate_jobs = [c for c in chains["cloud"].calls if c["role"] == "glue" and c["service"] == "s3"
                 and c["operation"] == "GetObject" and c["resource"].endswith("/code/gx_checks.py")]
    assert gate_jobs
    worker_reads = [c["resource"] for c in chains["cloud"].calls if c["role"] == "worker"
                    and c["operation"] == "GetObject" and c["resource"].endswith(".parquet")
                    and ("/staging/trusted/" in c["resource"] or "/staging/features/" in c["resource"])]
    assert worker_reads == []
    transform = re.compile(r"/ml/\w+/scores/dt=[^/]+/(input|output|candidate)/|/activation/personalize/dt=[^/]+/files/")
    scoring_reads = [c["resource"] for c in chains["cloud"].calls if c["role"] == "worker"
                     and c["operation"] == "GetObject" and transform.search(c["resource"])
                     and not c["resource"].endswith("/_SUCCESS")]  # a partition's pointer: read to resolve it
    assert scoring_reads == []  # the transform's input and output and the scores stay with Glue and SageMaker
    ran = [service for service, _ in chains["cloud"].jobs]
    assert ran.count("dms") == 1
    assert ran.count("glue") >= len(TABLES)
    assert [op for service, op in chains["cloud"].jobs if service == "sagemaker"].count(
        "CreateHyperParameterTuningJob") == len(get_config().models.specs)
    assert {service for service, _ in chains["cloud"].jobs} >= {"sagemaker", "personalize", "customer-profiles"}
    assert len(chains["uploads"]) == 1 and chains["uploads"][0].method == "PUT"
    print("aws e2e:", json.dumps({  # the figures of the closing note (pytest -s)
        "api_calls": len(chains["cloud"].calls), "jobs": dict(collections.Counter(s for s, _ in chains["cloud"].jobs)),
        "outputs_compared": len(chains["local_outputs"]), "segment_batches": len(chains["segment"])}))
    assert chains["segment"], "no Segment batch reached the Segment host"


def test_the_aws_outputs_equal_the_local_ones(chains):
    local, aws = chains["local_outputs"], chains["aws_outputs"]
    assert sorted(aws) == sorted(local)
    different = [name for name, expected in local.items()
                 if not (aws[name] == expected if isinstance(expected, bytes)
                         else _frame(aws[name]).equals(_frame(expected)))]
    assert not different, f"aws and local outputs differ: {different}"
    assert all(len(local[f"trusted/{t}"]) > 0 for t in ("customers", "orders", "customer_360"))
    assert {name.split("/")[0] for name in local} >= {"customer_profiles", "personalize", "segment"}


def test_every_request_the_aws_target_sent_passes_the_strict_check(chains):
    """Each of the run's API calls (the provider's and the bundle's, S3 included) against its botocore model:
    enums, patterns and limits AWS checks on its side (crosschannel.core.awsapi)."""
    assert len(chains["cloud"].calls) > 500
    assert chains["cloud"].refused == []


def test_every_call_is_allowed_by_the_policy_of_the_role_that_made_it(chains):
    """The calls recorded in the run (the worker's, and Glue's, SageMaker's, DMS's and Personalize's own reads and
    writes of the lake) against include/aws/iam/ (tests/iam.py)."""
    from tests.iam import check_calls

    cfg = AWS_ENV
    substitutions = {
        "Region": "us-east-1", "Account": "123456789012", "LakeBucket": "lake", "LakePrefix": "data",
        "SegmentBucket": "lake", "SegmentPrefix": "segment-logs", "GlueScriptBucket": "lake",
        "GlueScriptPrefix": "code", "GlueJobName": "crosschannel-sql",
        "GlueRoleArn": cfg["CROSSCHANNEL__AWS__GLUE__ROLE_ARN"],
        "SageMakerRoleArn": cfg["CROSSCHANNEL__AWS__SAGEMAKER__ROLE_ARN"],
        "PersonalizeRoleArn": cfg["CROSSCHANNEL__ACTIVATION__PERSONALIZE__ROLE_ARN"],
        "PinpointRoleArn": cfg["CROSSCHANNEL__ACTIVATION__PINPOINT__ROLE_ARN"], "DmsTaskArn": chains["dms_task_arn"],
        "ModelPackageGroup": "crosschannel", "ImageAccount": "683313688378", "ImageRepository": "sagemaker-xgboost",
        "ProfilesDomain": "crosschannel", "PersonalizeDatasetGroup": "retail",
        "PinpointAppId": cfg["CROSSCHANNEL__ACTIVATION__PINPOINT__APPLICATION_ID"],
        "SnsTopicArn": "arn:aws:sns:us-east-1:123456789012:crosschannel-alerts"}
    calls = chains["cloud"].calls
    assert {c["role"] for c in calls} >= {"worker", "glue", "sagemaker", "dms", "personalize"}
    problems = check_calls(calls, substitutions)
    assert not problems, "\n".join(sorted(set(problems))[:40])
