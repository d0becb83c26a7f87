"""`python -m crosschannel aws-plan`: every request the aws target would send for a partition, rendered from the
aws configuration of conftest.AWS_ENV with no AWS account and no network (sockets refuse to connect), each file
passing the strict awsapi check, a table of them on stdout, and no secret of a connection anywhere."""

from __future__ import annotations

import json
import os
import socket

import aiobotocore.session
import botocore.session
import pytest
from airflow.sdk import BaseHook

from crosschannel import __main__ as cli
from crosschannel.core import awsapi
from crosschannel.core.config import get_config
from crosschannel.stages.activation import recommended
from crosschannel.wiring import notify
from tests.conftest import AWS_ENV

PARTITION = "2026-11-02"
TOPIC = "arn:aws:sns:us-east-1:123456789012:crosschannel-alerts"
SECRETS = {"AIRFLOW_CONN_AWS_DEFAULT": "aws-secret-Qz8vT1pL9xR4",
           "AIRFLOW_CONN_SEGMENT_DEFAULT": "wk-secret-7Hn2Wc5Ke0",
           "AIRFLOW_CONN_SMTP_DEFAULT": "smtp-secret-Lp3Zs8Xa",
           "AIRFLOW_CONN_SLACK_WEBHOOK_DEFAULT": "slack-secret-Ry6"}


@pytest.fixture
def aws_env(monkeypatch):
    """conftest's aws config, alerts on SNS, and a socket layer that refuses every connection."""
    alerts = {"CROSSCHANNEL__ALERTS__STAKEHOLDERS": "[sns]", "CROSSCHANNEL__ALERTS__ONCALL": "[sns]",
              "CROSSCHANNEL__ALERTS__SNS_TOPIC_ARN": TOPIC}
    for key, value in {**AWS_ENV, **alerts}.items():
        monkeypatch.setenv(key, value)

    online: list[str] = []

    def refuse(*args, **kwargs):  # recorded too: some callers swallow the error
        online.append(repr(args))
        raise AssertionError(f"aws-plan went online: {args!r}")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    # what would go online without a socket of its own: resolving AWS credentials (the instance metadata service,
    # through aiohttp) and looking a connection up (a secrets backend may be AWS Secrets Manager)
    monkeypatch.setattr(aiobotocore.session.AioSession, "get_credentials", refuse)
    monkeypatch.setattr(botocore.session.Session, "get_credentials", refuse)
    monkeypatch.setattr(BaseHook, "get_connection", classmethod(refuse))
    get_config.cache_clear()
    yield monkeypatch
    get_config.cache_clear()
    assert online == []


def plan(tmp_path, capsys, *extra: str) -> tuple[list[dict], str]:
    out = tmp_path / "plan"
    assert cli.main(["aws-plan", "--partition", PARTITION, "--out", str(out), *extra]) == 0
    files = sorted(out.iterdir())
    return [json.loads(f.read_text()) | {"file": f.name} for f in files], capsys.readouterr().out


def test_the_plan_renders_every_request_of_the_aws_target_each_strictly_valid(aws_env, tmp_path, capsys):
    requests, stdout = plan(tmp_path, capsys)

    for request in requests:  # each file is a request AWS would take (SNS with the rules its model lacks)
        if request["service"] == "sns":
            assert notify.check_publish(request["params"], strict=True)["refused"] == []
        assert awsapi.check(request["service"], request["operation"], request["params"], strict=True)["refused"] == []
    kinds = {(r["service"], r["operation"]) for r in requests}
    assert kinds >= {("dms", "StartReplicationTask"), ("glue", "CreateJob"), ("glue", "StartJobRun"),
                     ("sagemaker", "CreateHyperParameterTuningJob"), ("sagemaker", "CreateTrainingJob"),
                     ("sagemaker", "CreateModel"), ("sagemaker", "CreateTransformJob"),
                     ("personalize", "CreateDatasetImportJob"), ("personalize", "CreateSolutionVersion"),
                     ("personalize", "CreateBatchInferenceJob"), ("customer-profiles", "CreateUploadJob"),
                     ("customer-profiles", "CreateSegmentDefinition"), ("pinpoint", "CreateImportJob"),
                     ("sns", "Publish")}
    # the table: a header, one row per file in order, naming service, operation, name / target and file
    lines = stdout.strip().splitlines()
    assert lines[0].split() == ["service", "operation", "name", "/", "target", "file"]
    assert lines[-1] == f"{len(requests)} request(s) checked against the botocore models (strict)"
    for line, request in zip(lines[1:-1], requests, strict=True):
        assert line.split()[:3] == [request["service"], request["operation"], request["name"]]
        assert line.endswith(request["file"]) and request["target"] in line
        assert request["file"].startswith(f"{request['order']:03d}-{request['service']}-{request['operation']}-")


