"""Hooks for the AWS APIs the Amazon provider does not cover: Amazon Pinpoint import jobs, Amazon Connect
Customer Profiles upload jobs and segment definitions, Amazon Personalize dataset import jobs, solutions, filters,
solution versions (training) and batch inference jobs; and one table of job states (`JobKind`) that serves both
the worker's wait (`wait`) and the triggerer's (crosschannel.wiring.aws.triggers).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from airflow.providers.amazon.aws.hooks.base_aws import AwsBaseHook

from crosschannel.core import storage


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
    failed_when_contains: str | None = None  # also failed: any status containing this (filters' statuses are free)

    def check(self, answer: dict, ids: dict) -> bool:
        """True when the job is done; raises when it failed."""
        state = self.status(answer)
        if state in self.failed or (self.failed_when_contains and self.failed_when_contains in state):
            raise ActivationJobFailed(f"{self.what} {ident(ids)} ended {state}: {self.reason(answer)}")
        return state in self.done


IDENT_KEYS = ("JobId", "datasetImportJobArn", "solutionVersionArn", "batchInferenceJobArn", "filterArn",
              "solutionArn")


def ident(ids: dict) -> str:
    """The job's id or ARN in messages (ids may carry more: the solution version's carry its solution and filter)."""
    return str(next((ids[key] for key in IDENT_KEYS if ids.get(key)), ids))


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

    def upload(self, create: dict, csv_url: str) -> str:
        """CreateUploadJob, PUT the CSV at `csv_url` to the presigned URL of GetUploadJobPath (streamed from the
        lake with its length: the file, up to 1 GB, is never held in the worker's memory), StartUploadJob: the job
        id."""
        import requests

        job_id = self.conn.create_upload_job(**create)["JobId"]
        path = self.conn.get_upload_job_path(DomainName=create["DomainName"], JobId=job_id)
        source = storage.location(csv_url)
        headers = {**upload_headers(path.get("ClientToken")), "Content-Length": str(source.fs.size(source.path))}
        with source.open("rb") as body:  # a presigned S3 PUT needs the length: no chunked transfer
            response = requests.put(path["Url"], data=body, headers=headers, timeout=300)
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
    """Amazon Personalize: dataset import jobs, solutions and their versions (training), filters, batch inference
    jobs. Job names are unique in Personalize and jobs cannot be deleted: `_create_or_resume` resumes a retry's job
    (the task's retry after the job was created) and follows a failed one with `<name>-r<n>`."""

    def __init__(self, *args, **kwargs) -> None:
        kwargs["client_type"] = "personalize"
        super().__init__(*args, **kwargs)

    def _create_or_resume(self, create: Callable[..., str], request: dict, name_key: str,
                          find: Callable[[str], tuple[str, str] | None], failed: frozenset[str], what: str,
                          look_first: bool = False) -> str:
        """`create(**request)`'s ARN; when the planned name is taken, the job of that name (`find(name)`: its ARN and
        status) is resumed while it runs or once it is done, and one that failed is followed by `<name>-r<n>`.
        `look_first`: look for the name before creating (where AWS does not document that it refuses a name twice)."""
        name = request[name_key]
        for attempt in range(1, 100):
            existing = find(request[name_key]) if look_first else None
            if existing is None:
                try:
                    return create(**request)
                except self.conn.exceptions.ResourceAlreadyExistsException:
                    existing = find(request[name_key])
            if existing is not None and existing[1] not in failed:
                self.log.info("%s %s exists (%s): resumed, not created again", what, request[name_key], existing[1])
                return existing[0]
            request = {**request, name_key: f"{name[:58]}-r{attempt}"}
        raise ActivationJobFailed(f"{what} {name}: 99 earlier jobs of that name failed")

    def _pages(self, operation: str, key: str, **params):
        for page in self.conn.get_paginator(operation).paginate(**params):
            yield from page[key]

    def _job_named(self, operation: str, key: str, arn_key: str, name: str, **params) -> tuple[str, str] | None:
        """The ARN and status of the job of that name in a List* answer (jobs are listed with their jobName)."""
        for job in self._pages(operation, key, **params):
            if job["jobName"] == name:
                return job[arn_key], job["status"]
        return None

    # ---- dataset import jobs

    def start_import(self, request: dict) -> str:
        """Create the import job and return its ARN (resumed or renamed on a retry: `_create_or_resume`)."""
        return self._create_or_resume(
            lambda **r: self.conn.create_dataset_import_job(**r)["datasetImportJobArn"], request, "jobName",
            lambda name: self._job_named("list_dataset_import_jobs", "datasetImportJobs", "datasetImportJobArn", name,
                                         datasetArn=request["datasetArn"]),
            frozenset({"CREATE FAILED"}), "Personalize import job")

    def wait_for_import(self, arn: str, *, interval: float, timeout: float) -> dict:
        return wait(self, "personalize_import", {"datasetImportJobArn": arn}, interval=interval, timeout=timeout)

    # ---- solutions and filters: created once, then used by every week's training

    def ensure_solution(self, request: dict, solution_arn: str, *, interval: float, timeout: float) -> dict:
        """Create the solution unless it exists (then `solution_arn`, the planned ARN, is it), and wait until it is
        ACTIVE: the DescribeSolution answer. An existing solution of another recipe raises (training it would train
        the wrong recipe under the planned name)."""
        try:
            solution_arn = self.conn.create_solution(**request)["solutionArn"]
            self.log.info("Personalize solution %s created", solution_arn)
        except self.conn.exceptions.ResourceAlreadyExistsException:
            self.log.info("Personalize solution %s exists: used, not created again", solution_arn)
        solution = wait(self, "personalize_solution", {"solutionArn": solution_arn}, interval=interval,
                        timeout=timeout)
        if request.get("recipeArn") and solution.get("recipeArn", request["recipeArn"]) != request["recipeArn"]:
            raise ActivationJobFailed(f"Personalize solution {solution_arn} exists with recipe {solution['recipeArn']},"
                                      f" not {request['recipeArn']}: delete it or rename the planned solution")
        return solution

    def ensure_filter(self, request: dict, *, interval: float, timeout: float) -> dict:
        """Create the filter unless one of that name exists in the dataset group (looked up with ListFilters), and
        wait until it is ACTIVE: the DescribeFilter answer. A status containing FAILED raises with its reason."""
        try:
            arn = self.conn.create_filter(**request)["filterArn"]
            self.log.info("Personalize filter %s created", arn)
        except self.conn.exceptions.ResourceAlreadyExistsException:
            arn = next((f["filterArn"] for f in self._pages("list_filters", "Filters",
                                                               datasetGroupArn=request["datasetGroupArn"])
                        if f["name"] == request["name"]), None)
            if arn is None:
                raise ActivationJobFailed(f"Personalize filter {request['name']} exists but is not in dataset group "
                                          f"{request['datasetGroupArn']}: filter names are unique per account and "
                                          "region; rename it") from None
        found = wait(self, "personalize_filter", {"filterArn": arn}, interval=interval, timeout=timeout)
        if found.get("filterExpression", request["filterExpression"]) != request["filterExpression"]:
            self.log.warning("Personalize filter %s keeps its expression %r, not the planned %r (filters cannot be "
                             "updated: delete it or rename the planned filter)", arn, found["filterExpression"],
                             request["filterExpression"])
        return found

    # ---- solution versions (training) and their metrics

    def start_solution_version(self, request: dict) -> str:
        """Start training a solution version and return its ARN (resumed or renamed on a retry). Version summaries
        carry no name: the solution's versions are described, newest first, to find the one of that name."""
        return self._create_or_resume(
            lambda **r: self.conn.create_solution_version(**r)["solutionVersionArn"], request, "name",
            lambda name: self._version_named(request["solutionArn"], name),
            frozenset({"CREATE FAILED", "CREATE STOPPING", "CREATE STOPPED"}), "Personalize solution version",
            look_first=True)  # CreateSolutionVersion is not documented to refuse a name twice: a retry looks first

    def _version_named(self, solution_arn: str, name: str) -> tuple[str, str] | None:
        """The version of that name, the solution's versions described newest first (a weekly version a week)."""
        versions = sorted(self._pages("list_solution_versions", "solutionVersions", solutionArn=solution_arn),
                          key=lambda v: str(v.get("creationDateTime", "")), reverse=True)
        for summary in versions:
            version = self.conn.describe_solution_version(
                solutionVersionArn=summary["solutionVersionArn"])["solutionVersion"]
            if version.get("name") == name:
                return version["solutionVersionArn"], version["status"]
        return None

    def solution_metrics(self, solution_version_arn: str) -> dict[str, float]:
        """GetSolutionMetrics of an ACTIVE version, as floats (the keys vary by recipe)."""
        metrics = self.conn.get_solution_metrics(solutionVersionArn=solution_version_arn).get("metrics") or {}
        return {name: float(value) for name, value in metrics.items()}

    # ---- batch inference jobs

    def start_batch_inference(self, request: dict) -> str:
        """Create the batch inference job and return its ARN (resumed or renamed on a retry)."""
        return self._create_or_resume(
            lambda **r: self.conn.create_batch_inference_job(**r)["batchInferenceJobArn"], request, "jobName",
            lambda name: self._job_named("list_batch_inference_jobs", "batchInferenceJobs", "batchInferenceJobArn",
                                         name, solutionVersionArn=request["solutionVersionArn"]),
            frozenset({"CREATE FAILED"}), "Personalize batch inference job")


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
    "personalize_solution": JobKind(
        "Personalize solution", PersonalizeHook,
        lambda hook, ids: hook.conn.describe_solution(solutionArn=ids["solutionArn"])["solution"],
        lambda solution: solution["status"], frozenset({"ACTIVE"}),
        frozenset({"CREATE FAILED", "DELETE PENDING", "DELETE IN_PROGRESS"}),
        lambda solution: "Personalize gives no reason for a solution (DescribeSolution)"),
    "personalize_filter": JobKind(
        "Personalize filter", PersonalizeHook,
        lambda hook, ids: hook.conn.describe_filter(filterArn=ids["filterArn"])["filter"],
        lambda found: found["status"], frozenset({"ACTIVE"}), frozenset(),
        lambda found: found.get("failureReason", "no reason given"), failed_when_contains="FAILED"),
    "personalize_solution_version": JobKind(
        "Personalize solution version", PersonalizeHook,
        lambda hook, ids: hook.conn.describe_solution_version(
            solutionVersionArn=ids["solutionVersionArn"])["solutionVersion"],
        lambda version: version["status"], frozenset({"ACTIVE"}), frozenset({"CREATE FAILED", "CREATE STOPPED"}),
        lambda version: version.get("failureReason", "no reason given")),
    "personalize_batch_inference": JobKind(
        "Personalize batch inference job", PersonalizeHook,
        lambda hook, ids: hook.conn.describe_batch_inference_job(
            batchInferenceJobArn=ids["batchInferenceJobArn"])["batchInferenceJob"],
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
