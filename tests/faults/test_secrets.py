"""Faults around secrets: the Segment write key and the AWS secret access key reach their APIs and nothing else.
After a publish that hits a 503 and then succeeds, and after one that fails, neither is in any file under the
storage root, in the logs (captured at DEBUG) or in an error message; nor is the password of a Segment connection
given as a URL in the SegmentDeliveryError."""

from __future__ import annotations

import base64
import contextlib
import json
import logging

# Importing airflow configures logging (a dictConfig that replaces the root logger's handlers): done here, at
# collection, it cannot remove the handler `caplog` attaches to the root logger during a test.
import airflow.exceptions  # noqa: F401
import pytest
from botocore.exceptions import ClientError
from botocore.stub import Stubber

from crosschannel.core import paths, storage
from crosschannel.core.config import get_config
from crosschannel.stages.activation import outbox, segment
from crosschannel.stages.activation.outbox import PINPOINT, SEGMENT
from crosschannel.wiring.aws.hooks import ActivationJobFailed
from crosschannel.wiring.aws.operators import PinpointImportOperator
from tests.conftest import LoopbackServer, configure, free_port
from tests.faults.test_destinations import (
    APP,
    DAY,
    SETTINGS,
    accepted,
    decision,
    delivering_attempts,
    import_job,
    pinpoint_plan,
    receipt_of,
)
from tests.test_segment_traits import make_profile

WRITE_KEY = "wk_secret_3b9e61f0c4a27d58"
URL_WRITE_KEY = "wkurl8c2f5a9d0e7b4316"
AWS_KEY_ID = "AKIAFAULTSUITE000001"
AWS_SECRET = "fAuLtSuItE/sEcReT+9k2LmN4pQ7rS1tU3vW5xY8zA0bC"


def encodings(key: str) -> set[str]:
    """The key and how it travels: the library's Basic authorization (base64 of "key:")."""
    return {key, base64.b64encode(f"{key}:".encode()).decode()}


SECRETS = encodings(WRITE_KEY) | encodings(URL_WRITE_KEY) | {AWS_SECRET}


@pytest.fixture
def env(tmp_path, monkeypatch):
    """The bundle in tmp_path; the AWS connection carries a secret access key (as conftest.moto_server sets one)."""
    monkeypatch.setenv("AIRFLOW_CONN_AWS_DEFAULT", json.dumps({
        "conn_type": "aws", "login": AWS_KEY_ID, "password": AWS_SECRET, "extra": {"region_name": "us-east-1"}}))
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", AWS_KEY_ID)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", AWS_SECRET)
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")

    def setup(**overrides: str):
        return configure(monkeypatch, tmp_path, **{**SETTINGS, **overrides})

    setup()
    yield setup
    get_config.cache_clear()


@contextlib.contextmanager
def stubbed(op: PinpointImportOperator):
    """A Stubber on the operator's own client, built from the aws_default connection (its secret included)."""
    assert op.hook.get_credentials().secret_key == AWS_SECRET  # the secret did reach the client
    stubber = Stubber(op.hook.conn)
    stubber.activate()
    try:
        yield stubber
    finally:
        stubber.deactivate()


def pinpoint_operator(plan: dict) -> PinpointImportOperator:
    return PinpointImportOperator(task_id="pinpoint_high_value", plan=plan, aws_conn_id="aws_default")


def connect_segment(monkeypatch, host: str) -> None:
    monkeypatch.setenv("AIRFLOW_CONN_SEGMENT_DEFAULT",
                       json.dumps({"conn_type": "http", "host": host, "password": WRITE_KEY}))


def basic_users(server: LoopbackServer) -> set[str]:
    return {base64.b64decode(r.headers["Authorization"].removeprefix("Basic ")).decode().removesuffix(":")
            for r in server.received}


def leaks(caplog, *errors: BaseException) -> list[str]:
    """Where a secret shows: files under the storage root, captured log records (message, arguments, exception),
    error messages."""
    found = []
    root = storage.root()
    files = [p for p in root.rglob("*") if p.is_file()]
    assert files, f"nothing under {root}"
    for path in files:
        data = path.read_bytes()
        found += [f"{path}: {s}" for s in SECRETS if s.encode() in data]
    logged = caplog.text + "".join(repr(vars(r)) + r.getMessage() for r in caplog.records)
    found += [f"logs: {s}" for s in SECRETS if s in logged]
    for error in errors:
        text = f"{error}{error!r}{error.args!r}"
        found += [f"{type(error).__name__}: {s}" for s in SECRETS if s in text]
    return found


