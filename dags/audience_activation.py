"""
### audience_activation: audiences with stable control groups, recommendations, sent to Profiles, Segment, Personalize

Runs when `propensity_scoring` publishes a partition's scores, or by hand. 1. `build_audience`: one SQL job per
`include/sql/audiences/` file, members with a stable hold-out; `prepare_activation` commits the profiles and decides
whether the run sends (the newest scored partition, never a backfill, unless `force_publish`). 2. `recommend`: batch
inference of the champion solution versions for the audiences' reachable members and the catalogue (Personalize on
aws, the local recommender locally); treatment members with consent get theirs in every payload. 3. Plan, then send:
each destination's files and validated requests go to `<root>/activation/<destination>/dt=.../attempt=.../` before
any load (what an earlier attempt delivered is not sent again unless forced): Pinpoint (off by default), Customer
Profiles, Personalize datasets, Segment. 4. `publish_activation` emits `crosschannel.activation`.
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
    params={"force_publish": Param(False, type="boolean", title="Force publish",
                                   description="Send to the destinations even for a past partition or a backfill.")},
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
    def plan_recommendations(prepared: dict, **context) -> list[dict]:
        """Write the batch inference inputs (reachable members, the catalogue) and their validated requests."""
        from crosschannel.stages.activation import tasks

        return tasks.plan_recommendations(partition_day(context), prepared)

    @task(trigger_rule="all_done")  # also when no job ran, or one failed: the sends go on without its lists
    def commit_recommendations(plans: list[dict], **context) -> dict:
        """Read the jobs' output strictly, drop recent purchases, join the catalogue and commit the day's lists."""
        from crosschannel.stages.activation import tasks

        return tasks.commit_recommendations(partition_day(context), plans)

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

        return tasks.plan_personalize(partition_day(context), run_flag(context, "force_publish"), context["run_id"])

    @task(trigger_rule="none_failed")  # runs when no dataset needed building (all delivered, or disabled)
    def export_personalize(prepared: dict, **context) -> list[dict]:
        """Check the datasets' files (the jobs' findings), copy them into the attempt, and plan the imports."""
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
    def publish_activation(prepared: dict, segment: dict, recommendations: dict, *, outlet_events, **context) -> dict:
        """Emit the activation asset with the partition, the audience counts and what was sent."""
        from crosschannel.stages.activation import tasks

        outcome = tasks.publish_activation(partition_day(context), prepared, segment, recommendations)
        return emit(outlet_events, ACTIVATION, context, outcome)

    audience_jobs = plan_audiences()
    prepared = prepare_activation()
    chain(audience_jobs, steps.sql_jobs("build_audience", audience_jobs), prepared)

    recommendation_plans = plan_recommendations(prepared)
    recommendations = commit_recommendations(recommendation_plans)
    chain(recommendation_plans, steps.recommend(recommendation_plans), recommendations)

    # plan, then send: no load starts before every destination's plan (and its preconditions) succeeded
    pinpoint_plans, profiles_plans = plan_pinpoint(prepared), plan_customer_profiles(prepared)
    personalize_jobs, personalize_plans = plan_personalize(), export_personalize(prepared)
    chain(personalize_jobs, steps.sql_jobs("build_personalize", personalize_jobs), personalize_plans)
    segment_plan = plan_segment(prepared)
    chain(recommendations, [pinpoint_plans, profiles_plans, segment_plan])
    segment = publish_segment(segment_plan)
    loads = [steps.load_pinpoint(pinpoint_plans), steps.load_customer_profiles(profiles_plans),
             steps.load_personalize(personalize_plans), segment]
    chain_linear([pinpoint_plans, profiles_plans, personalize_plans, segment_plan], loads)
    chain(loads, publish_activation(prepared, segment, recommendations))


dag = audience_activation()

if __name__ == "__main__":
    test_run(dag)
