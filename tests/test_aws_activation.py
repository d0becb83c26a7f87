"""The activation hooks and operators of crosschannel.wiring.aws against botocore's Stubber: every request
is checked against the real Pinpoint / Customer Profiles / Personalize API models before a canned answer (itself
checked against the model) comes back. The Customer Profiles CSV goes to a presigned-URL stand-in on loopback."""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import re

import pandas as pd
import pytest
from airflow.sdk.module_loading import import_string
from botocore.stub import Stubber

from crosschannel.core import paths, storage
from crosschannel.core.config import get_config
from crosschannel.stages.activation import customer_profiles, outbox, personalize, pinpoint
from crosschannel.stages.activation.outbox import ActivationError
from crosschannel.wiring.aws.hooks import ActivationJobFailed, CustomerProfilesHook, PersonalizeHook, PinpointHook
from crosschannel.wiring.aws.operators import (
    CustomerProfilesUploadOperator,
    PersonalizeImportOperator,
    PinpointImportOperator,
)
from crosschannel.wiring.aws.triggers import ActivationJobTrigger
from tests.conftest import ACCOUNT, AWS_ENV, LoopbackServer, configure

DAY = dt.date(2026, 11, 2)
NEXT_DAY = DAY + dt.timedelta(days=1)
APP = AWS_ENV["CROSSCHANNEL__ACTIVATION__PINPOINT__APPLICATION_ID"]
PINPOINT_ROLE = AWS_ENV["CROSSCHANNEL__ACTIVATION__PINPOINT__ROLE_ARN"]
PERSONALIZE_ROLE = AWS_ENV["CROSSCHANNEL__ACTIVATION__PERSONALIZE__ROLE_ARN"]
INTERACTIONS_ARN = AWS_ENV["CROSSCHANNEL__ACTIVATION__PERSONALIZE__INTERACTIONS_DATASET_ARN"]
IMPORT_ARN = f"arn:aws:personalize:us-east-1:{ACCOUNT}:dataset-import-job/crosschannel-interactions-20261102"
DOMAIN = "crosschannel"
SEND = {"send": True, "reason": "the newest partition", "force": False, "attempt": "20261102T070000000000Z-test"}


@pytest.fixture
def env(tmp_path, monkeypatch):
    """The bundle configured in tmp_path, polling without sleeping, with the Pinpoint project set."""

    yield configure(monkeypatch, tmp_path, CROSSCHANNEL__ACTIVATION__POLL_INTERVAL_SECONDS="0",
                    CROSSCHANNEL__ACTIVATION__PINPOINT__APPLICATION_ID=APP,
                    CROSSCHANNEL__ACTIVATION__PINPOINT__ROLE_ARN=PINPOINT_ROLE)
    get_config.cache_clear()


def presigned_url(server: LoopbackServer) -> str:
    """A URL on the loopback server (conftest.http_server) standing in for S3's presigned URL."""
    return f"{server.url}/upload/part-00000.csv?X-Amz-Signature=abc"


# ---- Amazon Pinpoint ------------------------------------------------------------------------------------------

def _import_job(job_id: str, status: str, **fields) -> dict:
    definition = {"Format": "CSV", "S3Url": "s3://lake/data/activation/pinpoint/dt=2026-11-02/high_value/",
                  "RoleArn": PINPOINT_ROLE, "DefineSegment": True, **fields.pop("definition", {})}
    return {"ImportJobResponse": {"ApplicationId": APP, "CreationDate": "2026-11-03T04:00:00Z", "Id": job_id,
                                  "JobStatus": status, "Type": "IMPORT", "Definition": definition, **fields}}


def _get_import_job(stubber: Stubber, job_id: str, status: str, **fields) -> None:
    stubber.add_response("get_import_job", _import_job(job_id, status, **fields),
                         {"ApplicationId": APP, "JobId": job_id})


def test_pinpoint_wait_polls_until_the_job_completes(stub):
    hook = PinpointHook(aws_conn_id=None)
    stubber = stub(hook)
    for status in ("CREATED", "PROCESSING", "COMPLETING"):
        _get_import_job(stubber, "job-1", status)
    _get_import_job(stubber, "job-1", "COMPLETED", TotalProcessed=42)

    job = hook.wait_for_import(APP, "job-1", interval=0, timeout=60)

    assert job["JobStatus"] == "COMPLETED"
    assert job["TotalProcessed"] == 42
    stubber.assert_no_pending_responses()


