"""Faults of the activation destinations, one test per case: Segment's tracking API refusing, unreachable or silent
(against loopback servers), the AWS APIs throttling, failing or reporting a failed job (botocore's Stubber on the
operators' hooks), and a re-run of plans an earlier attempt delivered.

Every case checks the same two things: a destination that failed has nothing marked delivered or published (the
receipt's `delivered` is false, `segment.published()` and the files under <root>/activation/<destination>/state/
are unchanged), and a re-run once the fault is gone converges to the fault-free outcome: delivered once, and on
Segment every planned message accepted exactly once by its messageId.
"""

from __future__ import annotations

import collections
import datetime as dt
import hashlib
import json
import socket
import threading

# Importing airflow configures logging; done at collection it cannot remove caplog's handler (see test_secrets).
import airflow.exceptions  # noqa: F401
import pyarrow as pa
import pytest
from airflow.sdk.exceptions import AirflowFailException
from botocore.exceptions import ClientError
from botocore.stub import Stubber

from crosschannel.core import paths, storage
from crosschannel.core.config import get_config
from crosschannel.stages.activation import customer_profiles, outbox, personalize, pinpoint, segment
from crosschannel.stages.activation.outbox import PERSONALIZE, PINPOINT, PROFILES, SEGMENT, ActivationError
from crosschannel.wiring.aws.hooks import ActivationJobFailed
from crosschannel.wiring.aws.operators import (
    CustomerProfilesUploadOperator,
    PersonalizeImportOperator,
    PinpointImportOperator,
)
from tests.conftest import ACCOUNT, AWS_ENV, LoopbackServer, configure, free_port
from tests.test_aws_activation import (
    _get_upload_job,
    _members_and_profile,
    _segment_lookup,
    _stub_upload,
    presigned_url,
)
from tests.test_personalize import money, write_datasets
from tests.test_segment_traits import make_profile

PREV, DAY = dt.date(2026, 11, 2), dt.date(2026, 11, 3)
RUN = "manual__2026-11-04T04:00:00"
WRITE_KEY = "wk_fault_5d1e0c9a7b3f4e21"
APP = AWS_ENV["CROSSCHANNEL__ACTIVATION__PINPOINT__APPLICATION_ID"]
PINPOINT_ROLE = AWS_ENV["CROSSCHANNEL__ACTIVATION__PINPOINT__ROLE_ARN"]
PERSONALIZE_ROLE = AWS_ENV["CROSSCHANNEL__ACTIVATION__PERSONALIZE__ROLE_ARN"]
ITEMS_ARN = AWS_ENV["CROSSCHANNEL__ACTIVATION__PERSONALIZE__ITEMS_DATASET_ARN"]
SETTINGS = {  # the AWS destinations configured, polling without sleeping, Segment's client quick to give up
    "CROSSCHANNEL__ACTIVATION__POLL_INTERVAL_SECONDS": "0",
    "CROSSCHANNEL__ACTIVATION__PINPOINT__APPLICATION_ID": APP,
    "CROSSCHANNEL__ACTIVATION__PINPOINT__ROLE_ARN": PINPOINT_ROLE,
    "CROSSCHANNEL__ACTIVATION__PERSONALIZE__ROLE_ARN": PERSONALIZE_ROLE,
    "CROSSCHANNEL__ACTIVATION__PERSONALIZE__ITEMS_DATASET_ARN": ITEMS_ARN,
    "CROSSCHANNEL__ACTIVATION__SEGMENT__MAX_RETRIES": "2",
    "CROSSCHANNEL__ACTIVATION__SEGMENT__TIMEOUT_SECONDS": "1",
}


@pytest.fixture
def env(tmp_path, monkeypatch):
    """set(**overrides): the bundle (local target) in tmp_path with every destination configured."""

    def setup(**overrides: str):
        return configure(monkeypatch, tmp_path, **{**SETTINGS, **overrides})

    setup()
    yield setup
    get_config.cache_clear()