def test_dms_renders_the_start_type_alternatives_with_the_partitions_stop_position(aws_env, tmp_path, capsys):
    requests, _ = plan(tmp_path, capsys)

    starts = [r for r in requests if r["operation"] == "StartReplicationTask"]
    assert [r["params"]["StartReplicationTaskType"] for r in starts] == ["start-replication", "resume-processing",
                                                                        "reload-target"]
    assert {r["params"]["CdcStopPosition"] for r in starts} == {"commit_time:2026-11-03T00:00:00"}
    arn = AWS_ENV["CROSSCHANNEL__AWS__DMS__REPLICATION_TASK_ARN"]
    assert {r["params"]["ReplicationTaskArn"] for r in starts} == {arn}


def test_glue_create_job_is_what_the_providers_hook_builds_and_every_sql_step_runs_it(aws_env, tmp_path, capsys):
    requests, _ = plan(tmp_path, capsys)

    (create,) = [r["params"] for r in requests if r["operation"] == "CreateJob"]
    assert create["Role"] == AWS_ENV["CROSSCHANNEL__AWS__GLUE__ROLE_ARN"]
    script = AWS_ENV["CROSSCHANNEL__AWS__GLUE__SCRIPT_LOCATION"]
    assert create["Command"] == {"Name": "glueetl", "ScriptLocation": script, "PythonVersion": "3"}
    assert create["ExecutionProperty"] == {"MaxConcurrentRuns": 16}
    assert (create["GlueVersion"], create["WorkerType"], create["NumberOfWorkers"]) == ("5.0", "G.1X", 2)
    runs = [r for r in requests if r["operation"] == "StartJobRun"]
    assert {r["target"].split(".")[1] for r in runs} == {"merge_table", "map_identities", "type_events",
                                                          "build_derived", "snapshot_features", "build_dataset",
                                                          "build_scoring_input", "check_scores",
                                                          "build_audience", "build_personalize",
                                                          "check_trusted", "check_derived"}
    merge = next(r["params"] for r in runs if r["name"] == "orders_cdc_merge")
    assert merge["JobName"] == create["Name"]
    assert merge["Arguments"]["--sql_path"] == f"s3://lake/data/system/sql/dt={PARTITION}/orders_cdc_merge.sql"
    assert merge["Arguments"]["--inputs"] == "${merge_table.inputs}"  # the landed files: known at run time
    channel = next(r["params"]["Arguments"] for r in runs if r["name"] == "churn_train_rows")
    assert channel["--output_format"] == "csv" and "--output_format" not in merge["Arguments"]
    gate = next(r["params"]["Arguments"] for r in runs if r["name"] == "gate_trusted")
    assert gate["--additional-python-modules"].startswith("great_expectations==")
    assert gate["--extra-py-files"] == script.rsplit("/", 1)[0] + "/gx_checks.py"
    scoring = next(r["params"]["Arguments"] for r in runs if r["name"] == "scoring_input_churn")
    assert scoring["--output_format"] == "csv"  # the transform's input


def test_placeholders_stand_for_what_only_aws_or_the_run_knows(aws_env, tmp_path, capsys):
    requests, _ = plan(tmp_path, capsys)

    by = {(r["service"], r["operation"], r["name"]): r["params"] for r in requests}
    assert by["customer-profiles", "StartUploadJob", "upload"]["JobId"] == "${CreateUploadJob.JobId}"
    assert by["sagemaker", "CreateTrainingJob", "churn"]["HyperParameters"]["eta"] == \
        "${DescribeHyperParameterTuningJob.eta}"
    assert by["pinpoint", "CreateImportJob", "win_back-update"]["ImportJobRequest"]["SegmentId"] == \
        "${GetImportJob.SegmentId}"
    assert by["pinpoint", "CreateImportJob", "win_back-define"]["ImportJobRequest"]["SegmentName"] == \
        "crosschannel-win_back"
    modes = {by["personalize", "CreateDatasetImportJob", f"interactions-{m}"]["importMode"] for m in ("full",
                                                                                                   "incremental")}
    assert modes == {"FULL", "INCREMENTAL"}


def test_a_missing_aws_key_fails_naming_it_and_writes_nothing(aws_env, tmp_path, capsys):
    aws_env.delenv("CROSSCHANNEL__AWS__DMS__REPLICATION_TASK_ARN")

    assert cli.run(["aws-plan", "--partition", PARTITION, "--out", str(tmp_path / "plan")]) == 2

    assert "aws.dms.replication_task_arn: required when target is 'aws'" in capsys.readouterr().err
    assert not (tmp_path / "plan").exists()


