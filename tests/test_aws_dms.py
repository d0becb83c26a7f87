"""The aws target's ingest: the provider's DMS operator and sensor under moto and botocore's Stubber,
the start-type plan against S3 and the landing check on S3 (moto server on loopback)."""

from __future__ import annotations

import datetime as dt
from unittest import mock

import boto3
import pytest
from botocore.stub import Stubber

from crosschannel.core import dms, paths, storage
from crosschannel.core import segment_files as segment_events
from crosschannel.core.config import get_config
from crosschannel.stages.ingest import landing as dms_landing
from crosschannel.stages.ingest import tasks as ingest
from crosschannel.wiring import steps
from tests.conftest import AWS_ENV, BUNDLE, empty_bucket, full_load_one_store, run_dag

DAY = dt.date(2026, 11, 2)


@pytest.fixture
def aws_env(moto_server, local_env, monkeypatch):
    """The aws target against the moto server: an S3 lake and a DMS replication task."""

    s3 = boto3.client("s3", endpoint_url=moto_server)
    s3.create_bucket(Bucket="lake")
    client = boto3.client("dms", endpoint_url=moto_server, region_name="us-east-1")
    task = client.create_replication_task(
        ReplicationTaskIdentifier="retail-cdc",
        SourceEndpointArn="arn:aws:dms:us-east-1:123456789012:endpoint:SOURCE",
        TargetEndpointArn="arn:aws:dms:us-east-1:123456789012:endpoint:TARGET",
        ReplicationInstanceArn="arn:aws:dms:us-east-1:123456789012:rep:INSTANCE",
        MigrationType="full-load-and-cdc",
        TableMappings=(BUNDLE / "include/dms/table-mappings.json").read_text(),
    )["ReplicationTask"]
    _mark_ready(task["ReplicationTaskArn"])
    for key, value in AWS_ENV.items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("CROSSCHANNEL__AWS__DMS__REPLICATION_TASK_ARN", task["ReplicationTaskArn"])
    get_config.cache_clear()
    yield {"client": client, "arn": task["ReplicationTaskArn"], "s3": s3}
    empty_bucket(s3, "lake")
    client.delete_replication_task(ReplicationTaskArn=task["ReplicationTaskArn"])
    get_config.cache_clear()


def _mark_ready(arn: str) -> None:
    """moto leaves a new task 'creating'; DMS moves it to 'ready' once created (the server runs in-process)."""
    from moto.core import DEFAULT_ACCOUNT_ID
    from moto.dms.models import dms_backends

    dms_backends[DEFAULT_ACCOUNT_ID]["us-east-1"].replication_tasks[arn].status = "ready"


def _dag_task(task_id: str):
    from airflow.dag_processing.dagbag import DagBag

    return DagBag(str(BUNDLE / "dags" / "retail_ingest.py")).dags["retail_ingest"].get_task(task_id)


def test_plan_asks_dms_whether_the_task_has_ever_run(aws_env):
    def plan(force: bool) -> dict:
        return ingest.plan_extract(DAY, force, steps.replication_task_has_run())

    assert steps.replication_task_has_run() is False
    assert plan(force=False) == {
        "partition": "2026-11-02", "start_type": "start-replication", "full_load": True,
        "cdc_stop_position": "commit_time:2026-11-03T00:00:00"}

    aws_env["client"].start_replication_task(ReplicationTaskArn=aws_env["arn"],
                                             StartReplicationTaskType="start-replication")

    assert steps.replication_task_has_run() is True
    assert plan(force=False)["start_type"] == "resume-processing"
    assert plan(force=False)["full_load"] is False
    assert plan(force=True)["start_type"] == "reload-target"


def test_start_operator_sends_the_planned_request(aws_env):
    operator = _dag_task("start_replication")
    operator.start_replication_task_type = "resume-processing"
    operator.start_task_kwargs = {"CdcStopPosition": dms.cdc_stop_position(DAY)}
    client = operator.hook.conn
    with Stubber(client) as stubber:
        stubber.add_response(
            "start_replication_task",
            {"ReplicationTask": {"ReplicationTaskArn": aws_env["arn"], "Status": "starting"}},
            expected_params={
                "ReplicationTaskArn": aws_env["arn"],
                "StartReplicationTaskType": "resume-processing",
                "CdcStopPosition": "commit_time:2026-11-03T00:00:00",
            },
        )
        operator.execute({})
        stubber.assert_no_pending_responses()


def test_start_and_await_against_moto(aws_env):
    start = _dag_task("start_replication")
    start.start_replication_task_type = "start-replication"
    start.start_task_kwargs = {"CdcStopPosition": dms.cdc_stop_position(DAY)}
    sensor = _dag_task("await_replication")

    start.execute({})
    status = aws_env["client"].describe_replication_tasks()["ReplicationTasks"][0]["Status"]
    assert status == "running"
    assert sensor.poke({}) is False

    aws_env["client"].stop_replication_task(ReplicationTaskArn=aws_env["arn"])
    assert sensor.poke({}) is True


