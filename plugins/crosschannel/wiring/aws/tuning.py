"""The provider's SageMakerTuningOperator, resuming the job an earlier try created. CreateHyperParameterTuningJob
refuses a name in use (ResourceInUse), so the retry of a task whose worker was lost after the create failed although
its job ran on. Imported on the aws target only (crosschannel.wiring.steps)."""

from __future__ import annotations

from typing import Any

from airflow.providers.amazon.aws.operators.sagemaker import SageMakerTuningOperator
from airflow.providers.amazon.aws.triggers.sagemaker import SageMakerTrigger
from airflow.providers.amazon.aws.utils import trim_none_values
from botocore.exceptions import ClientError

from crosschannel.wiring.aws.hooks import ActivationJobFailed


class ResumingTuningOperator(SageMakerTuningOperator):
    """A tuning job that exists already is not created again: in progress it is waited for (in the triggerer),
    completed it is the result; failed or stopped, the task fails naming it (next week's run plans new names)."""

    def execute(self, context: Any) -> dict:
        name = self.config["HyperParameterTuningJobName"]
        try:
            job = self.hook.describe_tuning_job(name)
        except ClientError as exc:
            if exc.response["Error"]["Code"] not in ("ResourceNotFound", "ValidationException"):
                raise
            return super().execute(context)
        status = job["HyperParameterTuningJobStatus"]
        self.log.info("SageMaker tuning job %s exists (%s): resumed, not created again", name, status)
        if status == "Completed":
            return {"Tuning": trim_none_values(job)}
        if status in ("Failed", "Stopped", "Stopping"):
            raise ActivationJobFailed(f"SageMaker tuning job {name} already ended {status}: "
                                      f"{job.get('FailureReason', 'no reason given')}")
        self.defer(trigger=SageMakerTrigger(job_name=name, job_type="tuning", waiter_delay=self.check_interval,
                                            aws_conn_id=self.aws_conn_id, region_name=self.region_name),
                   method_name="execute_complete")
        return {}
