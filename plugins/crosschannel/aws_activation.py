"""Hooks and operators for the AWS destinations the Amazon provider does not cover: Amazon Pinpoint import jobs,
Amazon Connect Customer Profiles upload jobs and segment definitions, Amazon Personalize dataset import jobs.

Each operator takes a plan of `crosschannel.destinations` (requests already validated against the botocore
model), starts the job, waits for it (deferred to the triggerer when `deferrable`, as the DAG runs them) and
records the receipt and the destination's state. A failed job raises with the reason AWS gives; a job still
running at `activation.poll_timeout_minutes` raises too.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from airflow.configuration import conf
from airflow.providers.amazon.aws.hooks.base_aws import AwsBaseHook
from airflow.providers.amazon.aws.operators.base_aws import AwsBaseOperator
from airflow.triggers.base import BaseTrigger, TriggerEvent


class ActivationJobFailed(RuntimeError):
    """An import or upload job ended in failure; the message names the job and AWS's reason."""


@dataclass(frozen=True)
class JobKind:
    """How to read one kind of job's state: the describe call, its status, the done and failed statuses and
    AWS's reason. The worker's wait (`wait`) and the triggerer's (`ActivationJobTrigger`) both use it."""

    what: str
    hook: type[AwsBaseHook]
    describe: Callable[[Any, dict], dict]
    status: Callable[[dict], str]
    done: frozenset[str]
    failed: frozenset[str]
    reason: Callable[[dict], str]

    def check(self, answer: dict, ids: dict) -> bool:
        """True when the job is done; raises when it failed."""
        state = self.status(answer)
        if state in self.failed:
            raise ActivationJobFailed(f"{self.what} {_ident(ids)} ended {state}: {self.reason(answer)}")
        return state in self.done


def _ident(ids: dict) -> str:
    return str(ids.get("JobId") or ids.get("datasetImportJobArn") or ids)


class PinpointHook(AwsBaseHook):
    """Amazon Pinpoint import jobs (CreateImportJob / GetImportJob)."""

    def __init__(self, *args, **kwargs) -> None:
        kwargs["client_type"] = "pinpoint"
        super().__init__(*args, **kwargs)

    def start_import(self, application_id: str, request: dict) -> dict:
        return self.conn.create_import_job(ApplicationId=application_id, ImportJobRequest=request)["ImportJobResponse"]

    def wait_for_import(self, application_id: str, job_id: str, *, interval: float, timeout: float) -> dict:
        return wait(self, "pinpoint_import", {"ApplicationId": application_id, "JobId": job_id},
                    interval=interval, timeout=timeout)


def upload_headers(client_token: str | None) -> dict:
    """The PUT headers of a Customer Profiles upload: the ClientToken is the (base64) key of S3's server-side
    encryption with a customer key (SSE-C), sent with its MD5, as GetUploadJobPath's documentation requires."""
    import base64
    import hashlib

    headers = {"Content-Type": "text/csv"}
    if client_token:
        digest = hashlib.md5(base64.b64decode(client_token)).digest()
        headers.update({"x-amz-server-side-encryption-customer-algorithm": "AES256",
                        "x-amz-server-side-encryption-customer-key": client_token,
                        "x-amz-server-side-encryption-customer-key-MD5": base64.b64encode(digest).decode()})
    return headers


class CustomerProfilesHook(AwsBaseHook):
    """Amazon Connect Customer Profiles bulk upload jobs and segment definitions."""

    def __init__(self, *args, **kwargs) -> None:
        kwargs["client_type"] = "customer-profiles"
        super().__init__(*args, **kwargs)

    def upload(self, create: dict, body: bytes) -> str:
        """CreateUploadJob, PUT the CSV to the presigned URL of GetUploadJobPath, StartUploadJob: the job id."""
        import requests

        job_id = self.conn.create_upload_job(**create)["JobId"]
        path = self.conn.get_upload_job_path(DomainName=create["DomainName"], JobId=job_id)
        response = requests.put(path["Url"], data=body, headers=upload_headers(path.get("ClientToken")), timeout=300)
        if not response.ok:
            raise ActivationJobFailed(f"Customer Profiles upload job {job_id}: the CSV upload answered "
                                      f"{response.status_code} {response.text[:300]}")
        self.conn.start_upload_job(DomainName=create["DomainName"], JobId=job_id)
        return job_id

    def wait_for_upload(self, domain: str, job_id: str, *, interval: float, timeout: float) -> dict:
        return wait(self, "profiles_upload", {"DomainName": domain, "JobId": job_id}, interval=interval,
                    timeout=timeout)

    def ensure_segment_definition(self, definition: dict) -> bool:
        """Create the segment definition unless it exists; True when it was created."""
        try:
            self.conn.get_segment_definition(DomainName=definition["DomainName"],
                                             SegmentDefinitionName=definition["SegmentDefinitionName"])
            return False
        except self.conn.exceptions.ResourceNotFoundException:
            self.conn.create_segment_definition(**definition)
            return True


