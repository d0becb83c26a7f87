"""Alerts reach people: a missed deadline is mailed to a real SMTP server on loopback (aiosmtpd) and posted to a
Slack webhook on a local HTTP server; a failed task tells on-call which DAG, task and partition, with the log URL."""

from __future__ import annotations

import asyncio
import email
import json
from pathlib import Path
from unittest import mock

import pytest

from crosschannel.core.alert_settings import DAG_IDS
from crosschannel.core.config import get_config
from crosschannel.wiring import notify
from tests.conftest import configure, free_port


@pytest.fixture
def smtp_server():
    """A real SMTP server (aiosmtpd) on loopback that keeps every message it receives."""
    from aiosmtpd.controller import Controller

    class Keep:
        def __init__(self) -> None:
            self.messages: list[email.message.Message] = []

        async def handle_DATA(self, server, session, envelope):
            self.messages.append(email.message_from_bytes(envelope.content))
            self.messages[-1]["X-Envelope-To"] = ", ".join(envelope.rcpt_tos)
            return "250 OK"

    handler = Keep()
    controller = Controller(handler, hostname="127.0.0.1", port=free_port())
    controller.start()
    yield controller, handler
    controller.stop()


@pytest.fixture
def alerting(tmp_path, monkeypatch, smtp_server, http_server):
    """Stakeholders and on-call on smtp and slack, with connections to the loopback servers."""

    controller, _ = smtp_server
    monkeypatch.setenv("AIRFLOW_CONN_SMTP_DEFAULT", json.dumps({
        "conn_type": "smtp", "host": "127.0.0.1", "port": controller.port,
        "extra": {"disable_tls": True, "disable_ssl": True, "timeout": 10, "retry_limit": 1}}))
    monkeypatch.setenv("AIRFLOW_CONN_SLACK_WEBHOOK_DEFAULT", json.dumps({
        "conn_type": "slackwebhook", "password": f"{http_server.url}/services/T000/B000/XXXX"}))
    yield configure(monkeypatch, tmp_path, CROSSCHANNEL__ALERTS__STAKEHOLDERS="[smtp, slack]",
                    CROSSCHANNEL__ALERTS__ONCALL="[smtp, slack]",
                    CROSSCHANNEL__ALERTS__STAKEHOLDER_EMAILS="[marketing@example.com]",
                    CROSSCHANNEL__ALERTS__ONCALL_EMAILS="[oncall@example.com]")
    get_config.cache_clear()


CONTEXT = {  # what the scheduler hands a deadline callback (models/deadline.py get_simple_context)
    "dag_run": {"dag_id": "audience_activation", "dag_run_id": "asset_triggered__2026-11-23T00:41:00",
                "run_type": "asset_triggered", "state": "running", "partition_key": "2026-11-22",
                "queued_at": "2026-11-23T00:41:00+00:00", "conf": {}},
    "deadline": {"id": "d1", "deadline_time": "2026-11-23T01:41:00+00:00"},
}


def test_a_missed_deadline_is_mailed_and_posted_to_slack(alerting, smtp_server, http_server):
    _, mailbox = smtp_server

    sent = asyncio.run(notify.deadline_missed("audience_activation", context=CONTEXT))

    assert sent == "sent to smtp, slack"  # a string: the triggerer stores it as the callback's output
    (message,) = mailbox.messages
    assert message["Subject"] == "[crosschannel] audience_activation missed its deadline for partition 2026-11-22: LATE"
    assert message["X-Envelope-To"] == "marketing@example.com"
    body = message.get_payload(0).get_payload(decode=True).decode() if message.is_multipart() else message.get_payload()
    assert "Status: LATE. The run is still running." in body
    assert "Promised: D+1 07:00 UTC, for this day 2026-11-23 07:00 UTC" in body
    assert "Open it: http://localhost:8080/dags/audience_activation/runs/asset_triggered__2026-11-23T00%3A41%3A00" \
        in body
    assert "Waiting on it: campaign_readout (promised D+1 10:00)" in body
    (post,) = http_server.received
    assert post.path == "/services/T000/B000/XXXX"
    assert "audience_activation missed its deadline for partition 2026-11-22" in post.json()["text"]


