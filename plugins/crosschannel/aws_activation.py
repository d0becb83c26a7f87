"""Hooks and operators for the AWS destinations the Amazon provider does not cover: Amazon Pinpoint import jobs,
Amazon Connect Customer Profiles upload jobs and segment definitions, Amazon Personalize dataset import jobs.

Each operator takes a plan of `crosschannel.destinations` (requests already validated against the botocore
model), starts the job, polls it to completion and records the receipt and the destination's state. A failed
job raises with the reason AWS gives; a job still running at `activation.poll_timeout_minutes` raises too.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any

from airflow.providers.amazon.aws.hooks.base_aws import AwsBaseHook
from airflow.providers.amazon.aws.operators.base_aws import AwsBaseOperator


class ActivationJobFailed(RuntimeError):
    """An import or upload job ended in failure; the message names the job and AWS's reason."""


def poll(describe: Callable[[], dict], *, status: Callable[[dict], str], done: set[str], failed: set[str],
         reason: Callable[[dict], str], what: str, interval: float, timeout: float) -> dict:
    """Call `describe` until the status is in `done` (returns the last answer) or `failed` (raises with the
    reason); raises after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        answer = describe()
        state = status(answer)
        if state in done:
            return answer
        if state in failed:
            raise ActivationJobFailed(f"{what} ended {state}: {reason(answer)}")
        if time.monotonic() >= deadline:
            raise TimeoutError(f"{what} still {state} after {timeout:.0f} s (activation.poll_timeout_minutes)")
        time.sleep(interval)


def _polling() -> dict:
    from crosschannel.config import get_config

    settings = get_config().activation
    return {"interval": settings.poll_interval_seconds, "timeout": settings.poll_timeout_minutes * 60}


class PinpointHook(AwsBaseHook):
    """Amazon Pinpoint import jobs (CreateImportJob / GetImportJob)."""

    def __init__(self, *args, **kwargs) -> None:
        kwargs["client_type"] = "pinpoint"
        super().__init__(*args, **kwargs)

    def start_import(self, application_id: str, request: dict) -> dict:
        return self.conn.create_import_job(ApplicationId=application_id, ImportJobRequest=request)["ImportJobResponse"]

    def wait_for_import(self, application_id: str, job_id: str, *, interval: float, timeout: float) -> dict:
        return poll(
            lambda: self.conn.get_import_job(ApplicationId=application_id, JobId=job_id)["ImportJobResponse"],
            status=lambda job: job["JobStatus"], done={"COMPLETED"}, failed={"FAILED"},
            reason=lambda job: f"{'; '.join(job.get('Failures') or ['no reason given'])} "
                               f"({job.get('FailedPieces', 0)} of {job.get('TotalPieces', 0)} piece(s) failed)",
            what=f"Pinpoint import job {job_id}", interval=interval, timeout=timeout)


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
        def why(job: dict) -> str:
            summary = job.get("ResultsSummary") or {}
            return f"{job.get('StatusReason', 'no reason given')}, {summary.get('FailedRecords', 0)} failed record(s)"

        return poll(lambda: self.conn.get_upload_job(DomainName=domain, JobId=job_id),
                    status=lambda job: job["Status"], done={"SUCCEEDED"},
                    failed={"FAILED", "STOPPED", "PARTIALLY_SUCCEEDED"}, reason=why,
                    what=f"Customer Profiles upload job {job_id}", interval=interval, timeout=timeout)

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
        return poll(lambda: self.conn.describe_dataset_import_job(datasetImportJobArn=arn)["datasetImportJob"],
                    status=lambda job: job["status"], done={"ACTIVE"}, failed={"CREATE FAILED"},
                    reason=lambda job: job.get("failureReason", "no reason given"),
                    what=f"Personalize dataset import job {arn}", interval=interval, timeout=timeout)


class _PlanOperator(AwsBaseOperator):
    """Sends one destination plan (crosschannel.destinations) and records its receipt."""

    template_fields: Sequence[str] = ("plan", "aws_conn_id", "region_name")

    def __init__(self, *, plan: dict, **kwargs) -> None:
        super().__init__(**kwargs)
        self.plan = plan

    def request(self, operation: str) -> dict:
        return next(r["params"] for r in self.plan["requests"] if r["operation"] == operation)


class PinpointImportOperator(_PlanOperator):
    """Import an audience's endpoint files into its Pinpoint segment (defined on the first day, then updated)."""

    aws_hook_class = PinpointHook

    def execute(self, context: Any) -> dict:
        from crosschannel.destinations import record_delivery

        params = self.request("CreateImportJob")
        job = self.hook.start_import(params["ApplicationId"], params["ImportJobRequest"])
        self.log.info("Pinpoint import job %s started for %s", job["Id"], self.plan["name"])
        job = self.hook.wait_for_import(params["ApplicationId"], job["Id"], **_polling())
        segment_id = job["Definition"].get("SegmentId")
        if job.get("TotalFailures") or job.get("FailedPieces"):
            raise ActivationJobFailed(f"Pinpoint import job {job['Id']} completed with {job.get('TotalFailures', 0)} "
                                      f"failed endpoint(s) in {job.get('FailedPieces', 0)} piece(s): "
                                      f"{'; '.join(job.get('Failures') or [])}")
        record_delivery(self.plan, {"status": "COMPLETED", "sent": True, "job_id": job["Id"],
                                    "total_processed": job.get("TotalProcessed")}, segment_id=segment_id)
        return {"job_id": job["Id"], "segment_id": segment_id}


class CustomerProfilesUploadOperator(_PlanOperator):
    """Upload the day's profiles in bulk, then create the audiences' segment definitions that do not exist."""

    aws_hook_class = CustomerProfilesHook

    def execute(self, context: Any) -> dict:
        from crosschannel import storage
        from crosschannel.destinations import record_delivery

        create = self.request("CreateUploadJob")
        job_id = self.hook.upload(create, storage.location(self.plan["files"][0]).read_bytes())
        job = self.hook.wait_for_upload(create["DomainName"], job_id, **_polling())
        created = [r["params"]["SegmentDefinitionName"] for r in self.plan["requests"]
                   if r["operation"] == "CreateSegmentDefinition" and self.hook.ensure_segment_definition(r["params"])]
        record_delivery(self.plan, {"status": job["Status"], "sent": True, "job_id": job_id,
                                    "results": job.get("ResultsSummary"), "segment_definitions_created": created})
        return {"job_id": job_id, "segment_definitions_created": created}


class PersonalizeImportOperator(_PlanOperator):
    """Import one dataset's CSV into Amazon Personalize (FULL or INCREMENTAL, as planned)."""

    aws_hook_class = PersonalizeHook

    def execute(self, context: Any) -> dict:
        from crosschannel.destinations import record_delivery

        arn = self.hook.start_import(self.request("CreateDatasetImportJob"))
        self.log.info("Personalize import job %s started (%s)", arn, self.plan["mode"])
        job = self.hook.wait_for_import(arn, **_polling())
        record_delivery(self.plan, {"status": job["status"], "sent": True, "job_arn": arn}, job_arn=arn)
        return {"job_arn": arn, "mode": self.plan["mode"]}