@pytest.fixture
def silent_server():
    """A loopback TCP server that accepts every connection and never answers: (its URL, the held connections)."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    listener.settimeout(0.05)
    held: list[socket.socket] = []
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                held.append(listener.accept()[0])
            except TimeoutError:
                continue
            except OSError:
                return

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{listener.getsockname()[1]}", held
    stop.set()
    thread.join(5)
    for conn in held:
        conn.close()
    listener.close()


# ---- what every case checks -----------------------------------------------------------------------------------

def decision(**fields) -> dict:
    """A run that sends, with a new delivery attempt each time."""
    return {"send": True, "reason": "the newest partition", "force": False, "attempt": outbox.new_attempt(RUN),
            **fields}


def tree_digests(folder) -> dict[str, str]:
    """Relative path -> sha256 of every file under `folder` ({} when it does not exist)."""
    if not folder.exists():
        return {}
    base = str(folder)
    return {str(p)[len(base):]: hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*"), key=str) if p.is_file()}


def state_digests(destination: str) -> dict[str, str]:
    return tree_digests(paths.zone("activation", destination, "state"))


def receipt_of(plan: dict) -> dict:
    return storage.read_json(storage.location(plan["outbox"]))["receipt"]


def delivering_attempts(destination: str, day: dt.date, name: str) -> list[str]:
    """The attempts of the day whose `name` document is marked delivered."""
    found = []
    for folder in paths.deliveries(destination, day):
        attempt = folder.name.removeprefix(paths.ATTEMPT_PREFIX)
        found += [attempt for d in outbox.documents(destination, day, attempt)
                  if d["name"] == name and d["receipt"].get("delivered")]
    return found


def assert_undelivered(plan: dict, state_before: dict[str, str]) -> None:
    """The failed plan's receipt is not delivered, nothing of the day is, and the destination's state is as it was."""
    receipt = receipt_of(plan)
    assert receipt["delivered"] is False and receipt["status"] == "planned", receipt
    assert "delivered_at" not in receipt
    assert delivering_attempts(plan["destination"], dt.date.fromisoformat(plan["partition"]), plan["name"]) == []
    assert state_digests(plan["destination"]) == state_before


# ---- Segment ----------------------------------------------------------------------------------------------------

def connect_segment(monkeypatch, host: str) -> None:
    """The Segment connection (read from AIRFLOW_CONN_* on every publish) pointing at `host`."""
    monkeypatch.setenv("AIRFLOW_CONN_SEGMENT_DEFAULT",
                       json.dumps({"conn_type": "http", "host": host, "password": WRITE_KEY}))


def accepted(server: LoopbackServer) -> list[dict]:
    """The messages of the batches the server answered 200."""
    return [m for r in server.received if r.path == "/v1/batch" and r.status == 200 for m in r.json()["batch"]]


def published_yesterday(monkeypatch, server: LoopbackServer) -> dict[str, str]:
    """PREV's 30 customers published through `server` (then forgotten by it): the snapshot a fault must not move."""
    connect_segment(monkeypatch, server.url)
    assert segment.publish(segment.plan(PREV, decision(), make_profile(30)))["sent"] is True
    server.reset()
    before = segment.published()
    assert len(before) == 30
    return before


def assert_segment_rerun_converges(monkeypatch, server: LoopbackServer, failed: dict) -> None:
    """With the API answering again, a new attempt plans the same messages and Segment accepts each exactly once;
    the published snapshot and the outbox then read as after a fault-free run."""
    server.reset()
    server.answer(then=200)
    connect_segment(monkeypatch, server.url)
    rerun = segment.plan(DAY, decision(), make_profile(40))
    planned = list(segment.read_messages(rerun))
    assert planned == list(segment.read_messages(failed))  # the same messages, the same messageIds

    outcome = segment.publish(rerun)

    assert outcome["sent"] is True and outcome["messages"] == 10
    counts = collections.Counter(m["messageId"] for m in accepted(server))
    assert counts == collections.Counter(m["message_id"] for m in planned)  # each exactly once
    assert len(segment.published()) == 40
    assert delivering_attempts(SEGMENT, DAY, "identify") == [rerun["attempt"]]
    assert receipt_of(failed)["delivered"] is False  # the failed attempt's record is kept as it was


