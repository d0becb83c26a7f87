"""Hooks for the AWS destinations the Amazon provider does not cover: Amazon Pinpoint import jobs, Amazon Connect
Customer Profiles upload jobs and segment definitions, Amazon Personalize dataset import jobs; and one table
of job states (`JobKind`) that serves both the worker's wait (`wait`) and the triggerer's
(crosschannel.wiring.aws.triggers).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from airflow.providers.amazon.aws.hooks.base_aws import AwsBaseHook


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
            raise ActivationJobFailed(f"{self.what} {ident(ids)} ended {state}: {self.reason(answer)}")
        return state in self.done


def ident(ids: dict) -> str:
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
        """Create the import job and return its ARN. Job names are unique in Personalize: when the planned name is
        taken (a retry of the task after the job was created), the job of that name is resumed while it runs or
        once it is ACTIVE, and a job that failed is followed by one named `<name>-r<n>`."""
        name = request["jobName"]
        for attempt in range(1, 100):
            try:
                return self.conn.create_dataset_import_job(**request)["datasetImportJobArn"]
            except self.conn.exceptions.ResourceAlreadyExistsException:
                existing = self._job_named(request["datasetArn"], request["jobName"])
                if existing is not None and existing["status"] != "CREATE FAILED":
                    return existing["datasetImportJobArn"]
                request = {**request, "jobName": f"{name[:58]}-r{attempt}"}
        raise ActivationJobFailed(f"Personalize import job {name}: 99 earlier jobs of that name failed")

    def _job_named(self, dataset_arn: str, name: str) -> dict | None:
        for page in self.conn.get_paginator("list_dataset_import_jobs").paginate(datasetArn=dataset_arn):
            for job in page["datasetImportJobs"]:
                if job["jobName"] == name:
                    return job
        return None

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
            raise TimeoutError(f"{job_kind.what} {ident(ids)} still {job_kind.status(answer)} after {timeout:.0f} s "
                               "(activation.poll_timeout_minutes)")
        time.sleep(interval)
