"""The trusted stage on the aws target: the merge jobs planned on S3 and started through the provider's
GlueJobOperator, against a moto server."""

from __future__ import annotations

import datetime as dt
import json
from unittest import mock

import boto3
import pytest

from crosschannel.core import paths, storage
from crosschannel.core.config import get_config
from crosschannel.stages.ingest import landing as dms_landing
from crosschannel.stages.trusted import merge
from tests.conftest import AWS_ENV, BUNDLE, empty_bucket, full_load_one_store

DAY = dt.date(2026, 11, 2)


@pytest.fixture
def aws_lake(moto_server, local_env, monkeypatch, tmp_path):
    """An S3 lake on moto with one landed full load, and the aws target configured for Glue."""

    s3 = boto3.client("s3", endpoint_url=moto_server)
    s3.create_bucket(Bucket="lake")
    monkeypatch.setenv("CROSSCHANNEL__STORAGE__ROOT", "s3://lake/data")
    get_config.cache_clear()
    full_load_one_store(tmp_path, DAY)
    dms_landing.check_landing(DAY, "start-replication")
    for key, value in {
        **AWS_ENV,
        "CROSSCHANNEL__AWS__GLUE__ROLE_ARN": "arn:aws:iam::123456789012:role/glue",
        "CROSSCHANNEL__AWS__GLUE__SCRIPT_LOCATION": "s3://lake/code/run_sql.py",
    }.items():
        monkeypatch.setenv(key, value)
    get_config.cache_clear()
    yield s3
    empty_bucket(s3, "lake")
    get_config.cache_clear()


def test_plan_uploads_the_rendered_sql_and_lists_the_landed_files(aws_lake):
    jobs = {args["--output_path"]: args for args in merge.plan_merge(DAY)}

    args = jobs["s3://lake/data/staging/trusted/stores/dt=2026-11-02"]
    assert args["--sql_path"] == "s3://lake/data/system/sql/dt=2026-11-02/stores_cdc_merge.sql"
    sql = aws_lake.get_object(Bucket="lake", Key="data/system/sql/dt=2026-11-02/stores_cdc_merge.sql")
    assert sql["Body"].read().decode() == merge.merge_sql("stores", DAY, 1)  # bounded by the day's end, 1 LOAD file
    landing = json.loads(args["--inputs"])["landing"]
    kept = storage.version_of(paths.dms_full_load(DAY))  # the landing check's copy of the full load
    assert (landing["format"], landing["paths"]) == (
        "dms_csv", [f"s3://lake/data/landing/full_loads/dt=2026-11-02/{kept}/stores/LOAD00000001.csv"])
    assert landing["schema"].startswith("Op STRING, dms_commit_ts STRING, store_id STRING")


def test_the_dags_glue_operator_starts_the_job_with_the_planned_arguments(aws_lake, moto_server):
    from airflow.dag_processing.dagbag import DagBag
    from airflow.providers.amazon.aws.operators.glue import GlueJobOperator
    from airflow.sdk.exceptions import TaskDeferred

    mapped = DagBag(str(BUNDLE / "dags" / "retail_trusted.py")).dags["retail_trusted"].get_task("merge_table")
    job = next(j for j in merge.plan_merge(DAY) if "/orders/" in j["--output_path"])
    merge_table = GlueJobOperator(task_id="merge_table", script_args=job, **{
        k: v for k, v in mapped.partial_kwargs.items()
        if k in ("job_name", "script_location", "iam_role_arn", "create_job_kwargs", "aws_conn_id", "deferrable",
                 "concurrent_run_limit", "update_config")})
    merge_table.region_name = "us-east-1"

    with pytest.raises(TaskDeferred):
        merge_table.execute({"ti": mock.Mock(dag_id="retail_trusted", task_id="merge_table", run_id="r1", map_index=4,
                                                   try_number=1)})

    glue = boto3.client("glue", endpoint_url=moto_server, region_name="us-east-1")
    definition = glue.get_job(JobName="crosschannel-sql")["Job"]
    assert definition["Command"]["ScriptLocation"] == "s3://lake/code/run_sql.py"
    assert definition["GlueVersion"] == "5.0" and definition["WorkerType"] == "G.1X"
    (run,) = glue.get_job_runs(JobName="crosschannel-sql")["JobRuns"]
    assert run["Arguments"]["--output_path"] == "s3://lake/data/staging/trusted/orders/dt=2026-11-02"
    assert json.loads(run["Arguments"]["--inputs"])["landing"]["format"] == "dms_csv"