def test_segment_connection_refused_marks_nothing_published_and_a_rerun_delivers_once(env, monkeypatch,
                                                                                     http_server):
    """Fault: nothing listens at the Segment connection's host:port (connection refused on every try).
    Expect: SegmentDeliveryError naming the host, nothing published or delivered, state unchanged; a re-run against
    the live API sends every message once."""
    before = published_yesterday(monkeypatch, http_server)
    state = state_digests(SEGMENT)
    dead = f"http://127.0.0.1:{free_port()}"
    connect_segment(monkeypatch, dead)
    plan = segment.plan(DAY, decision(), make_profile(40))
    assert plan["changed"] == 10

    with pytest.raises(segment.SegmentDeliveryError, match="failed batch") as failure:
        segment.publish(plan)

    assert f"at {dead}" in str(failure.value)
    assert segment.published() == before
    assert_undelivered(plan, state)
    assert http_server.received == []
    assert_segment_rerun_converges(monkeypatch, http_server, plan)


def test_segment_server_that_never_answers_times_out_and_marks_nothing(env, monkeypatch, http_server,
                                                                        silent_server):
    """Fault: the API accepts the connection and never answers (longer than TIMEOUT_SECONDS=1, on every try).
    Expect: the send gives up on the timeout with SegmentDeliveryError, nothing published or delivered; a re-run
    against a live API sends every message once."""
    env(CROSSCHANNEL__ACTIVATION__SEGMENT__MAX_RETRIES="1")
    url, held = silent_server
    before = published_yesterday(monkeypatch, http_server)
    state = state_digests(SEGMENT)
    connect_segment(monkeypatch, url)
    plan = segment.plan(DAY, decision(), make_profile(40))

    with pytest.raises(segment.SegmentDeliveryError, match=r"(?i)timed out") as failure:
        segment.publish(plan)

    assert f"at {url}" in str(failure.value)
    assert len(held) >= 2  # the first try and max_retries=1 retry reached the server
    assert segment.published() == before
    assert_undelivered(plan, state)
    assert_segment_rerun_converges(monkeypatch, http_server, plan)


def test_segment_429_then_success_accepts_each_message_once(env, monkeypatch, http_server):
    """Fault: the API answers 429 (no Retry-After) twice, then 200, while the day goes out in several batches.
    Expect: the library's retries deliver; every message accepted exactly once by messageId, the day delivered once
    and published; a re-run plans and sends nothing."""
    env(CROSSCHANNEL__ACTIVATION__SEGMENT__UPLOAD_SIZE="4")
    published_yesterday(monkeypatch, http_server)
    plan = segment.plan(DAY, decision(), make_profile(40))
    planned = list(segment.read_messages(plan))
    http_server.answer(429, 429, then=200)

    outcome = segment.publish(plan)

    assert outcome["sent"] is True
    statuses = [r.status for r in http_server.received]
    assert statuses[:2] == [429, 429] and set(statuses[2:]) == {200} and len(statuses) >= 5  # 3 batches or more
    counts = collections.Counter(m["messageId"] for m in accepted(http_server))
    assert counts == collections.Counter(m["message_id"] for m in planned)
    assert {m["messageId"] for r in http_server.received[:2] for m in r.json()["batch"]} <= set(counts)
    assert len(segment.published()) == 40
    assert delivering_attempts(SEGMENT, DAY, "identify") == [plan["attempt"]]

    http_server.reset()
    state = state_digests(SEGMENT)
    rerun = decision()
    assert segment.plan(DAY, rerun, make_profile(40)) == {}
    assert segment.publish({})["sent"] is False and http_server.received == []
    assert not paths.delivery(SEGMENT, DAY, rerun["attempt"]).exists()
    assert state_digests(SEGMENT) == state


