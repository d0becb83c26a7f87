"""The steps that run differently per target, as the DAG files wire them: on aws the Amazon provider's operator
(or this bundle's, for the activation APIs the provider lacks), on local the stand-in of crosschannel.local
run from the very same plan or config. The task id and its place in the graph are the same on both targets.

Each step returns the task's XComArg. Cheap to import: the provider's operators are imported only when the
target is aws, the stand-ins only inside the local tasks' bodies.
"""

from __future__ import annotations

from airflow.sdk import task

from crosschannel.core.config import get_config
from crosschannel.core.partition import partition_day


def _aws() -> dict:
    aws = get_config().aws
    return {"aws_conn_id": aws.conn_id, "region_name": aws.region}


def _on_aws() -> bool:
    return get_config().target == "aws"


# ---- SQL jobs: the generic Glue job on aws, DuckDB in the worker on local

def glue_job_kwargs() -> dict:
    """GlueJobOperator arguments shared by every SQL step: they all run the one generic job script."""
    glue = get_config().aws.glue
    return {
        "job_name": glue.job_name,
        "script_location": glue.script_location,
        "iam_role_arn": glue.role_arn,
        # Command as GetJob returns it (PythonVersion included), so that update_config finds nothing to change on
        # every start and the mapped runs do not race to update the job
        "create_job_kwargs": {"GlueVersion": glue.glue_version, "WorkerType": glue.worker_type,
                              "NumberOfWorkers": glue.number_of_workers,
                              "Command": {"Name": "glueetl", "ScriptLocation": glue.script_location,
                                          "PythonVersion": "3"}},
        # the mapped runs start together: the job must allow them (the provider's default is 1), and a job created
        # by an earlier version of the bundle is brought up to date
        "concurrent_run_limit": glue.max_concurrent_runs,
        "update_config": True,
        **_aws(),
        "deferrable": True,
    }


def sql_jobs(task_id: str, script_args):
    """A mapped task running planned SQL jobs (crosschannel.core.sqljobs) or gate jobs (crosschannel.core.gates,
    `--gates_path`), one per element of `script_args`."""
    if _on_aws():
        from airflow.providers.amazon.aws.operators.glue import GlueJobOperator

        return GlueJobOperator.partial(task_id=task_id, **glue_job_kwargs()).expand(script_args=script_args).output

    @task(task_id=task_id)
    def run_sql_job(script_args: dict) -> int:
        """Run one SQL job on DuckDB (a gate job: GX Core on pandas) and commit its output partition."""
        if "--gates_path" in script_args:
            from crosschannel.core.gates import run_local
        else:
            from crosschannel.core.sqljobs import run_local

        return run_local(script_args)

    return run_sql_job.expand(script_args=script_args)


# ---- DMS: the replication task run to the partition's CDC stop position

def replication_task_has_run() -> bool:
    """Has the replication task run its full load? aws: DMS says so (ReplicationTaskStartDate is absent until
    the task is first started); local: the local task's record. Called in plan_extract's task body."""
    cfg = get_config()
    if not _on_aws():
        from crosschannel.local.dms_task import LocalReplicationTask

        return LocalReplicationTask().has_run()
    from airflow.providers.amazon.aws.hooks.dms import DmsHook

    task = DmsHook(**_aws()).get_task_description(cfg.aws.dms.replication_task_arn)
    if task is None:
        raise RuntimeError(f"DMS replication task {cfg.aws.dms.replication_task_arn} does not exist")
    return "ReplicationTaskStartDate" in task


def replication_stop() -> dict:
    """How the replication task last stopped: {"status": ..., "stop_reason": ...}. aws: DescribeReplicationTasks
    (DmsTaskCompletedSensor succeeds on any `stopped`, whatever stopped it); local: the local task's record. Called in
    land_dms_files' task body."""
    if not _on_aws():
        from crosschannel.local.dms_task import LocalReplicationTask

        state = LocalReplicationTask().state()
        last = state["runs"].get(state.get("last_run", ""), {})
        return {"status": last.get("status"), "stop_reason": last.get("stop_reason")}
    from airflow.providers.amazon.aws.hooks.dms import DmsHook

    task = DmsHook(**_aws()).get_task_description(get_config().aws.dms.replication_task_arn) or {}
    return {"status": task.get("Status"), "stop_reason": task.get("StopReason")}


def start_replication(plan):
    """Start the replication task with the plan's start type and stop position."""
    if _on_aws():
        from airflow.providers.amazon.aws.operators.dms import DmsStartTaskOperator

        return DmsStartTaskOperator(
            task_id="start_replication", replication_task_arn=get_config().aws.dms.replication_task_arn,
            start_replication_task_type=plan["start_type"],
            start_task_kwargs={"CdcStopPosition": plan["cdc_stop_position"]}, **_aws()).output

    @task
    def start_replication(start_type: str, **context) -> dict:
        """Run the local replication task: full load if asked, then CDC to the end of the partition."""
        from crosschannel.local.dms_task import LocalReplicationTask

        return LocalReplicationTask().start(start_type, partition_day(context))

    return start_replication(plan["start_type"])


