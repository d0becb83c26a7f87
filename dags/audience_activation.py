"""
### audience_activation: audiences with stable control groups, sent to Pinpoint, Profiles, Personalize, Segment

Runs when `propensity_scoring` publishes a partition's scores (the `crosschannel.scores` asset carries the
partition), or by hand with a `partition` Param. Everything is written under `<root>/activation/`.

1. `plan_audiences` / `build_audience`: one SQL job per file of `include/sql/audiences/` (adding a file adds an
   audience), through `include/sql/activation/audience_members.sql`: the scored members, each with a stable
   hold-out assignment (md5 of audience and customer id against `activation.holdout_percent`).
2. `prepare_activation`: counts treatment and control per audience (`reports/dt=.../activation/audiences.json`),
   commits the day's profile table (scores, reasons, treatment audiences, contacts) and decides whether this run
   sends: only for the newest scored partition and never from a backfill, unless `force_publish` is set.
3. Per destination (each can be disabled in `activation.*.enabled`), the files and the requests, validated
   against the botocore service model, are recorded in `<root>/activation/<destination>/dt=.../outbox/`:
   - `plan_pinpoint` / `load_pinpoint`: per audience, endpoint CSVs (EMAIL and SMS for opted-in, valid contacts)
     and `CreateImportJob` defining, then updating, the audience's segment; polled to completion.
   - `plan_customer_profiles` / `load_customer_profiles`: Amazon Connect Customer Profiles (Pinpoint's successor):
     one bulk upload job of every scored profile, and a segment definition per audience.
   - `plan_personalize` / `build_personalize` / `export_personalize` / `load_personalize`: interactions, items and
     users CSVs (schemas in `include/personalize/`), minimum-data checks, dataset import jobs (FULL first and
     after a gap, INCREMENTAL daily) polled to ACTIVE.
   - `publish_segment`: identify calls for the customers whose traits changed since the last publish.
   On the local target nothing leaves the machine (Segment goes to the connection's host when
   `segment_default` exists); on aws the operators of `crosschannel.aws_activation` call the APIs and wait for
   the jobs in the triggerer (deferrable).
4. `publish_activation` emits `crosschannel.activation` with the partition and what was sent.

Connections: `aws_default` (pinpoint:CreateImportJob/GetImportJob, profile:*UploadJob*/*SegmentDefinition,
personalize:CreateDatasetImportJob/DescribeDatasetImportJob, iam:PassRole for the import roles) and
`segment_default` (host: the Segment API, password: the write key). Backfill: a backfill rebuilds every file and
request and sends nothing; trigger with `force_publish` to send a past partition again.
"""

from __future__ import annotations

from airflow.sdk import Param, chain, dag, task

from crosschannel.config import get_config
from crosschannel.notify import deadline_alert
from crosschannel.pipeline import (
    ASSET_SCHEDULED_START,
    DEFAULT_ARGS,
    PARTITION_PARAM,
    activation_asset,
    emit,
    partition_day,
    partitioned_on,
    scores_asset,
    sql_jobs,
    test_run,
)

CONFIG = get_config()
ACTIVATION = activation_asset()