def test_pinpoint_failed_job_raises_with_aws_failures_and_pieces(stub):
    hook = PinpointHook(aws_conn_id=None)
    stubber = stub(hook)
    _get_import_job(stubber, "job-2", "PROCESSING")
    _get_import_job(stubber, "job-2", "FAILED", Failures=["Invalid Address in row 3", "Missing ChannelType"],
                    FailedPieces=2, TotalPieces=5)

    with pytest.raises(ActivationJobFailed) as failure:
        hook.wait_for_import(APP, "job-2", interval=0, timeout=60)

    message = str(failure.value)
    assert "Pinpoint import job job-2 ended FAILED" in message
    assert "Invalid Address in row 3; Missing ChannelType" in message
    assert "(2 of 5 piece(s) failed)" in message
    stubber.assert_no_pending_responses()


def test_pinpoint_job_still_running_at_the_timeout_raises(stub):
    hook = PinpointHook(aws_conn_id=None)
    stubber = stub(hook)
    _get_import_job(stubber, "job-3", "PROCESSING")

    with pytest.raises(TimeoutError, match=r"Pinpoint import job job-3 still PROCESSING after 0 s"):
        hook.wait_for_import(APP, "job-3", interval=0, timeout=0)

    stubber.assert_no_pending_responses()


def _pinpoint_plan(day: dt.date, audience: str) -> dict:
    request = {"Format": "CSV", "S3Url": f"s3://lake/data/activation/pinpoint/dt={day}/{audience}/",
               "RoleArn": PINPOINT_ROLE, "DefineSegment": True, "RegisterEndpoints": True,
               "SegmentName": f"crosschannel-{audience}"}
    requests = [outbox.validate("pinpoint", "CreateImportJob", {"ApplicationId": APP, "ImportJobRequest": request})]
    return outbox.plan_request("pinpoint", day, audience, requests, SEND, [request["S3Url"] + "part-00000.csv"],
                              endpoints=2)


def _members_and_profile() -> tuple[pd.DataFrame, pd.DataFrame]:
    """Customer 1 is a reachable treatment member of high_value (email and SMS); customer 2 is in control."""
    members = pd.DataFrame({"audience": ["high_value", "high_value"], "customer_id": [1, 2],
                            "detail": ["top 5% spend", "top 5% spend"], "assignment": ["treatment", "control"]})
    scores = {f"{model}_{part}": value for model in ("churn", "repurchase")
              for part, value in (("probability", 0.5), ("decile", 5), ("reason_1", "recency"),
                                  ("reason_2", "frequency"), ("reason_3", "monetary"))}
    profile = pd.DataFrame([
        {"customer_id": 1, "user_id": "1", "first_name": "Ada", "last_name": "Lovelace", "email": "ada@example.com",
         "phone": "+1 (555) 010-0001", "email_opt_in": True, "sms_opt_in": True, "loyalty_tier": "gold",
         "audiences": ["high_value"], **scores},
        {"customer_id": 2, "user_id": "2", "first_name": "Bob", "last_name": "Byte", "email": "bob@example.com",
         "phone": "+15550100002", "email_opt_in": True, "sms_opt_in": True, "loyalty_tier": "silver",
         "audiences": [], **scores},
    ])
    return members, profile