def test_a_channel_that_fails_is_reported_after_the_others_ran(alerting, smtp_server, http_server):
    _, mailbox = smtp_server
    http_server.answer(500, then=500)

    with pytest.raises(RuntimeError, match="slack failed"):
        asyncio.run(notify.deadline_missed("retail_ingest", context=CONTEXT))

    assert len(mailbox.messages) == 1  # the email still went out


def test_no_channel_configured_only_logs(local_env, caplog):
    assert asyncio.run(notify.deadline_missed("retail_ingest", context=CONTEXT)) == \
        "no stakeholder channel configured"
    assert "no stakeholder channel configured" in caplog.text


def test_a_failed_task_tells_oncall_the_dag_task_partition_and_log(alerting, smtp_server, http_server):
    _, mailbox = smtp_server
    ti = mock.Mock(dag_id="retail_trusted", task_id="gate_trusted", map_index=-1, try_number=3,
                   log_url="http://localhost:8080/dags/retail_trusted/runs/r1/tasks/gate_trusted")
    context = {"ti": ti, "run_id": "r1", "partition_key": "2026-11-22", "params": {},
               "exception": RuntimeError("gate failed: trusted_orders")}

    notify.FailureNotifier()(context)

    (message,) = mailbox.messages
    assert message["Subject"] == "[crosschannel] retail_trusted.gate_trusted failed for partition 2026-11-22"
    assert message["X-Envelope-To"] == "oncall@example.com"
    text = http_server.received[0].json()["text"]
    assert "Log: http://localhost:8080/dags/retail_trusted/runs/r1/tasks/gate_trusted" in text
    assert "Error: gate failed: trusted_orders" in text


def test_every_dag_has_a_deadline_alert_whose_callback_the_triggerer_can_import(local_env):
    from airflow.sdk import AsyncCallback
    from airflow.sdk.module_loading import import_string

    for dag_id in DAG_IDS:
        alert = notify.deadline_alert(dag_id)
        assert isinstance(alert.callback, AsyncCallback)
        assert alert.callback.path == "crosschannel.wiring.notify.deadline_missed"
        assert import_string(alert.callback.path) is notify.deadline_missed
        assert alert.callback.kwargs["dag_id"] == dag_id
        assert type(alert.reference).__name__ == "PartitionPromise"  # not DAGRUN_QUEUED_AT: clearing a run works
    # deadlines recorded before the stage packages name the old path: a thin re-export, kept for one release
    assert import_string("crosschannel.notify.deadline_missed") is notify.deadline_missed


def test_airflow_dags_test_parses_the_dags_without_their_deadline_alerts(local_env, monkeypatch):
    """`airflow dags test <dag> -c '{"partition": ...}'` ended with "'dict' object has no attribute 'hex'" after every
    task ran (Airflow 3.3.2's dag.test() and deadline alerts); parsed for it, a DAG has none, otherwise it has."""
    monkeypatch.setattr("sys.argv", ["/work/.venv/bin/airflow", "dags", "test", "retail_trusted"])
    assert notify.deadline_alert("retail_trusted") is None
    monkeypatch.setattr("sys.argv", ["/work/.venv/bin/airflow", "dag-processor"])
    assert notify.deadline_alert("retail_trusted") is not None