class PersonalizeHook(AwsBaseHook):
    """Amazon Personalize dataset import jobs."""

    def __init__(self, *args, **kwargs) -> None:
        kwargs["client_type"] = "personalize"
        super().__init__(*args, **kwargs)

    def start_import(self, request: dict) -> str:
        return self.conn.create_dataset_import_job(**request)["datasetImportJobArn"]

    def wait_for_import(self, arn: str, *, interval: float, timeout: float) -> dict:
        return wait(self, "personalize_import", {"datasetImportJobArn": arn}, interval=interval, timeout=timeout)


def _upload_reason(job: dict) -> str:
    summary = job.get("ResultsSummary") or {}
    return f"{job.get('StatusReason', 'no reason given')}, {summary.get('FailedRecords', 0)} failed record(s)"


JOBS = {
    "pinpoint_import": JobKind(
        "Pinpoint import job", PinpointHook, lambda hook, ids: hook.conn.get_import_job(**ids)["ImportJobResponse"],
        lambda job: job["JobStatus"], frozenset({"COMPLETED"}), frozenset({"FAILED"}),
        lambda job: f"{'; '.join(job.get('Failures') or ['no reason given'])} "
                    f"({job.get('FailedPieces', 0)} of {job.get('TotalPieces', 0)} piece(s) failed)"),
    "profiles_upload": JobKind(
        "Customer Profiles upload job", CustomerProfilesHook, lambda hook, ids: hook.conn.get_upload_job(**ids),
        lambda job: job["Status"], frozenset({"SUCCEEDED"}), frozenset({"FAILED", "STOPPED", "PARTIALLY_SUCCEEDED"}),
        _upload_reason),
    "personalize_import": JobKind(
        "Personalize dataset import job", PersonalizeHook,
        lambda hook, ids: hook.conn.describe_dataset_import_job(**ids)["datasetImportJob"],
        lambda job: job["status"], frozenset({"ACTIVE"}), frozenset({"CREATE FAILED"}),
        lambda job: job.get("failureReason", "no reason given")),
}


def wait(hook, kind: str, ids: dict, *, interval: float, timeout: float) -> dict:
    """Describe the job until it is done (returns the last answer) or failed (raises with AWS's reason); raises
    TimeoutError after `timeout` seconds."""
    job_kind = JOBS[kind]
    deadline = time.monotonic() + timeout
    while True:
        answer = job_kind.describe(hook, ids)
        if job_kind.check(answer, ids):
            return answer
        if time.monotonic() >= deadline:
            raise TimeoutError(f"{job_kind.what} {_ident(ids)} still {job_kind.status(answer)} after {timeout:.0f} s "
                               "(activation.poll_timeout_minutes)")
        time.sleep(interval)


def _polling() -> dict:
    from crosschannel.config import get_config

    settings = get_config().activation
    return {"interval": settings.poll_interval_seconds, "timeout": settings.poll_timeout_minutes * 60}


class ActivationJobTrigger(BaseTrigger):
    """Waits for an activation job in the triggerer (the deferrable operators' wait): the same JobKind, the
    describe call made in a thread, the answer or the failure handed back to the task."""

    def __init__(self, *, kind: str, ids: dict, interval: float, timeout: float, aws_conn_id: str | None,
                 region_name: str | None) -> None:
        super().__init__()
        self.kind, self.ids, self.interval, self.timeout = kind, ids, interval, timeout
        self.aws_conn_id, self.region_name = aws_conn_id, region_name

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return (f"{type(self).__module__}.{type(self).__qualname__}",
                {"kind": self.kind, "ids": self.ids, "interval": self.interval, "timeout": self.timeout,
                 "aws_conn_id": self.aws_conn_id, "region_name": self.region_name})

    def hook(self):
        return JOBS[self.kind].hook(aws_conn_id=self.aws_conn_id, region_name=self.region_name)

    async def run(self):
        import asyncio
        import json

        job_kind, hook = JOBS[self.kind], self.hook()
        deadline = time.monotonic() + self.timeout
        while True:
            answer = await asyncio.to_thread(job_kind.describe, hook, self.ids)
            try:
                if job_kind.check(answer, self.ids):
                    yield TriggerEvent({"status": "success", "job": json.loads(json.dumps(answer, default=str))})
                    return
            except ActivationJobFailed as exc:
                yield TriggerEvent({"status": "failed", "message": str(exc)})
                return
            if time.monotonic() >= deadline:
                yield TriggerEvent({"status": "timeout", "message": f"{job_kind.what} {_ident(self.ids)} still "
                                    f"{job_kind.status(answer)} after {self.timeout:.0f} s"})
                return
            await asyncio.sleep(self.interval)


