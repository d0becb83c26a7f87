"""Operators for the AWS destinations the Amazon provider does not cover: each takes a plan of the activation stage
(requests already validated against the botocore model), starts the job, waits for it (deferred to the
triggerer when `deferrable`, as the DAG runs them) and records the receipt and the destination's state. A
failed job raises with the reason AWS gives; a job still running at `activation.poll_timeout_minutes` raises
too.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from airflow.configuration import conf
from airflow.providers.amazon.aws.operators.base_aws import AwsBaseOperator

from crosschannel.core import storage
from crosschannel.core.config import get_config
from crosschannel.wiring.aws.hooks import (
    ActivationJobFailed,
    CustomerProfilesHook,
    PersonalizeHook,
    PinpointHook,
    wait,
)
from crosschannel.wiring.aws.triggers import ActivationJobTrigger


def _polling() -> dict:
    settings = get_config().activation
    return {"interval": settings.poll_interval_seconds, "timeout": settings.poll_timeout_minutes * 60}


class _PlanOperator(AwsBaseOperator):
    """Sends one destination plan (crosschannel.stages.activation): starts the job, waits for it (in the triggerer
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

    def record_delivery(self, receipt: dict, **state) -> None:
        """The plan's receipt and the destination's state, as every delivery records them (imported here, at run
        time, so that parsing a DAG loads no stage code)."""
        from crosschannel.stages.activation.outbox import record_delivery

        record_delivery(self.plan, receipt, **state)

    def execute(self, context: Any) -> dict:
        ids = self.start()
        if self.deferrable:
            self.defer(trigger=ActivationJobTrigger(kind=self.job_kind, ids=ids, aws_conn_id=self.aws_conn_id,
                                                    region_name=self.region_name, **_polling()),
                       method_name="execute_complete")
        return self.finish(wait(self.hook, self.job_kind, ids, **_polling()), ids)

    def execute_complete(self, context: Any, event: dict, ids: dict | None = None) -> dict:
        """Resume from the trigger's event (`ids`: what tasks deferred before 2026-12 were resumed with)."""
        if event["status"] != "success":
            raise ActivationJobFailed(event["message"])
        return self.finish(event["job"], ids or event["ids"])


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
        if job.get("TotalFailures") or job.get("FailedPieces"):
            raise ActivationJobFailed(f"Pinpoint import job {job['Id']} completed with {job.get('TotalFailures', 0)} "
                                      f"failed endpoint(s) in {job.get('FailedPieces', 0)} piece(s): "
                                      f"{'; '.join(job.get('Failures') or [])}")
        segment_id = job["Definition"].get("SegmentId")
        self.record_delivery({"status": "COMPLETED", "sent": True, "job_id": job["Id"],
                              "total_processed": job.get("TotalProcessed")}, segment_id=segment_id)
        return {"job_id": job["Id"], "segment_id": segment_id}


class CustomerProfilesUploadOperator(_PlanOperator):
    """Upload the day's profiles in bulk, then create the audiences' segment definitions that do not exist."""

    aws_hook_class = CustomerProfilesHook
    job_kind = "profiles_upload"

    def start(self) -> dict:
        create = self.request("CreateUploadJob")
        job_id = self.hook.upload(create, storage.location(self.plan["files"][0]).read_bytes())
        return {"DomainName": create["DomainName"], "JobId": job_id}

    def finish(self, job: dict, ids: dict) -> dict:
        created = [r["params"]["SegmentDefinitionName"] for r in self.plan["requests"]
                   if r["operation"] == "CreateSegmentDefinition" and self.hook.ensure_segment_definition(r["params"])]
        self.record_delivery({"status": job["Status"], "sent": True, "job_id": ids["JobId"],
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
        arn = ids["datasetImportJobArn"]
        self.record_delivery({"status": job["status"], "sent": True, "job_arn": arn}, job_arn=arn)
        return {"job_arn": arn, "mode": self.plan["mode"]}

