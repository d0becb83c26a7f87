"""Operators for the AWS APIs the Amazon provider does not cover: each takes a plan (requests already validated
against the botocore model), starts the job, waits for it (deferred to the triggerer when `deferrable`, as the DAG
runs them) and returns what it did. A failed job raises with the reason AWS gives; a job still running at
`activation.poll_timeout_minutes` raises too (a solution version's training: at max(that, 360) minutes).

- destinations (`_PlanOperator`: Pinpoint, Customer Profiles, Personalize imports) also record the receipt and the
  destination's state in the outbox;
- Amazon Personalize training (`PersonalizeSolutionOperator`) and batch inference
  (`PersonalizeBatchInferenceOperator`) are not destinations: they record nothing, their return value (XCom) is
  what the next task reads.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from airflow.configuration import conf
from airflow.providers.amazon.aws.operators.base_aws import AwsBaseOperator

from crosschannel.core.config import get_config
from crosschannel.wiring.aws.hooks import (
    ActivationJobFailed,
    CustomerProfilesHook,
    PersonalizeHook,
    PinpointHook,
    wait,
)
from crosschannel.wiring.aws.triggers import ActivationJobTrigger

TRAINING_MINUTES = 360  # a solution version's training takes hours: its wait is never shorter than this


def _polling(minimum_minutes: float = 0) -> dict:
    settings = get_config().activation
    return {"interval": settings.poll_interval_seconds,
            "timeout": max(settings.poll_timeout_minutes, minimum_minutes) * 60}


class _JobOperator(AwsBaseOperator):
    """Runs one plan's job: starts it, waits for it (in the triggerer when deferrable), then finishes."""

    template_fields: Sequence[str] = ("plan", "aws_conn_id", "region_name")
    job_kind: str

    def __init__(self, *, plan: dict, deferrable: bool = conf.getboolean("operators", "default_deferrable",
                                                                           fallback=False), **kwargs) -> None:
        super().__init__(**kwargs)
        self.plan = plan
        self.deferrable = deferrable

    def request(self, operation: str) -> dict:
        return next(r["params"] for r in self.plan["requests"] if r["operation"] == operation)

    def has_request(self, operation: str) -> bool:
        return any(r["operation"] == operation for r in self.plan["requests"])

    def polling(self) -> dict:
        """How often and how long the job is described."""
        return _polling()

    def start(self) -> dict:
        """Start the job; the ids its describe call takes (and what `finish` needs after a deferral)."""
        raise NotImplementedError

    def finish(self, job: dict, ids: dict) -> dict:
        """What the finished job did; the task's return value."""
        raise NotImplementedError

    def execute(self, context: Any) -> dict:
        ids = self.start()
        if self.deferrable:
            self.defer(trigger=ActivationJobTrigger(kind=self.job_kind, ids=ids, aws_conn_id=self.aws_conn_id,
                                                    region_name=self.region_name, **self.polling()),
                       method_name="execute_complete")
        return self.finish(wait(self.hook, self.job_kind, ids, **self.polling()), ids)

    def execute_complete(self, context: Any, event: dict, ids: dict | None = None) -> dict:
        """Resume from the trigger's event (`ids`: what tasks deferred before 2026-12 were resumed with)."""
        if event["status"] != "success":
            raise ActivationJobFailed(event["message"])
        return self.finish(event["job"], ids or event["ids"])


class _PlanOperator(_JobOperator):
    """Sends one destination plan (crosschannel.stages.activation): its `finish` records the receipt and the
    destination's state."""

    def record_delivery(self, receipt: dict, **state) -> None:
        """The plan's receipt and the destination's state, as every delivery records them (imported here, at run
        time, so that parsing a DAG loads no stage code)."""
        from crosschannel.stages.activation.outbox import record_delivery

        record_delivery(self.plan, receipt, **state)


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
        job_id = self.hook.upload(create, self.plan["files"][0])
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


class PersonalizeSolutionOperator(_JobOperator):
    """Train one recipe's solution version (a plan of crosschannel.stages.recommendations.solutions): the solution
    and the filter are created unless they exist and waited for until ACTIVE in the worker; the version's training
    is waited for in the triggerer (at least TRAINING_MINUTES), then its metrics are read (GetSolutionMetrics)."""

    aws_hook_class = PersonalizeHook
    job_kind = "personalize_solution_version"

    def polling(self) -> dict:
        return _polling(TRAINING_MINUTES)

    def start(self) -> dict:
        version = self.request("CreateSolutionVersion")
        solution = self.hook.ensure_solution(self.request("CreateSolution"), version["solutionArn"], **_polling())
        filter_arn = None
        if self.has_request("CreateFilter"):
            filter_arn = self.hook.ensure_filter(self.request("CreateFilter"), **_polling())["filterArn"]
        arn = self.hook.start_solution_version({**version, "solutionArn": solution["solutionArn"]})
        self.log.info("Personalize solution version %s training (%s, %s)", arn, self.plan["recipe"],
                      self.plan["partition"])
        return {"solutionVersionArn": arn, "solutionArn": solution["solutionArn"], "filterArn": filter_arn}

    def finish(self, job: dict, ids: dict) -> dict:
        return {"recipe": self.plan["recipe"], "solution_arn": ids["solutionArn"],
                "solution_version_arn": ids["solutionVersionArn"], "status": job["status"],
                "metrics": self.hook.solution_metrics(ids["solutionVersionArn"]), "filter_arn": ids.get("filterArn"),
                "partition": self.plan["partition"]}


class PersonalizeBatchInferenceOperator(_JobOperator):
    """Run one batch inference job of the day's recommendations (a plan of crosschannel.stages.activation.recommended):
    Personalize reads the plan's input and writes `<input>.out` under its output."""

    aws_hook_class = PersonalizeHook
    job_kind = "personalize_batch_inference"

    def start(self) -> dict:
        arn = self.hook.start_batch_inference(self.request("CreateBatchInferenceJob"))
        self.log.info("Personalize batch inference job %s started for %s (%d line(s))", arn, self.plan["name"],
                      self.plan["lines"])
        return {"batchInferenceJobArn": arn}

    def finish(self, job: dict, ids: dict) -> dict:
        return {"job_arn": ids["batchInferenceJobArn"], "status": job["status"], "output": self.plan["output"],
                "name": self.plan["name"]}