def test_sns_delivers_the_deadline_and_the_failure_to_the_topics_subscribers(tmp_path, monkeypatch, moto_server):
    """The aws channel: SnsNotifier publishes to the topic (moto); an SQS queue subscribed to it receives both."""
    import boto3

    sns, sqs = (boto3.client(name, endpoint_url=moto_server, region_name="us-east-1") for name in ("sns", "sqs"))
    topic = sns.create_topic(Name="crosschannel-alerts")["TopicArn"]
    queue = sqs.create_queue(QueueName="stakeholders")["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    sns.subscribe(TopicArn=topic, Protocol="sqs", Endpoint=queue_arn)
    configure(monkeypatch, tmp_path, CROSSCHANNEL__ALERTS__STAKEHOLDERS="[sns]", CROSSCHANNEL__ALERTS__ONCALL="[sns]",
              CROSSCHANNEL__ALERTS__SNS_TOPIC_ARN=topic)
    ti = mock.Mock(dag_id="audience_activation", task_id="load_pinpoint", map_index=2, try_number=1,
                   log_url="http://localhost:8080/log")

    try:
        assert asyncio.run(notify.deadline_missed("audience_activation", context=CONTEXT)) == "sent to sns"
        notify.FailureNotifier()({"ti": ti, "run_id": "r1", "partition_key": "2026-11-22", "params": {}})
    finally:
        get_config.cache_clear()

    messages = sqs.receive_message(QueueUrl=queue, MaxNumberOfMessages=10, WaitTimeSeconds=1).get("Messages", [])
    subjects = sorted(json.loads(m["Body"])["Subject"] for m in messages)
    assert subjects == ["[crosschannel] audience_activation missed its deadline for partition 2026-11-22: LATE",
                        "[crosschannel] audience_activation.load_pinpoint failed for partition 2026-11-22"]


@pytest.mark.parametrize(("state", "status", "says"), [
    ("failed", "FAILED", "Nothing of this day after it is delivered until the cause is fixed"),
    ("queued", "NEVER STARTED", "has not started"),
    ("running", "LATE", "still running"),
    ("success", "FINISHED LATE", "finished after its deadline"),
])
def test_the_alert_says_whether_the_run_is_late_failed_or_never_started(local_env, state, status, says):
    """Airflow keeps a failed run's deadline (it removes it only on success): the alert must not call it late."""
    context = {**CONTEXT, "dag_run": {**CONTEXT["dag_run"], "state": state, "dag_id": "retail_trusted",
                                      "end_date": "2026-11-23T02:10:00+00:00" if state == "failed" else None}}
    subject, text = notify.deadline_message("retail_trusted", context)
    assert subject == f"[crosschannel] retail_trusted missed its deadline for partition 2026-11-22: {status}"
    assert f"Status: {status}. " in text and says in text
    waiting = "Waiting on it: propensity_scoring (promised D+1 05:00), audience_activation (promised D+1 07:00)"
    assert (waiting in text) is (state != "success")


def test_the_deadline_is_the_promise_in_the_business_time_zone_or_its_allowance_from_creation(tmp_path, monkeypatch):
    import datetime as dt

    from crosschannel.wiring.deadlines import promised_by

    configure(monkeypatch, tmp_path, CROSSCHANNEL__ALERTS__TIMEZONE="America/New_York")
    try:
        early = dt.datetime(2026, 11, 2, 23, tzinfo=dt.UTC)
        # 07:00 in New York on D+1 is 12:00 UTC in winter, 11:00 UTC in summer (daylight saving time)
        assert promised_by("audience_activation", "2026-11-02", early) == dt.datetime(2026, 11, 3, 12, tzinfo=dt.UTC)
        summer = dt.datetime(2026, 7, 1, tzinfo=dt.UTC)
        assert promised_by("audience_activation", "2026-07-01", summer) == dt.datetime(2026, 7, 2, 11, tzinfo=dt.UTC)
        # created after its promise, within a day: the day's own run started late keeps the promise (alert at once)
        late = dt.datetime(2026, 11, 3, 20, tzinfo=dt.UTC)
        assert promised_by("audience_activation", "2026-11-02", late) == dt.datetime(2026, 11, 3, 12, tzinfo=dt.UTC)
        # a backfill of an older day: the promise's 7 hours after the local day ended, from its creation
        backfill = dt.datetime(2026, 11, 30, 9, tzinfo=dt.UTC)
        assert promised_by("audience_activation", "2026-11-02", backfill) == backfill + dt.timedelta(hours=7)
        assert promised_by("audience_activation", None, backfill) is None
        with pytest.raises(ValueError, match="deadline reference: partition '2026-11-2' is not a YYYY-MM-DD day"):
            promised_by("audience_activation", "2026-11-2", backfill)
    finally:
        get_config.cache_clear()


@pytest.mark.parametrize(("key", "value", "error"), [
    ("DEADLINES__RETAIL_INGEST", "07:00", r"deadlines\.retail_ingest: '07:00' is not a promise of the form 'D\+1 07"),
    ("DEADLINES__RETAIL_INGEST", "D+1 25:00", r"is not a promise of the form"),
    ("DEADLINES__NOT_A_DAG", "D+1 07:00", r"deadlines: unknown DAG\(s\) \['not_a_dag'\]"),
    ("TIMEZONE", "Mars/Olympus", r"'Mars/Olympus' is not an IANA time zone"),
    ("TIMEZONE", "Asia/Tokyo", r"deadlines\.retail_ingest: D\+1 02:00 in Asia/Tokyo is due before day D's run can "
                               r"start \(09:00 on D\+1 there, 00:00 UTC"),
])
def test_a_bad_promise_names_the_key(tmp_path, monkeypatch, key, value, error):
    from crosschannel.core.config import ConfigError

    with pytest.raises(ConfigError, match=error):
        configure(monkeypatch, tmp_path, **{f"CROSSCHANNEL__ALERTS__{key}": value})
    get_config.cache_clear()


def test_the_reference_reads_the_runs_partition_key_as_the_scheduler_does(airflow_db):
    """The reference evaluated as the scheduler does when it creates a run (a real DagRun row in the session)."""
    import datetime as dt

    from airflow.models import DagRun
    from airflow.utils.session import create_session

    from crosschannel.wiring.deadlines import PartitionPromise

    future = (dt.datetime.now(dt.UTC) + dt.timedelta(days=3)).date()
    reference = PartitionPromise()
    with create_session() as session:
        for run_id, key, run_type in (("future", future.isoformat(), "manual"), ("none", None, "manual"),
                                      ("bad", "2026-11-2", "manual"), ("backfill", "2026-11-02", "backfill")):
            session.add(DagRun(dag_id="retail_ingest", run_id=run_id, run_type=run_type, partition_key=key,
                               conf={}, run_after=dt.datetime.now(dt.UTC)))
        session.flush()
        ahead, without, bad, backfill, missing = (
            reference._evaluate_with(session=session, dag_id="retail_ingest", run_id=r)
            for r in ("future", "none", "bad", "backfill", "nowhere"))
        session.rollback()
    assert ahead == dt.datetime.combine(future + dt.timedelta(days=1), dt.time(2), tzinfo=dt.UTC)  # D+1 02:00 UTC
    assert without is None and bad is None and missing is None  # no deadline: such a run fails at once
    assert backfill is None  # a backfill queues all its runs at once; rebuilding history promises nobody


def test_a_manual_run_by_the_command_line_is_keyed_by_its_day_and_held_to_its_promise(airflow_db, capsys):
    """`python -m crosschannel trigger` as on-call runs it: the run carries the day as its partition key, and the
    scheduler-side DAG gives it the deadline of that day's promise (a real Deadline row, from the serialized DAG)."""
    import datetime as dt
    import subprocess
    import sys

    from airflow.models import DagRun
    from airflow.models.deadline import Deadline
    from airflow.utils.session import create_session
    from sqlalchemy import select

    from crosschannel.__main__ import main

    subprocess.run([str(Path(sys.executable).parent / "airflow"), "dags", "reserialize"], check=True,
                   capture_output=True)
    from airflow.models import DagModel
    from sqlalchemy import update

    with create_session() as session:  # as new DAGs start
        session.execute(update(DagModel).where(DagModel.dag_id == "audience_activation").values(is_paused=True))
    yesterday = dt.datetime.now(dt.UTC).date() - dt.timedelta(days=1)
    assert main(["trigger", "audience_activation", "--partition", yesterday.isoformat()]) == 0
    printed = capsys.readouterr()
    run_id = printed.out.split(" run ")[1].split(" for partition ")[0]
    with create_session() as session:
        run = session.scalar(select(DagRun).where(DagRun.run_id == run_id))
        deadline = session.scalar(select(Deadline.deadline_time).where(Deadline.dagrun_id == run.id))
        session.delete(run)  # the session's other tests run this DAG with dag.test()
    assert run.partition_key == yesterday.isoformat() and run.conf == {}
    assert deadline == dt.datetime.combine(yesterday + dt.timedelta(days=1), dt.time(7), tzinfo=dt.UTC)
    assert "audience_activation is paused: the run waits until it is unpaused" in printed.err
    with pytest.raises(ValueError, match="Dag id nosuch not found in DagModel of AIRFLOW_HOME"):
        main(["trigger", "nosuch", "--partition", yesterday.isoformat()])
    with pytest.raises(ValueError, match="the day has not ended yet"):
        main(["trigger", "audience_activation", "--partition", (yesterday + dt.timedelta(days=1)).isoformat()])


def test_the_plugin_registers_the_reference_airflow_resolves_from_a_serialized_dag():
    """What the scheduler does with a stored DAG: decode the alert's reference through the plugins."""
    from airflow.serialization.decoders import decode_deadline_reference
    from airflow.serialization.encoders import encode_deadline_reference

    from crosschannel.wiring.deadlines import PartitionPromise

    encoded = encode_deadline_reference(PartitionPromise())
    assert encoded["__class_path"] == "crosschannel.wiring.deadlines.PartitionPromise"
    decoded = decode_deadline_reference(encoded)
    assert isinstance(decoded.inner_ref, PartitionPromise)


TOPIC = "arn:aws:sns:us-east-1:123456789012:crosschannel-alerts"


@pytest.mark.parametrize(("change", "member"), [
    ({"Subject": "x" * 100}, r"Publish\.Subject: 100 characters, SNS takes fewer than 100"),
    ({"Subject": "line one\nline two"}, r"Publish\.Subject: .* has a line break or control character"),
    ({"Subject": "tab\there"}, r"Publish\.Subject: .* has a line break or control character"),
    ({"Message": json.dumps({"default": "y" * 262_200})}, r"Publish\.Message: 262,215 bytes is above SNS's limit"),
])
def test_a_publish_request_sns_would_refuse_is_caught_naming_the_member(change, member):
    """Issue 13: SNS refuses these, but its botocore model carries neither rule; check_publish adds them to
    awsapi.check (strict on the aws target; the local target gets them back as `refused`)."""
    from crosschannel.core.awsapi import AwsRequestError

    request = {**notify.sns_publish_request(TOPIC, "[crosschannel] a subject", "a message"), **change}

    with pytest.raises(AwsRequestError, match=r"^sns Publish: AWS would refuse the request: .*" + member):
        notify.check_publish(request, strict=True)
    assert notify.check_publish(request, strict=False)["refused"]


def test_the_sns_builder_never_builds_a_request_sns_would_refuse(tmp_path, monkeypatch):
    """A subject with line breaks and 300 characters, a message of 400 KB: the notifier made on the aws target
    carries a sanitized subject (spaces for breaks, 99 characters with an ellipsis) and a message cut to fit,
    marked as cut; the request it sends passes the strict check."""
    from tests.conftest import AWS_ENV

    for key, value in {**AWS_ENV, "CROSSCHANNEL__ALERTS__ONCALL": "[sns]",
                       "CROSSCHANNEL__ALERTS__SNS_TOPIC_ARN": TOPIC}.items():
        monkeypatch.setenv(key, value)
    get_config.cache_clear()
    try:
        (notifier,) = notify.notifiers_for(("sns",), (), "[crosschannel] " + "failed\r\n" * 40, "é" * 200_000)
    finally:
        get_config.cache_clear()

    assert len(notifier.subject) == 99 and notifier.subject.endswith("\u2026")
    assert "\n" not in notifier.subject and "\r" not in notifier.subject and "  " not in notifier.subject
    assert notifier.message.endswith("[truncated to fit SNS's 256 KiB message limit]")
    request = notify.sns_publish_request(notifier.target_arn, notifier.subject, notifier.message)
    assert len(request["Message"].encode()) <= notify.MESSAGE_MAX_BYTES
    assert notify.check_publish(request, strict=True)["refused"] == []
    assert notify.sns_subject("[crosschannel] short") == "[crosschannel] short"  # a fitting subject is kept