def test_the_mapped_sql_jobs_start_together_on_one_glue_job(aws_lake, moto_server):
    """Issue 13: retail_trusted starts 7 merges and the identity map at once on the one generic job. With the
    provider's default MaxConcurrentRuns of 1 the second run got ConcurrentRunsExceededException (moto enforces
    it)."""
    from airflow.providers.amazon.aws.operators.glue import GlueJobOperator
    from airflow.sdk.exceptions import TaskDeferred

    glue = boto3.client("glue", endpoint_url=moto_server, region_name="us-east-1")
    before = len(glue.get_job_runs(JobName="crosschannel-sql")["JobRuns"]) if glue.list_jobs()["JobNames"] else 0
    jobs = merge.plan_merge(DAY)
    for index, job in enumerate(jobs):
        merge_table = GlueJobOperator(task_id="merge_table", script_args=job, **_glue_kwargs())
        merge_table.region_name = "us-east-1"
        with pytest.raises(TaskDeferred):
            merge_table.execute({"ti": mock.Mock(dag_id="retail_trusted", task_id="merge_table", run_id="r1",
                                              map_index=index, try_number=1)})

    assert len(glue.get_job_runs(JobName="crosschannel-sql")["JobRuns"]) - before == len(jobs) == 7
    assert glue.get_job(JobName="crosschannel-sql")["Job"]["ExecutionProperty"]["MaxConcurrentRuns"] == 16


def _glue_kwargs() -> dict:
    """The DAG's GlueJobOperator arguments, as the mapped merge_table task carries them."""
    from airflow.dag_processing.dagbag import DagBag

    mapped = DagBag(str(BUNDLE / "dags" / "retail_trusted.py")).dags["retail_trusted"].get_task("merge_table")
    return {k: v for k, v in mapped.partial_kwargs.items() if k in (
        "job_name", "script_location", "iam_role_arn", "create_job_kwargs", "aws_conn_id", "deferrable",
        "concurrent_run_limit", "update_config")}


@pytest.mark.parametrize("existing_limit", [1, 16], ids=["created by an older version", "up to date"])
def test_an_existing_glue_job_is_updated_only_when_its_definition_differs(aws_lake, stub, existing_limit):
    """A job created with MaxConcurrentRuns 1 is updated to the configured limit before the run starts; a job as
    the bundle defines it (GetJob's answer, Command with its PythonVersion) is left alone, so the mapped runs do
    not all call UpdateJob at once. moto lacks UpdateJob: botocore's Stubber answers as Glue does."""
    import copy

    from airflow.providers.amazon.aws.operators.glue import GlueJobOperator

    merge_table = GlueJobOperator(task_id="merge_table", script_args={}, **copy.deepcopy(_glue_kwargs()))
    merge_table.region_name = "us-east-1"
    hook = merge_table.hook
    config = copy.deepcopy(hook).create_glue_job_config()  # it pops Command from create_job_kwargs
    stubbed = stub(hook)
    current = {**{k: v for k, v in config.items() if k != "Name"}, "Name": "crosschannel-sql",
               "ExecutionProperty": {"MaxConcurrentRuns": existing_limit}}
    stubbed.add_response("get_job", {"Job": current}, {"JobName": "crosschannel-sql"})  # has_job
    stubbed.add_response("get_job", {"Job": current}, {"JobName": "crosschannel-sql"})  # update_job's comparison
    if existing_limit != 16:
        update = {k: v for k, v in config.items() if k != "Name"}
        stubbed.add_response("update_job", {"JobName": "crosschannel-sql"},
                             {"JobName": "crosschannel-sql", "JobUpdate": update})
    stubbed.add_response("start_job_run", {"JobRunId": "jr-1"}, None)

    assert hook.initialize_job({"--x": "1"})["JobRunId"] == "jr-1"
    stubbed.assert_no_pending_responses()


def test_the_glue_requests_pass_the_strict_check(aws_lake):
    """CreateJob as the provider builds it from the DAG's arguments, and StartJobRun for every planned merge, pass
    the Glue model's enums, patterns and limits (crosschannel.core.awsapi), not only boto3's type checks."""
    import copy

    from airflow.providers.amazon.aws.operators.glue import GlueJobOperator

    from crosschannel.core import awsapi

    merge_table = GlueJobOperator(task_id="merge_table", script_args={}, **copy.deepcopy(_glue_kwargs()))
    merge_table.region_name = "us-east-1"
    awsapi.check("glue", "CreateJob", merge_table.hook.create_glue_job_config())
    for job in merge.plan_merge(DAY):
        awsapi.check("glue", "StartJobRun", {"JobName": "crosschannel-sql", "Arguments": job})