def test_pinpoint_operator_defines_the_segment_then_the_next_day_updates_it(env, stub):
    plan = _pinpoint_plan(DAY, "high_value")
    request = plan["requests"][0]["params"]
    op = PinpointImportOperator(task_id="pinpoint_high_value", plan=plan, aws_conn_id=None)
    stubber = stub(op.hook)
    stubber.add_response("create_import_job", _import_job("job-9", "CREATED"), request)
    _get_import_job(stubber, "job-9", "PROCESSING")
    _get_import_job(stubber, "job-9", "COMPLETED", TotalProcessed=2,
                    definition={"SegmentId": "seg-0001", "SegmentName": "crosschannel-high_value"})

    result = op.execute({})

    stubber.assert_no_pending_responses()
    assert result == {"job_id": "job-9", "segment_id": "seg-0001"}
    receipt = storage.read_json(storage.location(plan["outbox"]))["receipt"]
    assert receipt["sent"] is True and receipt["status"] == "COMPLETED"
    assert receipt["job_id"] == "job-9" and receipt["total_processed"] == 2
    state = storage.read_json(storage.zone("activation", "pinpoint", "state", "high_value.json"))
    assert state == {"partition": DAY.isoformat(), "segment_id": "seg-0001"}

    members, profile = _members_and_profile()
    (next_plan,) = pinpoint.plan_pinpoint(NEXT_DAY, SEND, members, profile)

    assert next_plan["name"] == "high_value" and next_plan["endpoints"] == 2
    next_request = next_plan["requests"][0]["params"]["ImportJobRequest"]
    assert next_request["SegmentId"] == "seg-0001"
    assert "SegmentName" not in next_request
    other = storage.read_json(paths.delivery("pinpoint", NEXT_DAY, SEND["attempt"], "outbox", "win_back.json"))
    assert other["requests"][0]["params"]["ImportJobRequest"]["SegmentName"] == "crosschannel-win_back"


# ---- Amazon Connect Customer Profiles -------------------------------------------------------------------------

CREATE_UPLOAD = {"DomainName": DOMAIN, "DisplayName": "crosschannel 2026-11-02 abc123", "UniqueKey": "customer_id",
                 "Fields": {"customer_id": {"Source": "_source.customer_id", "Target": "_profile.AccountNumber",
                                            "ContentType": "STRING"}}, "DataExpiry": 30}


def _stub_upload(stubber: Stubber, create: dict, url: str, job_id: str = "upload-1") -> None:
    stubber.add_response("create_upload_job", {"JobId": job_id}, create)
    stubber.add_response("get_upload_job_path", {"Url": url, "ClientToken": "c2VjcmV0LWtleS0zMi1ieXRlcy1sb25nLSE=",
                                                 "ValidUntil": dt.datetime(2026, 11, 3, 5, 0)},
                         {"DomainName": create["DomainName"], "JobId": job_id})
    stubber.add_response("start_upload_job", {}, {"DomainName": create["DomainName"], "JobId": job_id})


def _get_upload_job(stubber: Stubber, status: str, job_id: str = "upload-1", **fields) -> None:
    stubber.add_response("get_upload_job", {"JobId": job_id, "Status": status, **fields},
                         {"DomainName": DOMAIN, "JobId": job_id})


def _csv_file(tmp_path, body: bytes) -> str:
    (tmp_path / "part-00000.csv").write_bytes(body)
    return (tmp_path / "part-00000.csv").as_uri()


def test_profiles_upload_puts_the_csv_to_the_presigned_url_between_create_and_start(stub, http_server, tmp_path):
    url, received = presigned_url(http_server), http_server.received
    hook = CustomerProfilesHook(aws_conn_id=None)
    stubber = stub(hook)
    _stub_upload(stubber, CREATE_UPLOAD, url)
    body = b"customer_id,first_name\n1,Ada\n2,Bob\n" * 5000  # streamed from the file in blocks

    job_id = hook.upload(CREATE_UPLOAD, _csv_file(tmp_path, body))

    assert job_id == "upload-1"
    assert len(received) == 1
    assert received[0].body == body  # the loopback server reads Content-Length bytes: a chunked PUT would be empty
    assert received[0].headers["Content-Length"] == str(len(body))
    assert received[0].path == "/upload/part-00000.csv?X-Amz-Signature=abc"
    assert received[0].headers["Content-Type"] == "text/csv"
    stubber.assert_no_pending_responses()