def test_segment_400_is_not_marked_published(env, monkeypatch, http_server):
    """Fault: the API answers 400 (a permanent error: the library does not retry it).
    Expect: an error naming the refused batches and the status, nothing published or delivered, each batch tried
    once; a re-run once the API accepts again sends every message once."""
    published_yesterday(monkeypatch, http_server)
    before, state = segment.published(), state_digests(SEGMENT)
    plan = segment.plan(DAY, decision(), make_profile(40))
    http_server.answer(then=(400, {}, json.dumps({"code": "invalid_request", "message": "bad batch"}).encode()))

    with pytest.raises(ActivationError, match=r"[1-9]\d* batch\(es\) refused with HTTP \[400\]") as failure:
        segment.publish(plan)

    assert "bad batch" in str(failure.value)
    assert http_server.received and all(r.status == 400 for r in http_server.received)
    assert all(r.headers.get("X-Retry-Count") is None for r in http_server.received)  # never retried
    assert segment.published() == before
    assert_undelivered(plan, state)
    assert_segment_rerun_converges(monkeypatch, http_server, plan)


def test_segment_400_fails_the_task_without_retries(env, monkeypatch, http_server):
    """Fault: the API answers 400, which Segment's library treats as permanent and does not retry.
    Expect: an error that fails the task at once (an AirflowFailException, as crosschannel.core.errors does for
    errors a retry cannot fix), not SegmentDeliveryError, whose retries would send the same refused batches."""
    connect_segment(monkeypatch, http_server.url)
    plan = segment.plan(DAY, decision(), make_profile(10))
    http_server.answer(then=400)

    with pytest.raises(Exception) as failure:
        segment.publish(plan)

    assert segment.published() == {}
    assert isinstance(failure.value, AirflowFailException), type(failure.value)


# ---- Amazon Pinpoint --------------------------------------------------------------------------------------------

def pinpoint_plan(day: dt.date) -> dict:
    """The day's high_value plan from the plan function (the only audience with a reachable treatment member)."""
    members, profile = _members_and_profile()
    (plan,) = pinpoint.plan_pinpoint(day, decision(), members, profile)
    assert plan["name"] == "high_value"
    return plan


def import_job(plan: dict, job_id: str, status: str, segment_id: str | None = None, **fields) -> dict:
    request = plan["requests"][0]["params"]["ImportJobRequest"]
    definition = {"Format": "CSV", "S3Url": request["S3Url"], "RoleArn": PINPOINT_ROLE, "DefineSegment": True,
                  **({"SegmentId": segment_id} if segment_id else {})}
    return {"ImportJobResponse": {"ApplicationId": APP, "CreationDate": "2026-11-04T04:00:00Z", "Id": job_id,
                                  "JobStatus": status, "Type": "IMPORT", "Definition": definition, **fields}}


def pinpoint_operator(stub, plan: dict) -> tuple[PinpointImportOperator, Stubber]:
    op = PinpointImportOperator(task_id=f"pinpoint_{plan['name']}", plan=plan, aws_conn_id=None)
    return op, stub(op.hook)


def deliver_pinpoint(stub, plan: dict, job_id: str) -> dict:
    """Send the plan with AWS answering well: the job completes, the segment is seg-0001."""
    op, stubber = pinpoint_operator(stub, plan)
    stubber.add_response("create_import_job", import_job(plan, job_id, "CREATED"), plan["requests"][0]["params"])
    stubber.add_response("get_import_job", import_job(plan, job_id, "COMPLETED", "seg-0001", TotalProcessed=2),
                         {"ApplicationId": APP, "JobId": job_id})
    result = op.execute({})
    stubber.assert_no_pending_responses()
    return result


def pinpoint_yesterday(stub) -> dict[str, str]:
    """PREV delivered: the high_value segment (seg-0001) exists; the state digests a fault must not move."""
    deliver_pinpoint(stub, pinpoint_plan(PREV), "job-prev")
    assert outbox.read_state(PINPOINT, "high_value") == {"partition": PREV.isoformat(), "segment_id": "seg-0001"}
    return state_digests(PINPOINT)