def test_no_key_in_files_or_logs_after_a_503_then_success(env, monkeypatch, http_server, caplog):
    """Fault: the Segment API answers 503 once, then accepts; Pinpoint's CreateImportJob answers 503 once, then
    the task's retry succeeds. Expect: both delivered, and neither the write key (nor its Basic encoding) nor the
    AWS secret access key in any file under the storage root, any log record at DEBUG or the AWS error."""
    caplog.set_level(logging.DEBUG)
    connect_segment(monkeypatch, http_server.url)
    http_server.answer((503, {}, b"upstream unavailable"), then=200)
    identify = segment.plan(DAY, decision(), make_profile(10))

    assert segment.publish(identify)["sent"] is True

    assert [r.status for r in http_server.received][:1] == [503] and len(accepted(http_server)) == 10
    assert basic_users(http_server) == {WRITE_KEY}  # the key did reach the API
    plan = pinpoint_plan(DAY)
    params = plan["requests"][0]["params"]
    first = pinpoint_operator(plan)
    with stubbed(first) as stubber, pytest.raises(ClientError, match="ServiceUnavailable") as failure:
        stubber.add_client_error("create_import_job", service_error_code="ServiceUnavailable",
                                 service_message="Service unavailable", http_status_code=503, expected_params=params)
        first.execute({})
    retry = pinpoint_operator(plan)
    with stubbed(retry) as stubber:
        stubber.add_response("create_import_job", import_job(plan, "job-1", "CREATED"), params)
        stubber.add_response("get_import_job", import_job(plan, "job-1", "COMPLETED", "seg-0001"),
                             {"ApplicationId": APP, "JobId": "job-1"})
        retry.execute({})

    assert receipt_of(identify)["delivered"] is True and receipt_of(plan)["delivered"] is True
    assert any(r.name == "segment" and r.levelno >= logging.ERROR for r in caplog.records)  # the 503 was logged
    assert any(r.levelno == logging.DEBUG for r in caplog.records)  # DEBUG records were captured
    assert leaks(caplog, failure.value) == []


def test_no_key_in_files_logs_or_errors_after_a_failing_publish(env, monkeypatch, http_server, caplog):
    """Fault: the Segment API answers 500 to every try; the Pinpoint import job AWS reports FAILED.
    Expect: SegmentDeliveryError and ActivationJobFailed, nothing delivered, and neither error message, nor any
    file under the storage root, nor any log record at DEBUG carries the write key or the AWS secret key."""
    env(CROSSCHANNEL__ACTIVATION__SEGMENT__MAX_RETRIES="1")
    caplog.set_level(logging.DEBUG)
    connect_segment(monkeypatch, http_server.url)
    http_server.answer(then=500)
    identify = segment.plan(DAY, decision(), make_profile(10))

    with pytest.raises(segment.SegmentDeliveryError) as segment_failure:
        segment.publish(identify)

    assert basic_users(http_server) == {WRITE_KEY}
    plan = pinpoint_plan(DAY)
    op = pinpoint_operator(plan)
    with stubbed(op) as stubber, pytest.raises(ActivationJobFailed, match="ended FAILED") as aws_failure:
        stubber.add_response("create_import_job", import_job(plan, "job-2", "CREATED"),
                             plan["requests"][0]["params"])
        stubber.add_response("get_import_job", import_job(plan, "job-2", "FAILED", Failures=["Access denied"]),
                             {"ApplicationId": APP, "JobId": "job-2"})
        op.execute({})

    assert segment.published() == {}
    assert delivering_attempts(SEGMENT, DAY, "identify") == delivering_attempts(PINPOINT, DAY, "high_value") == []
    assert outbox.read_state(PINPOINT, "high_value") == {}
    assert any(r.levelno == logging.DEBUG for r in caplog.records)
    assert leaks(caplog, segment_failure.value, aws_failure.value) == []


@pytest.mark.parametrize("fault", ["connection refused", "500 on every try"])
def test_the_password_of_a_segment_connection_url_is_not_in_the_delivery_error(env, monkeypatch, http_server,
                                                                               caplog, fault):
    """Fault: the Segment connection is given as a URL (http://:<write key>@host:port/http) and the API is
    unreachable or answers 500. Expect: SegmentDeliveryError names the host without the URL's password (nor its
    Basic encoding); the logs and the files under the storage root do not carry it either."""
    env(CROSSCHANNEL__ACTIVATION__SEGMENT__MAX_RETRIES="1")
    caplog.set_level(logging.DEBUG)
    port = free_port() if fault == "connection refused" else int(http_server.url.rsplit(":", 1)[1])
    monkeypatch.setenv("AIRFLOW_CONN_SEGMENT_DEFAULT", f"http://:{URL_WRITE_KEY}@127.0.0.1:{port}/http")
    http_server.answer(then=500)
    identify = segment.plan(DAY, decision(), make_profile(10))

    with pytest.raises(segment.SegmentDeliveryError) as failure:
        segment.publish(identify)

    assert f"failed batch(es) at http://127.0.0.1:{port}:" in str(failure.value)
    if fault == "500 on every try":
        assert basic_users(http_server) == {URL_WRITE_KEY}  # the URL's password is the write key used
    else:
        assert http_server.received == []
    assert receipt_of(identify)["delivered"] is False
    assert not paths.activation_state(SEGMENT, "published").exists()
    assert leaks(caplog, failure.value) == []