@dag(
    dag_id="audience_activation",
    schedule=partitioned_on(scores_asset()),
    start_date=ASSET_SCHEDULED_START,
    catchup=False,
    max_active_runs=1,
    default_args=DEFAULT_ARGS,
    deadline=deadline_alert("audience_activation"),
    tags=["crosschannel", "activation", f"target:{CONFIG.target}"],
    doc_md=__doc__,
    params={
        "partition": PARTITION_PARAM,
        "force_publish": Param(False, type="boolean", title="Force publish",
                               description="Send to the destinations even for a past partition or from a backfill."),
    },
)
def audience_activation():
    @task
    def plan_audiences(**context) -> list[dict]:
        """One SQL job per audience file over the day's scores, features and trusted state."""
        from crosschannel.audiences import plan

        return plan(partition_day(context))

    @task
    def prepare_activation(**context) -> dict:
        """Count treatment and control, commit the day's profiles, and decide whether this run sends."""
        from crosschannel.activation import decide_for_run, prepare

        day = partition_day(context)
        return prepare(day, decide_for_run(day, context))

    @task
    def plan_pinpoint(prepared: dict, **context) -> list[dict]:
        """Write each audience's Pinpoint endpoint files and its CreateImportJob request."""
        from crosschannel import activation, audiences, destinations

        day = partition_day(context)
        if not CONFIG.activation.pinpoint.enabled:
            return []
        return destinations.plan_pinpoint(day, prepared["decision"], audiences.read(day),
                                          activation.read_profiles(day))

    @task
    def plan_customer_profiles(prepared: dict, **context) -> list[dict]:
        """Write the profiles upload file and the upload job and segment definition requests."""
        from crosschannel import activation, destinations

        day = partition_day(context)
        if not CONFIG.activation.customer_profiles.enabled:
            return []
        return destinations.plan_customer_profiles(day, prepared["decision"], activation.read_profiles(day),
                                                   context["run_id"])

    @task
    def plan_personalize(**context) -> list[dict]:
        """Choose FULL or INCREMENTAL per dataset and plan the interactions, items and users SQL jobs."""
        from crosschannel import destinations

        return destinations.plan_personalize(partition_day(context)) if CONFIG.activation.personalize.enabled else []

    @task
    def export_personalize(prepared: dict, **context) -> list[dict]:
        """Write the datasets as Personalize CSVs, check the minimum data, and plan the import jobs."""
        from crosschannel import destinations

        if not CONFIG.activation.personalize.enabled:
            return []
        return destinations.export_personalize(partition_day(context), prepared["decision"], context["run_id"])

    @task
    def publish_segment(prepared: dict, **context) -> dict:
        """Send identify calls with the changed traits through the Segment library (or record why not)."""
        from crosschannel import activation, segment_traits

        day = partition_day(context)
        if not CONFIG.activation.segment.enabled:
            return {"status": "disabled"}
        built = segment_traits.build(day, activation.read_profiles(day))
        return segment_traits.publish(day, prepared["decision"], built)

    @task(outlets=[ACTIVATION], trigger_rule="none_failed")
    def publish_activation(prepared: dict, segment: dict, *, outlet_events, **context) -> dict:
        """Emit the activation asset with the partition, the audience counts and what was sent."""
        from crosschannel.activation import summarize

        day = partition_day(context)
        outcome = summarize(day, prepared, segment)
        emit(outlet_events, ACTIVATION, context, outcome)
        return outcome

    if CONFIG.target == "aws":
        from crosschannel.aws_activation import (
            CustomerProfilesUploadOperator,
            PersonalizeImportOperator,
            PinpointImportOperator,
        )

        aws = {"aws_conn_id": CONFIG.aws.conn_id, "region_name": CONFIG.aws.region, "deferrable": True}
        load_pinpoint = PinpointImportOperator.partial(task_id="load_pinpoint", **aws).expand
        load_customer_profiles = CustomerProfilesUploadOperator.partial(task_id="load_customer_profiles", **aws).expand
        load_personalize = PersonalizeImportOperator.partial(task_id="load_personalize", **aws).expand
    else:

        @task
        def load_local(plan: dict) -> str:
            """The local target's delivery: the receipt says the validated requests stay in the outbox."""
            from crosschannel.destinations import load_local

            return load_local(plan)

        load_pinpoint = load_local.override(task_id="load_pinpoint").expand
        load_customer_profiles = load_local.override(task_id="load_customer_profiles").expand
        load_personalize = load_local.override(task_id="load_personalize").expand

    audience_jobs = plan_audiences()
    prepared = prepare_activation()
    chain(audience_jobs, sql_jobs("build_audience", audience_jobs), prepared)

    pinpoint = load_pinpoint(plan=plan_pinpoint(prepared))
    profiles = load_customer_profiles(plan=plan_customer_profiles(prepared))
    personalize_jobs = plan_personalize()
    personalize_plans = export_personalize(prepared)
    chain(personalize_jobs, sql_jobs("build_personalize", personalize_jobs), personalize_plans)
    personalize = load_personalize(plan=personalize_plans)

    segment = publish_segment(prepared)
    chain([pinpoint, profiles, personalize, segment], publish_activation(prepared, segment))


dag = audience_activation()

if __name__ == "__main__":
    test_run(dag)