def assert_pinpoint_rerun_converges(stub, failed: dict) -> None:
    rerun = pinpoint_plan(DAY)
    assert rerun["requests"][0]["params"]["ImportJobRequest"]["SegmentId"] == "seg-0001"  # updates, not a new one

    assert deliver_pinpoint(stub, rerun, "job-rerun") == {"job_id": "job-rerun", "segment_id": "seg-0001"}

    assert delivering_attempts(PINPOINT, DAY, "high_value") == [rerun["attempt"]]
    assert outbox.read_state(PINPOINT, "high_value") == {"partition": DAY.isoformat(), "segment_id": "seg-0001"}
    assert receipt_of(failed)["delivered"] is False


@pytest.mark.parametrize(("code", "status"), [("TooManyRequestsException", 429),
                                              ("InternalServerErrorException", 500)])
def test_pinpoint_create_import_job_refused_delivers_nothing(env, stub, code, status):
    """Fault: Pinpoint's CreateImportJob answers 429 (TooManyRequestsException, Pinpoint's throttling) or 500.
    Expect: the operator raises the ClientError (a transient error: retries kept), the receipt stays undelivered, the
    Pinpoint state (segment id) unchanged; a re-run with a good answer delivers once, updating the same segment."""
    state = pinpoint_yesterday(stub)
    plan = pinpoint_plan(DAY)
    op, stubber = pinpoint_operator(stub, plan)
    stubber.add_client_error("create_import_job", service_error_code=code, service_message="try again later",
                             http_status_code=status, expected_params=plan["requests"][0]["params"])

    with pytest.raises(ClientError, match=code) as failure:
        op.execute({})

    stubber.assert_no_pending_responses()
    assert failure.value.response["ResponseMetadata"]["HTTPStatusCode"] == status
    assert not isinstance(failure.value, AirflowFailException)
    assert_undelivered(plan, state)
    assert_pinpoint_rerun_converges(stub, plan)


def test_pinpoint_import_job_reported_failed_raises_naming_the_reason(env, stub):
    """Fault: the import job starts, then GetImportJob reports JobStatus FAILED with Failures.
    Expect: ActivationJobFailed naming the job and AWS's reasons, no delivery recorded, state unchanged; a re-run
    delivers once."""
    state = pinpoint_yesterday(stub)
    plan = pinpoint_plan(DAY)
    op, stubber = pinpoint_operator(stub, plan)
    stubber.add_response("create_import_job", import_job(plan, "job-7", "CREATED"), plan["requests"][0]["params"])
    stubber.add_response("get_import_job", import_job(plan, "job-7", "PROCESSING"), {"ApplicationId": APP,
                                                                                      "JobId": "job-7"})
    stubber.add_response("get_import_job", import_job(plan, "job-7", "FAILED", Failures=[
        "Access denied to s3 object", "Invalid ChannelType in row 2"], FailedPieces=1, TotalPieces=1),
        {"ApplicationId": APP, "JobId": "job-7"})

    with pytest.raises(ActivationJobFailed) as failure:
        op.execute({})

    stubber.assert_no_pending_responses()
    assert str(failure.value) == ("Pinpoint import job job-7 ended FAILED: Access denied to s3 object; Invalid "
                                  "ChannelType in row 2 (1 of 1 piece(s) failed)")
    assert_undelivered(plan, state)
    assert_pinpoint_rerun_converges(stub, plan)


# ---- Amazon Connect Customer Profiles ---------------------------------------------------------------------------

def profiles_plan(day: dt.date) -> dict:
    (plan,) = customer_profiles.plan_customer_profiles(day, decision(), _members_and_profile()[1], RUN)
    return plan


def deliver_profiles(stub, server: LoopbackServer, plan: dict, job_id: str) -> None:
    """Send the plan with AWS answering well; the segment definitions it carries do not exist yet."""
    op = CustomerProfilesUploadOperator(task_id="customer_profiles", plan=plan, aws_conn_id=None)
    stubber = stub(op.hook)
    _stub_upload(stubber, plan["requests"][0]["params"], presigned_url(server), job_id)
    _get_upload_job(stubber, "SUCCEEDED", job_id, ResultsSummary={"CreatedRecords": 2, "UpdatedRecords": 0,
                                                                  "FailedRecords": 0})
    for request in plan["requests"]:
        if request["operation"] == "CreateSegmentDefinition":
            _segment_lookup(stubber, request["params"], exists=False)
    op.execute({})
    stubber.assert_no_pending_responses()