def test_profiles_upload_sends_the_client_token_as_sse_c_headers(stub, http_server, tmp_path):
    url, received = presigned_url(http_server), http_server.received
    hook = CustomerProfilesHook(aws_conn_id=None)
    _stub_upload(stub(hook), CREATE_UPLOAD, url)

    hook.upload(CREATE_UPLOAD, _csv_file(tmp_path, b"customer_id\n1\n"))

    headers = {k.lower(): v for k, v in received[0].headers.items()}
    assert headers.get("x-amz-server-side-encryption-customer-algorithm") == "AES256"
    assert headers.get("x-amz-server-side-encryption-customer-key") == "c2VjcmV0LWtleS0zMi1ieXRlcy1sb25nLSE="
    assert headers.get("x-amz-server-side-encryption-customer-key-md5") == base64.b64encode(
        hashlib.md5(base64.b64decode("c2VjcmV0LWtleS0zMi1ieXRlcy1sb25nLSE=")).digest()).decode()


def test_profiles_wait_returns_the_succeeded_job(stub):
    hook = CustomerProfilesHook(aws_conn_id=None)
    stubber = stub(hook)
    _get_upload_job(stubber, "CREATED")
    _get_upload_job(stubber, "IN_PROGRESS")
    _get_upload_job(stubber, "SUCCEEDED", ResultsSummary={"CreatedRecords": 2, "UpdatedRecords": 0,
                                                          "FailedRecords": 0})

    job = hook.wait_for_upload(DOMAIN, "upload-1", interval=0, timeout=60)

    assert job["Status"] == "SUCCEEDED" and job["ResultsSummary"]["CreatedRecords"] == 2
    stubber.assert_no_pending_responses()


@pytest.mark.parametrize(("status", "fields", "expected"), [
    ("FAILED", {"StatusReason": "VALIDATION_FAILURE"}, "ended FAILED: VALIDATION_FAILURE, 0 failed record(s)"),
    ("PARTIALLY_SUCCEEDED", {"ResultsSummary": {"CreatedRecords": 8, "UpdatedRecords": 0, "FailedRecords": 3}},
     "ended PARTIALLY_SUCCEEDED: no reason given, 3 failed record(s)"),
])
def test_profiles_wait_raises_on_a_failed_or_partial_job(stub, status, fields, expected):
    hook = CustomerProfilesHook(aws_conn_id=None)
    stubber = stub(hook)
    _get_upload_job(stubber, "IN_PROGRESS")
    _get_upload_job(stubber, status, **fields)

    with pytest.raises(ActivationJobFailed, match=re.escape(f"Customer Profiles upload job upload-1 {expected}")):
        hook.wait_for_upload(DOMAIN, "upload-1", interval=0, timeout=60)

    stubber.assert_no_pending_responses()


def _definition(audience: str) -> dict:
    return {"DomainName": DOMAIN, "SegmentDefinitionName": f"crosschannel_{audience}",
            "DisplayName": f"crosschannel {audience}",
            "SegmentGroups": {"Include": "ALL", "Groups": [{"Type": "ALL", "Dimensions": [{"ProfileAttributes": {
                "Attributes": {f"audience_{audience}": {"DimensionType": "INCLUSIVE", "Values": ["true"]}}}}]}]}}


def _segment_lookup(stubber: Stubber, definition: dict, *, exists: bool) -> None:
    key = {"DomainName": definition["DomainName"], "SegmentDefinitionName": definition["SegmentDefinitionName"]}
    if exists:
        stubber.add_response("get_segment_definition", {
            "SegmentDefinitionName": definition["SegmentDefinitionName"],
            "SegmentDefinitionArn": f"arn:aws:profile:us-east-1:{ACCOUNT}:domains/{DOMAIN}/segment-definitions/"
                                    f"{definition['SegmentDefinitionName']}"}, key)
    else:
        stubber.add_client_error("get_segment_definition", service_error_code="ResourceNotFoundException",
                                 service_message="Segment definition not found", http_status_code=404,
                                 expected_params=key)
        stubber.add_response("create_segment_definition",
                             {"SegmentDefinitionName": definition["SegmentDefinitionName"]}, definition)


def test_ensure_segment_definition_creates_a_missing_one(stub):
    hook = CustomerProfilesHook(aws_conn_id=None)
    stubber = stub(hook)
    _segment_lookup(stubber, _definition("high_value"), exists=False)

    assert hook.ensure_segment_definition(_definition("high_value")) is True
    stubber.assert_no_pending_responses()