def test_a_local_config_is_planned_as_the_aws_target_and_left_as_it_was(aws_env, tmp_path, capsys):
    aws_env.setenv("CROSSCHANNEL__TARGET", "local")

    requests, _ = plan(tmp_path, capsys)

    assert requests and os.environ["CROSSCHANNEL__TARGET"] == "local" and get_config().target == "local"


def test_no_secret_of_a_connection_is_printed_or_written(aws_env, tmp_path, capfd):
    """Secrets planted where the bundle keeps them (the connections: aws_default's secret key, segment_default's
    write key, smtp and slack passwords) and in the process's AWS credentials never reach the files or the
    output (stdout and stderr, logs included)."""
    for name, secret in SECRETS.items():
        aws_env.setenv(name, json.dumps({"conn_type": "aws" if "AWS" in name else "http", "login": "user",
                                         "password": secret, "host": "example.com"}))
    aws_env.setenv("AWS_ACCESS_KEY_ID", "AKIAPLANTEDKEY000001")
    aws_env.setenv("AWS_SECRET_ACCESS_KEY", "planted/aws+secret=key")
    out = tmp_path / "plan"

    assert cli.main(["aws-plan", "--partition", PARTITION, "--out", str(out)]) == 0

    printed = capfd.readouterr()
    written = "".join(f.read_text() for f in out.iterdir())
    assert "CreateUploadJob" in printed.out and "CreateUploadJob" in written
    for secret in [*SECRETS.values(), "planted/aws+secret=key", "AKIAPLANTEDKEY000001"]:
        assert secret not in printed.out and secret not in printed.err and secret not in written, secret


def test_the_recommenders_training_and_batch_jobs_are_planned(aws_env, tmp_path, capsys):
    """propensity_training.train_solution: each recipe's solution (once), the dataset group's stock filter (once,
    though both recipes ensure it) and a FULL solution version named after the partition and the run;
    audience_activation.recommend: a batch inference job per recipe over the champion's version and filter
    (placeholders: the registry knows them), reading and writing the run's attempt folder."""
    requests, _ = plan(tmp_path, capsys)

    training = [r for r in requests if r["target"] == "propensity_training.train_solution"]
    group = AWS_ENV["CROSSCHANNEL__ACTIVATION__PERSONALIZE__DATASET_GROUP_ARN"]
    assert [(r["operation"], r["name"]) for r in training] == [
        ("CreateSolution", "crosschannel-user-personalization"), ("CreateFilter", "crosschannel-in-stock"),
        ("CreateSolutionVersion", training[2]["name"]), ("CreateSolution", "crosschannel-similar-items"),
        ("CreateSolutionVersion", training[4]["name"])]
    solution, stock_filter, version = (training[i]["params"] for i in range(3))
    assert solution == {"name": "crosschannel-user-personalization", "datasetGroupArn": group,
                        "recipeArn": "arn:aws:personalize:::recipe/aws-user-personalization-v2",
                        "performAutoTraining": False}
    assert stock_filter["filterExpression"] == "INCLUDE ItemID WHERE Items.STOCK_LOCATIONS IN ($LOCATIONS)"
    assert version["solutionArn"] == "arn:aws:personalize:us-east-1:123456789012:solution/" \
                                     "crosschannel-user-personalization"
    assert version["trainingMode"] == "FULL" and version["name"].startswith("crosschannel-user-20261102-")
    assert training[4]["params"]["name"].startswith("crosschannel-similar-20261102-")

    batch = {r["name"]: r["params"] for r in requests if r["target"] == "audience_activation.recommend"}
    assert sorted(batch) == ["items", "users"]
    users = batch["users"]
    assert users["solutionVersionArn"] == "${Registry.user_champion_solution_version_arn}"
    assert users["filterArn"] == "${Registry.user_champion_filter_arn}"
    assert batch["items"]["solutionVersionArn"] == "${Registry.similar_champion_solution_version_arn}"
    folder = f"s3://lake/data/activation/recommendations/dt={PARTITION}/attempt=${{attempt}}/users"
    assert users["jobInput"] == {"s3DataSource": {"path": f"{folder}/users.json"}}
    assert users["jobOutput"] == {"s3DataDestination": {"path": f"{folder}/output/"}}
    assert users["roleArn"] == AWS_ENV["CROSSCHANNEL__ACTIVATION__PERSONALIZE__ROLE_ARN"]
    assert users["numResults"] == get_config().recommendations.per_member + recommended.OVERFETCH
    assert users["jobName"].startswith("crosschannel-user-20261102-")


def test_no_recommender_requests_when_recommendations_are_off(aws_env, tmp_path, capsys):
    aws_env.setenv("CROSSCHANNEL__RECOMMENDATIONS__ENABLED", "false")

    requests, _ = plan(tmp_path, capsys)

    assert requests and not [r for r in requests if r["target"].endswith((".train_solution", ".recommend"))]