def test_customer_profiles_create_upload_job_500_delivers_nothing(env, stub, http_server):
    """Fault: Customer Profiles' CreateUploadJob answers 500 (InternalServerException).
    Expect: the operator raises, no CSV is uploaded, the receipt stays undelivered, the segment definitions state
    unchanged; a re-run delivers once (one CSV upload)."""
    deliver_profiles(stub, http_server, profiles_plan(PREV), "upload-prev")
    defined = outbox.read_state(PROFILES, "segment_definitions")["names"]
    assert len(defined) == 5
    state = state_digests(PROFILES)
    http_server.reset()
    plan = profiles_plan(DAY)
    assert [r["operation"] for r in plan["requests"]] == ["CreateUploadJob", "GetUploadJobPath", "StartUploadJob"]
    op = CustomerProfilesUploadOperator(task_id="customer_profiles", plan=plan, aws_conn_id=None)
    stubber = stub(op.hook)
    stubber.add_client_error("create_upload_job", service_error_code="InternalServerException",
                             service_message="internal error", http_status_code=500,
                             expected_params=plan["requests"][0]["params"])

    with pytest.raises(ClientError, match="InternalServerException"):
        op.execute({})

    stubber.assert_no_pending_responses()
    assert http_server.received == []
    assert_undelivered(plan, state)

    rerun = profiles_plan(DAY)
    deliver_profiles(stub, http_server, rerun, "upload-rerun")
    assert delivering_attempts(PROFILES, DAY, "upload") == [rerun["attempt"]]
    assert [r.body for r in http_server.received] == [storage.location(rerun["files"][0]).read_bytes()]
    assert outbox.read_state(PROFILES, "segment_definitions")["names"] == defined
    assert receipt_of(plan)["delivered"] is False


# ---- Amazon Personalize -----------------------------------------------------------------------------------------

def items_plan(day: dt.date, run: str = RUN) -> dict:
    """The items dataset's plan from export_personalize, after what plan_personalize and its jobs leave (modes.json,
    the dataset's file and checks)."""
    write_datasets(day, {"items": pa.table({
        "ITEM_ID": ["sku-1", "sku-2"], "CATEGORY": ["shoes", None], "BRAND": ["acme", "zenith"],
        "PRICE": money(59.0, 12.5), "CREATION_TIMESTAMP": pa.array([dt.datetime(2026, 1, 5), dt.datetime(2026, 2, 1)],
                                                                   pa.timestamp("us")),
        "STOCK_LOCATIONS": ["S1|ONLINE", ""]})}, mode=personalize.import_mode("items", day), run=run)
    (plan,) = personalize.export_personalize(day, decision(), run)
    assert plan["name"] == "items"
    return plan


def dataset_import_job(plan: dict, arn: str, status: str, **fields) -> dict:
    params = plan["requests"][0]["params"]
    return {"datasetImportJob": {"jobName": params["jobName"], "datasetImportJobArn": arn, "datasetArn": ITEMS_ARN,
                                 "roleArn": PERSONALIZE_ROLE, "status": status, "importMode": params["importMode"],
                                 **fields}}


def job_arn(name: str) -> str:
    return f"arn:aws:personalize:us-east-1:{ACCOUNT}:dataset-import-job/{name}"


def deliver_items(stub, plan: dict) -> None:
    op = PersonalizeImportOperator(task_id="load_personalize_items", plan=plan, aws_conn_id=None)
    stubber = stub(op.hook)
    arn = job_arn(plan["requests"][0]["params"]["jobName"])
    stubber.add_response("create_dataset_import_job", {"datasetImportJobArn": arn}, plan["requests"][0]["params"])
    stubber.add_response("describe_dataset_import_job", dataset_import_job(plan, arn, "ACTIVE"),
                         {"datasetImportJobArn": arn})
    op.execute({})
    stubber.assert_no_pending_responses()