def test_landing_check_reads_dms_files_in_s3(aws_env, tmp_path):
    full_load_one_store(tmp_path, DAY)

    manifest = dms_landing.check_landing(DAY, "start-replication")

    assert manifest["tables"]["stores"]["full_load_rows"] == 1
    assert storage.is_committed(paths.dms_manifest(DAY))
    assert paths.dms_manifest(DAY).protocol == "s3"


def test_the_aws_dag_wires_the_plan_into_dms_and_lands_from_s3(aws_env, airflow_db, tmp_path, monkeypatch):
    """dag.test() on the aws target: plan from DMS, the start request rendered from the plan's XComs, the
    landing checked in S3. DMS writes no files under moto, so the local task writes the same layout to S3,
    and the sensor is marked successful (moto never stops a task by itself, nor reports a StopReason: the stop
    is what DescribeReplicationTasks answers, test_the_stop_reason_is_read_from_dms covers that call)."""
    from crosschannel.wiring import steps as wiring_steps

    monkeypatch.setattr(wiring_steps, "replication_stop",
                        lambda: {"status": "stopped", "stop_reason": dms.STOPPED_AT_STOP_POSITION})
    from airflow.models.renderedtifields import RenderedTaskInstanceFields as Rendered
    from airflow.utils.session import create_session

    full_load_one_store(tmp_path, DAY)
    message = {"type": "identify", "messageId": "m1", "userId": "1", "anonymousId": "a", "traits": {},
               "timestamp": "2026-11-02T10:00:00Z", "receivedAt": "2026-11-02T10:00:01Z"}
    segment_events.write_day(storage.location("s3://lake/segment-logs"), "retail-web", DAY, [message])

    run = run_dag("retail_ingest", DAY.isoformat(), mark_success_pattern="^await_replication$")

    assert run.state == "success"
    with create_session() as session:
        rendered = session.query(Rendered).filter_by(dag_id="retail_ingest", run_id=run.run_id,
                                                     task_id="start_replication").one().rendered_fields
    assert rendered["start_replication_task_type"] == "start-replication"
    assert rendered["start_task_kwargs"] == {"CdcStopPosition": "commit_time:2026-11-03T00:00:00"}
    described = aws_env["client"].describe_replication_tasks()["ReplicationTasks"][0]
    assert described["Status"] == "running" and "ReplicationTaskStartDate" in described
    manifest = storage.read_json(storage.resolve(paths.dms_manifest(DAY)) / "manifest.json")
    assert manifest["full_load"] is True and manifest["tables"]["stores"]["full_load_rows"] == 1


@pytest.mark.parametrize(("stop_reason", "lands"), [
    ("Stop Reason STOPPED_AT_COMMIT_TIME", True),      # ran to the partition's CdcStopPosition
    ("Stop Reason NORMAL", False),                     # stopped by hand (StopReplicationTask)
    ("Stop Reason STOPPED_DUE_TO_LOW_MEMORY", False),  # stopped by DMS before the stop position
    ("Stop Reason FATAL_ERROR", False),
])
def test_the_stop_reason_is_read_from_dms_and_only_a_stop_at_the_position_lands(aws_env, tmp_path, stub, stop_reason,
                                                                               lands):
    """Issue 13: DmsTaskCompletedSensor succeeds on any `stopped` status, so a manual stop or a low-memory stop
    landed a partial day. DescribeReplicationTasks (botocore's Stubber: moto reports no StopReason) says why the
    task stopped; anything but a stop at the commit-time stop position is refused naming the reason."""
    from airflow.providers.amazon.aws.hooks.dms import DmsHook

    from crosschannel.wiring import steps as wiring_steps

    full_load_one_store(tmp_path, DAY)
    hook = DmsHook(aws_conn_id=None, region_name="us-east-1")
    stubber = stub(hook)
    task = {"ReplicationTaskIdentifier": "retail-cdc", "ReplicationTaskArn": aws_env["arn"], "Status": "stopped",
            "StopReason": stop_reason, "MigrationType": "full-load-and-cdc"}
    stubber.add_response("describe_replication_tasks", {"ReplicationTasks": [task]},
                         {"Filters": [{"Name": "replication-task-arn", "Values": [aws_env["arn"]]}],
                          "WithoutSettings": True})
    with mock.patch("airflow.providers.amazon.aws.hooks.dms.DmsHook", return_value=hook):
        stop = wiring_steps.replication_stop()
    stubber.assert_no_pending_responses()
    assert stop == {"status": "stopped", "stop_reason": stop_reason}

    if lands:
        assert ingest.land_dms_files(DAY, "start-replication", True, stop)["rows"]["stores"] == 1
    else:
        with pytest.raises(dms.DmsLandingError, match=f"{stop_reason!r}, not 'Stop Reason STOPPED_AT_COMMIT_TIME'"):
            ingest.land_dms_files(DAY, "start-replication", True, stop)
        listed = aws_env["s3"].list_objects_v2(Bucket="lake", Prefix="data/landing/manifests/dms/dt=2026-11-02/")
        assert listed["KeyCount"] == 0  # no manifest: the day did not land
