"""
### audience_activation: audiences with stable control groups, sent to Pinpoint, Profiles, Personalize, Segment

Runs when `propensity_scoring` publishes a partition's scores (the asset carries the partition), or by hand.

1. `plan_audiences` / `build_audience`: one SQL job per file of `include/sql/audiences/`, each member with a
   stable hold-out assignment (md5 of audience and customer id against `activation.holdout_percent`).
2. `prepare_activation`: counts treatment and control, commits the day's profile table, and decides whether this
   run sends: only for the newest scored partition, never from a backfill, unless `force_publish` is set.
3. Plan, then send. Every destination's files and requests (validated against the botocore model) and its
   preconditions are written to `<root>/activation/<destination>/dt=.../attempt=.../` (each run's own folder)
   before any load starts; a destination not ready fails the run before any send, or is skipped with
   `activation.skip_unready_destinations`. What an earlier attempt delivered is not sent again unless forced.
   - `plan_pinpoint` / `load_pinpoint`: per audience, endpoint CSVs of opted-in contacts, `CreateImportJob`.
   - `plan_customer_profiles` / `load_customer_profiles`: one upload job, a segment definition per audience.
   - `plan_personalize` / `build_personalize` / `export_personalize` / `load_personalize`: interactions, items
     and users CSVs, minimum-data checks, dataset import jobs (FULL first and after a gap, else INCREMENTAL).
   - `plan_segment` / `publish_segment`: identify calls for the customers whose traits changed.
   Locally nothing leaves the machine (Segment goes to the `segment_default` host when it exists).
4. `publish_activation` emits `crosschannel.activation` with the partition and what was sent.

Connections: `aws_default` (pinpoint:CreateImportJob/GetImportJob, profile:*UploadJob*/*SegmentDefinition,
personalize:CreateDatasetImportJob/DescribeDatasetImportJob, iam:PassRole) and `segment_default` (host: the
Segment API, password: the write key). A backfill rebuilds every file and request and sends nothing.
"""

from __future__ import annotations

from airflow.sdk import Param, chain, chain_linear, dag, task

from crosschannel.core.partition import is_backfill, partition_day, run_flag
from crosschannel.wiring import assets, steps
from crosschannel.wiring.defaults import (
    ASSET_SCHEDULED_START,
    DEFAULT_ARGS,
    emit,
    partitioned_on,
    tags,
    test_run,
)
from crosschannel.wiring.notify import deadline_alert

ACTIVATION = assets.activation()


@dag(
    dag_id="audience_activation",
    schedule=partitioned_on(assets.scores()),
    start_date=ASSET_SCHEDULED_START,
    catchup=False,
    max_active_runs=1,
    default_args=DEFAULT_ARGS,
    deadline=deadline_alert("audience_activation"),
    tags=tags("activation"),
    doc_md=__doc__,
    params={
        "force_publish": Param(False, type="boolean", title="Force publish",
                               description="Send to the destinations even for a past partition or from a backfill."),
    },
)
def audience_activation():
    @task
    def plan_audiences(**context) -> list[dict]:
        """One SQL job per audience file over the day's scores, features and trusted state."""
        from crosschannel.stages.activation import tasks

        return tasks.plan_audiences(partition_day(context))

    @task
    def prepare_activation(**context) -> dict:
        """Count treatment and control, commit the day's profiles, and decide whether this run sends."""
        from crosschannel.stages.activation import tasks

        return tasks.prepare_activation(partition_day(context), force=run_flag(context, "force_publish"),
                                        backfill=is_backfill(context), run=context["run_id"])

    @task
    def plan_pinpoint(prepared: dict, **context) -> list[dict]:
        """Write each audience's Pinpoint endpoint files and its CreateImportJob request."""
        from crosschannel.stages.activation import tasks

        return tasks.plan_pinpoint(partition_day(context), prepared)

    @task
    def plan_customer_profiles(prepared: dict, **context) -> list[dict]:
        """Write the profiles upload file and the upload job and segment definition requests."""
        from crosschannel.stages.activation import tasks

        return tasks.plan_customer_profiles(partition_day(context), prepared, context["run_id"])

    @task
    def plan_personalize(**context) -> list[dict]:
        """Choose FULL or INCREMENTAL per dataset and plan the interactions, items and users SQL jobs."""
        from crosschannel.stages.activation import tasks

        return tasks.plan_personalize(partition_day(context), run_flag(context, "force_publish"))

    @task(trigger_rule="none_failed")  # runs when no dataset needed building (all delivered, or disabled)
    def export_personalize(prepared: dict, **context) -> list[dict]:
        """Write the datasets as Personalize CSVs, check the minimum data, and plan the import jobs."""
        from crosschannel.stages.activation import tasks

        return tasks.export_personalize(partition_day(context), prepared, context["run_id"])

    @task
    def plan_segment(prepared: dict, **context) -> dict:
        """Write and check the identify messages of the customers whose traits changed."""
        from crosschannel.stages.activation import tasks

        return tasks.plan_segment(partition_day(context), prepared)

    @task
    def publish_segment(plan: dict) -> dict:
        """Send the planned identify calls through the Segment library (or record why not)."""
        from crosschannel.stages.activation import tasks

        return tasks.publish_segment(plan)

    @task(outlets=[ACTIVATION], trigger_rule="none_failed")
    def publish_activation(prepared: dict, segment: dict, *, outlet_events, **context) -> dict:
        """Emit the activation asset with the partition, the audience counts and what was sent."""
        from crosschannel.stages.activation import tasks

        outcome = tasks.publish_activation(partition_day(context), prepared, segment)
        return emit(outlet_events, ACTIVATION, context, outcome)

    audience_jobs = plan_audiences()
    prepared = prepare_activation()
    chain(audience_jobs, steps.sql_jobs("build_audience", audience_jobs), prepared)

    # plan, then send: no load starts before every destination's plan (and its preconditions) succeeded
    pinpoint_plans, profiles_plans = plan_pinpoint(prepared), plan_customer_profiles(prepared)
    personalize_jobs, personalize_plans = plan_personalize(), export_personalize(prepared)
    chain(personalize_jobs, steps.sql_jobs("build_personalize", personalize_jobs), personalize_plans)
    segment_plan = plan_segment(prepared)
    segment = publish_segment(segment_plan)
    loads = [steps.load_pinpoint(pinpoint_plans), steps.load_customer_profiles(profiles_plans),
             steps.load_personalize(personalize_plans), segment]
    chain_linear([pinpoint_plans, profiles_plans, personalize_plans, segment_plan], loads)
    chain(loads, publish_activation(prepared, segment))


dag = audience_activation()

if __name__ == "__main__":
    test_run(dag)