def test_personalize_limit_exceeded_delivers_nothing_and_the_next_import_stays_incremental(env, stub):
    """Fault: CreateDatasetImportJob answers LimitExceededException (too many import jobs in progress).
    Expect: the operator raises, the receipt stays undelivered, the dataset's state (last import) unchanged; a
    re-run (a new DAG run) delivers the same INCREMENTAL import once."""
    deliver_items(stub, items_plan(PREV, run="scheduled__2026-11-03T04:00:00"))
    state = state_digests(PERSONALIZE)
    plan = items_plan(DAY)
    assert plan["mode"] == "INCREMENTAL"
    op = PersonalizeImportOperator(task_id="load_personalize_items", plan=plan, aws_conn_id=None)
    stubber = stub(op.hook)
    stubber.add_client_error("create_dataset_import_job", service_error_code="LimitExceededException",
                             service_message="The limit on the number of requests per second has been exceeded.",
                             http_status_code=400, expected_params=plan["requests"][0]["params"])

    with pytest.raises(ClientError, match="LimitExceededException"):
        op.execute({})

    stubber.assert_no_pending_responses()
    assert_undelivered(plan, state)
    assert personalize.import_mode("items", DAY) == "INCREMENTAL"

    rerun = items_plan(DAY, run="manual__2026-11-04T09:00:00")
    assert rerun["mode"] == "INCREMENTAL"
    deliver_items(stub, rerun)
    assert delivering_attempts(PERSONALIZE, DAY, "items") == [rerun["attempt"]]
    assert outbox.read_state(PERSONALIZE, "items")["partition"] == DAY.isoformat()
    assert receipt_of(plan)["delivered"] is False


def _name_taken(stubber, plan: dict, status: str, arn: str) -> None:
    """AWS's answers when a retry creates its job under the planned name again: the name is taken
    (ResourceAlreadyExistsException), and ListDatasetImportJobs shows that job's status."""
    params = plan["requests"][0]["params"]
    stubber.add_client_error("create_dataset_import_job", "ResourceAlreadyExistsException",
                             f"The dataset import job {params['jobName']} already exists", 400, params)
    stubber.add_response("list_dataset_import_jobs", {"datasetImportJobs": [
        {"jobName": params["jobName"], "datasetImportJobArn": arn, "status": status}]}, {"datasetArn": ITEMS_ARN})


def test_personalize_import_reported_failed_is_retried_under_a_new_job_name(env, stub):
    """Fault: the dataset import job starts, then AWS reports it CREATE FAILED; Airflow retries the task (the same
    run, the same plan: ActivationJobFailed keeps its retries).
    Expect: no delivery recorded; the retry finds the planned name taken by the failed job (Personalize job names
    are unique) and creates `<name>-r1`, which delivers once."""
    plan = items_plan(DAY)
    failed_name = plan["requests"][0]["params"]["jobName"]
    op = PersonalizeImportOperator(task_id="load_personalize_items", plan=plan, aws_conn_id=None)
    stubber = stub(op.hook)
    stubber.add_response("create_dataset_import_job", {"datasetImportJobArn": job_arn(failed_name)},
                         plan["requests"][0]["params"])
    stubber.add_response("describe_dataset_import_job", dataset_import_job(
        plan, job_arn(failed_name), "CREATE FAILED", failureReason="Internal error, please retry"),
        {"datasetImportJobArn": job_arn(failed_name)})
    with pytest.raises(ActivationJobFailed, match="ended CREATE FAILED: Internal error, please retry"):
        op.execute({})
    assert_undelivered(plan, {})

    # the task's retry: the same plan, a new operator instance
    retry = PersonalizeImportOperator(task_id="load_personalize_items", plan=plan, aws_conn_id=None)
    stubber = stub(retry.hook)
    _name_taken(stubber, plan, "CREATE FAILED", job_arn(failed_name))
    renamed = {**plan["requests"][0]["params"], "jobName": f"{failed_name}-r1"}
    stubber.add_response("create_dataset_import_job", {"datasetImportJobArn": job_arn(renamed["jobName"])}, renamed)
    stubber.add_response("describe_dataset_import_job", dataset_import_job(plan, job_arn(renamed["jobName"]),
                                                                           "ACTIVE"),
                         {"datasetImportJobArn": job_arn(renamed["jobName"])})
    retry.execute({})

    stubber.assert_no_pending_responses()
    assert receipt_of(plan)["job_arn"] == job_arn(renamed["jobName"])
    assert delivering_attempts(PERSONALIZE, DAY, "items") == [plan["attempt"]]