class _PlanOperator(AwsBaseOperator):
    """Sends one destination plan (crosschannel.destinations): starts the job, waits for it (in the triggerer
    when deferrable), then records its receipt and the destination's state."""

    template_fields: Sequence[str] = ("plan", "aws_conn_id", "region_name")
    job_kind: str

    def __init__(self, *, plan: dict, deferrable: bool = conf.getboolean("operators", "default_deferrable",
                                                                           fallback=False), **kwargs) -> None:
        super().__init__(**kwargs)
        self.plan = plan
        self.deferrable = deferrable

    def request(self, operation: str) -> dict:
        return next(r["params"] for r in self.plan["requests"] if r["operation"] == operation)

    def start(self) -> dict:
        """Start the job; the ids its describe call takes."""
        raise NotImplementedError

    def finish(self, job: dict, ids: dict) -> dict:
        """Record the finished job's receipt and state; the task's return value."""
        raise NotImplementedError

    def execute(self, context: Any) -> dict:
        ids = self.start()
        if self.deferrable:
            self.defer(trigger=ActivationJobTrigger(kind=self.job_kind, ids=ids, aws_conn_id=self.aws_conn_id,
                                                    region_name=self.region_name, **_polling()),
                       method_name="execute_complete", kwargs={"ids": ids})
        return self.finish(wait(self.hook, self.job_kind, ids, **_polling()), ids)

    def execute_complete(self, context: Any, event: dict, ids: dict) -> dict:
        if event["status"] != "success":
            raise ActivationJobFailed(event["message"])
        return self.finish(event["job"], ids)


class PinpointImportOperator(_PlanOperator):
    """Import an audience's endpoint files into its Pinpoint segment (defined on the first day, then updated)."""

    aws_hook_class = PinpointHook
    job_kind = "pinpoint_import"

    def start(self) -> dict:
        params = self.request("CreateImportJob")
        job = self.hook.start_import(params["ApplicationId"], params["ImportJobRequest"])
        self.log.info("Pinpoint import job %s started for %s", job["Id"], self.plan["name"])
        return {"ApplicationId": params["ApplicationId"], "JobId": job["Id"]}

    def finish(self, job: dict, ids: dict) -> dict:
        from crosschannel.destinations import record_delivery

        if job.get("TotalFailures") or job.get("FailedPieces"):
            raise ActivationJobFailed(f"Pinpoint import job {job['Id']} completed with {job.get('TotalFailures', 0)} "
                                      f"failed endpoint(s) in {job.get('FailedPieces', 0)} piece(s): "
                                      f"{'; '.join(job.get('Failures') or [])}")
        segment_id = job["Definition"].get("SegmentId")
        record_delivery(self.plan, {"status": "COMPLETED", "sent": True, "job_id": job["Id"],
                                    "total_processed": job.get("TotalProcessed")}, segment_id=segment_id)
        return {"job_id": job["Id"], "segment_id": segment_id}


class CustomerProfilesUploadOperator(_PlanOperator):
    """Upload the day's profiles in bulk, then create the audiences' segment definitions that do not exist."""

    aws_hook_class = CustomerProfilesHook
    job_kind = "profiles_upload"

    def start(self) -> dict:
        from crosschannel import storage

        create = self.request("CreateUploadJob")
        job_id = self.hook.upload(create, storage.location(self.plan["files"][0]).read_bytes())
        return {"DomainName": create["DomainName"], "JobId": job_id}

    def finish(self, job: dict, ids: dict) -> dict:
        from crosschannel.destinations import record_delivery

        created = [r["params"]["SegmentDefinitionName"] for r in self.plan["requests"]
                   if r["operation"] == "CreateSegmentDefinition" and self.hook.ensure_segment_definition(r["params"])]
        record_delivery(self.plan, {"status": job["Status"], "sent": True, "job_id": ids["JobId"],
                                    "results": job.get("ResultsSummary"), "segment_definitions_created": created})
        return {"job_id": ids["JobId"], "segment_definitions_created": created}


class PersonalizeImportOperator(_PlanOperator):
    """Import one dataset's CSV into Amazon Personalize (FULL or INCREMENTAL, as planned)."""

    aws_hook_class = PersonalizeHook
    job_kind = "personalize_import"

    def start(self) -> dict:
        arn = self.hook.start_import(self.request("CreateDatasetImportJob"))
        self.log.info("Personalize import job %s started (%s)", arn, self.plan["mode"])
        return {"datasetImportJobArn": arn}

    def finish(self, job: dict, ids: dict) -> dict:
        from crosschannel.destinations import record_delivery

        arn = ids["datasetImportJobArn"]
        record_delivery(self.plan, {"status": job["status"], "sent": True, "job_arn": arn}, job_arn=arn)
        return {"job_arn": arn, "mode": self.plan["mode"]}