def test_ensure_segment_definition_leaves_an_existing_one(stub):
    hook = CustomerProfilesHook(aws_conn_id=None)
    stubber = stub(hook)
    _segment_lookup(stubber, _definition("high_value"), exists=True)

    assert hook.ensure_segment_definition(_definition("high_value")) is False
    stubber.assert_no_pending_responses()  # and no CreateSegmentDefinition was made (the Stubber would refuse it)


def test_profiles_operator_uploads_the_planned_csv_and_records_the_definitions(env, stub, http_server):
    url, received = presigned_url(http_server), http_server.received
    _, profile = _members_and_profile()
    (plan,) = customer_profiles.plan_customer_profiles(DAY, SEND, profile, "manual__2026-11-03T04:00:00")
    create = plan["requests"][0]["params"]
    definitions = [r["params"] for r in plan["requests"] if r["operation"] == "CreateSegmentDefinition"]
    op = CustomerProfilesUploadOperator(task_id="customer_profiles", plan=plan, aws_conn_id=None)
    stubber = stub(op.hook)
    _stub_upload(stubber, create, url)
    _get_upload_job(stubber, "SUCCEEDED", ResultsSummary={"CreatedRecords": 2, "UpdatedRecords": 0,
                                                          "FailedRecords": 0})
    for definition in definitions:
        _segment_lookup(stubber, definition, exists=definition["SegmentDefinitionName"] == "crosschannel_win_back")

    result = op.execute({})

    stubber.assert_no_pending_responses()
    assert received[0].body == storage.location(plan["files"][0]).read_bytes()
    assert received[0].body.startswith(b"customer_id,first_name,last_name,email,phone,loyalty_tier,")
    created = sorted(d["SegmentDefinitionName"] for d in definitions if d["SegmentDefinitionName"] !=
                     "crosschannel_win_back")
    assert result == {"job_id": "upload-1", "segment_definitions_created": created}
    receipt = storage.read_json(storage.location(plan["outbox"]))["receipt"]
    assert receipt["sent"] is True and receipt["status"] == "SUCCEEDED"
    assert receipt["results"]["CreatedRecords"] == 2
    assert outbox.read_state("customer_profiles", "segment_definitions")["names"] == \
        sorted(d["SegmentDefinitionName"] for d in definitions)


# ---- Amazon Personalize ---------------------------------------------------------------------------------------

def _dataset_import_job(status: str, **fields) -> dict:
    return {"datasetImportJob": {"jobName": "crosschannel-interactions-20261102", "datasetImportJobArn": IMPORT_ARN,
                                 "datasetArn": INTERACTIONS_ARN, "roleArn": PERSONALIZE_ROLE, "status": status,
                                 "importMode": "FULL", "creationDateTime": dt.datetime(2026, 11, 3, 4, 0),
                                 **fields}}


def _describe(stubber: Stubber, status: str, **fields) -> None:
    stubber.add_response("describe_dataset_import_job", _dataset_import_job(status, **fields),
                         {"datasetImportJobArn": IMPORT_ARN})


def test_personalize_wait_polls_until_active(stub):
    hook = PersonalizeHook(aws_conn_id=None)
    stubber = stub(hook)
    for status in ("CREATE PENDING", "CREATE IN_PROGRESS", "ACTIVE"):
        _describe(stubber, status)

    job = hook.wait_for_import(IMPORT_ARN, interval=0, timeout=60)

    assert job["status"] == "ACTIVE"
    stubber.assert_no_pending_responses()


def test_personalize_failed_import_raises_with_the_failure_reason(stub):
    hook = PersonalizeHook(aws_conn_id=None)
    stubber = stub(hook)
    _describe(stubber, "CREATE PENDING")
    _describe(stubber, "CREATE FAILED", failureReason="Input CSV is missing required field TIMESTAMP")

    with pytest.raises(ActivationJobFailed, match=r"ended CREATE FAILED: Input CSV is missing required field "
                                                  r"TIMESTAMP"):
        hook.wait_for_import(IMPORT_ARN, interval=0, timeout=60)

    stubber.assert_no_pending_responses()