def await_replication():
    """Wait until the replication task stopped at the partition's stop position."""
    if _on_aws():
        from airflow.providers.amazon.aws.sensors.dms import DmsTaskCompletedSensor

        return DmsTaskCompletedSensor(
            task_id="await_replication", replication_task_arn=get_config().aws.dms.replication_task_arn,
            mode="reschedule", poke_interval=60, timeout=6 * 3600, **_aws()).output

    @task
    def await_replication(**context) -> dict:
        """Check the local replication task stopped at the partition's CDC stop position."""
        from crosschannel.local.dms_task import local_task_status

        return local_task_status(partition_day(context))

    return await_replication()


# ---- SageMaker: tuning and training (weekly), model and batch transform (daily)

def tune_model(configs):
    """One hyperparameter tuning job per CreateHyperParameterTuningJob config."""
    if _on_aws():
        from crosschannel.wiring.aws.tuning import ResumingTuningOperator

        return ResumingTuningOperator.partial(task_id="tune_model", deferrable=True, **_aws()).expand(
            config=configs).output

    @task
    def tune_model(config: dict) -> dict:
        """Run the tuning job's trials locally with include/sagemaker/train.py in the SageMaker layout."""
        from crosschannel.local.sagemaker import run_tuning_job

        return run_tuning_job(config)["BestTrainingJob"]

    return tune_model.expand(config=configs)


def train_model(configs):
    """One training job per CreateTrainingJob config; each returns where its model artifact is
    (crosschannel.stages.models.jobs.artifact_of reads either shape)."""
    if _on_aws():
        from airflow.providers.amazon.aws.operators.sagemaker import SageMakerTrainingOperator

        return SageMakerTrainingOperator.partial(task_id="train_model", action_if_job_exists="timestamp",
                                                 deferrable=True, **_aws()).expand(config=configs).output

    @task
    def train_model(config: dict) -> str:
        """Run the final training job locally; returns the model artifact's location."""
        from crosschannel.local.sagemaker import run_training_job

        return run_training_job(config)["ModelArtifacts"]["S3ModelArtifacts"]

    return train_model.expand(config=configs)


def create_model(plans):
    """CreateModel for each scoring plan's champion."""
    if _on_aws():
        from airflow.providers.amazon.aws.operators.sagemaker import SageMakerModelOperator

        return SageMakerModelOperator.partial(task_id="create_model", **_aws()).expand(
            config=plans.map(lambda plan: plan["model_config"])).output

    @task
    def create_model(plan: dict) -> str:
        """Load the champion's artifact through inference.py's model_fn (the local CreateModel)."""
        from crosschannel.local import sagemaker

        return sagemaker.create_model(plan)

    return create_model.expand(plan=plans)


def score_model(plans):
    """The batch transform of each scoring plan."""
    if _on_aws():
        from airflow.providers.amazon.aws.operators.sagemaker import SageMakerTransformOperator

        return SageMakerTransformOperator.partial(
            task_id="score_model", action_if_job_exists="timestamp", deferrable=True, **_aws(),
        ).expand(config=plans.map(lambda plan: plan["transform_config"])).output

    @task
    def score_model(plan: dict) -> int:
        """Run the batch transform locally with inference.py over the day's input."""
        from crosschannel.local import sagemaker

        return sagemaker.score_model(plan)

    return score_model.expand(plan=plans)


# ---- activation: one mapped load per destination plan

def _aws_plans(task_id: str, operator: str, plans):
    """The aws target's step over plans: the bundle's deferrable operator (crosschannel.wiring.aws), one per plan."""
    from crosschannel.wiring.aws import operators

    return getattr(operators, operator).partial(task_id=task_id, deferrable=True, **_aws()).expand(plan=plans).output


def _load(task_id: str, operator: str, plans):
    if _on_aws():
        return _aws_plans(task_id, operator, plans)

    @task(task_id=task_id)
    def load_local(plan: dict) -> str:
        """The local target's delivery: the receipt says the validated requests stay in the outbox."""
        from crosschannel.local import outbox

        return outbox.load(plan)

    return load_local.expand(plan=plans)


def load_pinpoint(plans):
    """Import each audience's endpoint files into its Pinpoint segment."""
    return _load("load_pinpoint", "PinpointImportOperator", plans)


def load_customer_profiles(plans):
    """Upload the day's profiles to Customer Profiles and define the audiences' segments."""
    return _load("load_customer_profiles", "CustomerProfilesUploadOperator", plans)


def load_personalize(plans):
    """Import each Personalize dataset."""
    return _load("load_personalize", "PersonalizeImportOperator", plans)


# ---- recommendations: Personalize solution versions (weekly) and batch inference (daily)

def train_solution(plans):
    """One solution version per recipe's training plan (crosschannel.stages.recommendations.solutions)."""
    if _on_aws():
        return _aws_plans("train_solution", "PersonalizeSolutionOperator", plans)

    @task
    def train_solution(plan: dict) -> dict:
        """Fit the local recipe for the partition and measure it on the temporal holdout (the local version)."""
        from crosschannel.stages.recommendations import solutions

        return solutions.run_local(plan)

    return train_solution.expand(plan=plans)


def recommend(plans):
    """One batch inference job per plan of crosschannel.stages.activation.recommended."""
    if _on_aws():
        return _aws_plans("recommend", "PersonalizeBatchInferenceOperator", plans)

    @task
    def recommend(plan: dict) -> dict:
        """Run the batch inference job locally: the same input file, Personalize's output format."""
        from crosschannel.stages.recommendations import batch

        return batch.run_plan(plan)

    return recommend.expand(plan=plans)