def test_a_personalize_retry_resumes_the_job_it_created_before_the_worker_was_lost(env, stub):
    """Fault: the worker is lost after CreateDatasetImportJob answered (the job runs in AWS); the task's retry
    creates the same name again.
    Expect: no second import of the same data: the retry waits for the job of that name and records it once."""
    plan = items_plan(DAY)
    name = plan["requests"][0]["params"]["jobName"]
    retry = PersonalizeImportOperator(task_id="load_personalize_items", plan=plan, aws_conn_id=None)
    stubber = stub(retry.hook)
    _name_taken(stubber, plan, "CREATE IN_PROGRESS", job_arn(name))
    stubber.add_response("describe_dataset_import_job", dataset_import_job(plan, job_arn(name), "ACTIVE"),
                         {"datasetImportJobArn": job_arn(name)})
    retry.execute({})

    stubber.assert_no_pending_responses()
    assert receipt_of(plan)["job_arn"] == job_arn(name)
    assert delivering_attempts(PERSONALIZE, DAY, "items") == [plan["attempt"]]


# ---- a re-run of what an earlier attempt delivered --------------------------------------------------------------

def test_a_rerun_of_delivered_plans_plans_nothing_and_keeps_the_earlier_attempt(env, monkeypatch, stub,
                                                                                http_server):
    """Fault: the day is run again after its Pinpoint audience, Customer Profiles upload and Segment identify were
    delivered (`outbox.to_plan` is False for them).
    Expect: the plan functions plan nothing for those names, nothing is sent, and the delivering attempt's files
    and the destinations' state are byte-identical afterwards."""
    first = decision()
    members, profile = _members_and_profile()
    (audience,) = pinpoint.plan_pinpoint(DAY, first, members, profile)
    deliver_pinpoint(stub, audience, "job-1")
    (upload,) = customer_profiles.plan_customer_profiles(DAY, first, profile, RUN)
    deliver_profiles(stub, http_server, upload, "upload-1")
    connect_segment(monkeypatch, http_server.url)
    identify = segment.plan(DAY, first, make_profile(10))
    assert segment.publish(identify)["sent"] is True
    destinations = (PINPOINT, PROFILES, SEGMENT)
    files = {d: tree_digests(paths.delivery(d, DAY, first["attempt"])) for d in destinations}
    states = {d: state_digests(d) for d in destinations}
    assert all(files.values()) and all(states.values())
    http_server.reset()
    again = decision()
    assert not outbox.to_plan(PINPOINT, DAY, "high_value", again)
    assert not outbox.to_plan(PROFILES, DAY, "upload", again)
    assert not outbox.to_plan(SEGMENT, DAY, "identify", again)

    assert pinpoint.plan_pinpoint(DAY, again, members, profile) == []
    assert customer_profiles.plan_customer_profiles(DAY, again, profile, RUN) == []
    assert segment.plan(DAY, again, make_profile(10)) == {}

    assert not paths.delivery(PINPOINT, DAY, again["attempt"], "high_value").exists()
    assert not paths.delivery(PINPOINT, DAY, again["attempt"], "outbox", "high_value.json").exists()
    assert not paths.delivery(PROFILES, DAY, again["attempt"]).exists()
    assert not paths.delivery(SEGMENT, DAY, again["attempt"]).exists()
    assert segment.publish({})["sent"] is False
    assert http_server.received == []
    assert {d: tree_digests(paths.delivery(d, DAY, first["attempt"])) for d in destinations} == files
    assert {d: state_digests(d) for d in destinations} == states
    for destination, name in ((PINPOINT, "high_value"), (PROFILES, "upload"), (SEGMENT, "identify")):
        assert delivering_attempts(destination, DAY, name) == [first["attempt"]]