def _personalize_plan() -> tuple[dict, dict]:
    location = f"s3://lake/data/activation/personalize/dt={DAY}/interactions/part-00000.csv"
    request = outbox.validate("personalize", "CreateDatasetImportJob", {
        "jobName": "crosschannel-interactions-20261102", "datasetArn": INTERACTIONS_ARN,
        "dataSource": {"dataLocation": location}, "roleArn": PERSONALIZE_ROLE, "importMode": "FULL"})
    plan = outbox.plan_request("personalize", DAY, "interactions", [request], SEND, [location], records=1500,
                              mode="FULL", dataset="interactions")
    return plan, request


def test_personalize_operator_records_the_import_so_the_next_day_is_incremental(env, stub):
    plan, request = _personalize_plan()
    op = PersonalizeImportOperator(task_id="personalize_interactions", plan=plan, aws_conn_id=None)
    stubber = stub(op.hook)
    stubber.add_response("create_dataset_import_job", {"datasetImportJobArn": IMPORT_ARN}, request["params"])
    _describe(stubber, "CREATE IN_PROGRESS")
    _describe(stubber, "ACTIVE")
    assert personalize.import_mode("interactions", DAY) == "FULL"

    result = op.execute({})

    stubber.assert_no_pending_responses()
    assert result == {"job_arn": IMPORT_ARN, "mode": "FULL"}
    state = storage.read_json(storage.zone("activation", "personalize", "state", "interactions.json"))
    assert state == {"partition": DAY.isoformat(), "mode": "FULL", "job_arn": IMPORT_ARN}
    receipt = storage.read_json(storage.location(plan["outbox"]))["receipt"]
    assert receipt["sent"] is True and receipt["status"] == "ACTIVE"
    assert personalize.import_mode("interactions", NEXT_DAY) == "INCREMENTAL"
    assert personalize.import_mode("interactions", DAY + dt.timedelta(days=3)) == "FULL"
    assert personalize.import_mode("interactions", DAY) == "FULL"  # the same day sent again
    assert personalize.import_mode("users", NEXT_DAY) == "FULL"  # another dataset has no import yet


# ---- requests checked against the API model -------------------------------------------------------------------

def test_validate_refuses_a_pinpoint_import_without_its_role():
    request = {"Format": "CSV", "S3Url": "s3://lake/data/activation/pinpoint/dt=2026-11-02/high_value/",
               "DefineSegment": True, "SegmentName": "crosschannel-high_value"}

    with pytest.raises(ActivationError, match=r"(?s)pinpoint CreateImportJob: .*Missing required parameter.*RoleArn"):
        outbox.validate("pinpoint", "CreateImportJob", {"ApplicationId": APP, "ImportJobRequest": request})


def test_validate_refuses_a_personalize_import_mode_that_is_not_a_string():
    request = {"jobName": "crosschannel-items-20261102", "datasetArn": INTERACTIONS_ARN, "roleArn": PERSONALIZE_ROLE,
               "dataSource": {"dataLocation": "s3://lake/data/x.csv"}, "importMode": 1}

    with pytest.raises(ActivationError,
                       match=r"(?s)personalize CreateDatasetImportJob: .*Invalid type for parameter importMode"):
        outbox.validate("personalize", "CreateDatasetImportJob", request)


def test_validate_returns_the_checked_request_with_the_api_version():
    params = {"ApplicationId": APP, "ImportJobRequest": {"Format": "CSV", "S3Url": "s3://lake/x/",
                                                         "RoleArn": PINPOINT_ROLE}}

    checked = outbox.validate("pinpoint", "CreateImportJob", params)

    assert checked["operation"] == "CreateImportJob" and checked["params"] is params
    assert checked["api_version"] == "2016-12-01"


# ---- deferrable: the wait runs in the triggerer --------------------------------------------------------------

def _first_event(trigger):
    import asyncio

    async def first():
        async for event in trigger.run():
            return event.payload

    return asyncio.run(first())


def test_triggers_recorded_under_the_old_class_path_still_import():
    """Triggers deferred before the stage packages are stored as crosschannel.aws_activation.ActivationJobTrigger;
    the triggerer must still import them (a thin re-export, kept for one release)."""
    assert import_string("crosschannel.aws_activation.ActivationJobTrigger") is ActivationJobTrigger


def test_a_deferrable_operator_starts_the_job_then_waits_in_the_triggerer(env, stub, monkeypatch):
    from airflow.sdk.exceptions import TaskDeferred

    plan, request = _personalize_plan()
    op = PersonalizeImportOperator(task_id="load_personalize", plan=plan, aws_conn_id=None, deferrable=True)
    stubber = stub(op.hook)
    stubber.add_response("create_dataset_import_job", {"datasetImportJobArn": IMPORT_ARN}, request["params"])

    with pytest.raises(TaskDeferred) as deferred:
        op.execute({})

    stubber.assert_no_pending_responses()  # started, not polled in the worker
    trigger = deferred.value.trigger
    classpath, kwargs = trigger.serialize()
    assert classpath == "crosschannel.wiring.aws.triggers.ActivationJobTrigger"  # importable by the triggerer
    assert ActivationJobTrigger(**kwargs).serialize() == (classpath, kwargs)
    assert import_string(classpath) is ActivationJobTrigger
    assert kwargs["ids"] == {"datasetImportJobArn": IMPORT_ARN} and kwargs["kind"] == "personalize_import"
    assert deferred.value.method_name == "execute_complete"

    assert not deferred.value.kwargs  # the event carries the ids: dag.test() resumes with the event alone
    hook = PersonalizeHook(aws_conn_id=None)
    _describe(stub(hook), "ACTIVE")
    monkeypatch.setattr(ActivationJobTrigger, "hook", lambda self: hook)
    event = _first_event(trigger)  # the triggerer's run, as it hands the event back
    assert event["ids"] == {"datasetImportJobArn": IMPORT_ARN}
    result = op.execute_complete({}, event)

    assert result == {"job_arn": IMPORT_ARN, "mode": "FULL"}
    assert personalize.import_mode("interactions", NEXT_DAY) == "INCREMENTAL"
    with pytest.raises(ActivationJobFailed, match="missing TIMESTAMP"):
        op.execute_complete({}, {"status": "failed", "message": "missing TIMESTAMP", "ids": event["ids"]})


@pytest.mark.parametrize(("statuses", "expected"), [
    (["CREATE PENDING", "ACTIVE"], "success"),
    (["CREATE IN_PROGRESS", "CREATE FAILED"], "failed"),
])
def test_the_trigger_waits_with_the_same_rules(env, stub, monkeypatch, statuses, expected):
    trigger = ActivationJobTrigger(kind="personalize_import", ids={"datasetImportJobArn": IMPORT_ARN}, interval=0,
                                   timeout=60, aws_conn_id=None, region_name="us-east-1")
    hook = PersonalizeHook(aws_conn_id=None)
    stubber = stub(hook)
    for status in statuses:
        _describe(stubber, status, failureReason="Input CSV is missing required field TIMESTAMP")
    monkeypatch.setattr(ActivationJobTrigger, "hook", lambda self: hook)

    event = _first_event(trigger)

    stubber.assert_no_pending_responses()
    assert event["status"] == expected
    if expected == "success":
        assert event["job"]["status"] == "ACTIVE" and event["job"]["creationDateTime"].startswith("2026-11-03")
    else:
        assert "ended CREATE FAILED: Input CSV is missing required field TIMESTAMP" in event["message"]


def test_the_trigger_gives_up_at_the_timeout(env, stub, monkeypatch):
    trigger = ActivationJobTrigger(kind="pinpoint_import", ids={"ApplicationId": APP, "JobId": "job-9"}, interval=0,
                                   timeout=0, aws_conn_id=None, region_name="us-east-1")
    hook = PinpointHook(aws_conn_id=None)
    stubber = stub(hook)
    stubber.add_response("get_import_job", _import_job("job-9", "PROCESSING"), {"ApplicationId": APP, "JobId": "job-9"})
    monkeypatch.setattr(ActivationJobTrigger, "hook", lambda self: hook)

    event = _first_event(trigger)

    assert event == {"status": "timeout", "ids": {"ApplicationId": APP, "JobId": "job-9"},
                     "message": "Pinpoint import job job-9 still PROCESSING after 0 s"}
