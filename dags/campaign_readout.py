"""
### campaign_readout: did it work? Treatment against control for every send, once 7, 14 and 30 days have passed

Runs when `audience_activation` publishes a partition (the asset carries the partition), or by hand.

Every audience keeps a stable hold-out (control members are recorded, never sent). A send is an audience's members of
a day some destination delivered; the run of partition P reads out the sends of P - h for each horizon h in
`readouts.horizons_days` (7, 14 and 30 days by default), over the trusted orders of P.

1. `plan_readouts` / `build_readout_groups`: one SQL job (`include/sql/readouts/campaign_groups.sql`) sums each send's
   treatment and control outcomes in the window (members, converters, orders and revenue and their squares); no
   job when no send is due.
2. `read_out`: per send, conversion rate, orders and revenue per member, absolute and relative uplift with
   `readouts.confidence` intervals (conversion: Newcombe's hybrid score interval and the log risk ratio; per member:
   Welch's t and the delta method), incremental orders and revenue, and an `underpowered` flag when the groups are too
   small to detect `readouts.min_relative_uplift` with `readouts.power`. Committed to
   `<root>/reports/dt=P/readouts/` (readouts.json, readouts.html with the intervals drawn); emits
   `crosschannel.readouts`.
3. `send_digest`: the day's readouts to the stakeholders over `readouts.digest` (smtp, slack, sns: the alert
   channels' connections and `alerts.stakeholder_emails`); off by default.

Connections: `aws_default` (Glue, as for the audiences; SNS Publish for an sns digest), `smtp_default` or
`slack_webhook_default` for the digest when chosen. Backfill: run `airflow backfill create --dag-id campaign_readout`
over the days whose readouts to rebuild (each run rewrites its partition's readouts; a digest is sent again).
"""

from __future__ import annotations

from airflow.sdk import chain, dag, task

from crosschannel.core.partition import partition_day
from crosschannel.wiring import assets, notify, steps
from crosschannel.wiring.defaults import (
    ASSET_SCHEDULED_START,
    DEFAULT_ARGS,
    emit,
    partitioned_on,
    tags,
    test_run,
)

READOUTS = assets.readouts()


@dag(
    dag_id="campaign_readout",
    schedule=partitioned_on(assets.activation()),
    start_date=ASSET_SCHEDULED_START,
    catchup=False,
    max_active_runs=1,
    default_args=DEFAULT_ARGS,
    deadline=notify.deadline_alert("campaign_readout"),
    tags=tags("readouts"),
    doc_md=__doc__,
)
def campaign_readout():
    @task
    def plan_readouts(**context) -> list[dict]:
        """Plan the SQL job summing the treatment and control outcomes of the sends due a readout."""
        from crosschannel.stages.readouts import tasks

        return tasks.plan_readouts(partition_day(context))

    @task(outlets=[READOUTS], trigger_rule="none_failed")  # runs when no send is due (no job to map)
    def read_out(plans: list[dict], *, outlet_events, **context) -> dict:
        """Compare treatment with control per due send, commit the readouts and emit the readouts asset."""
        from crosschannel.stages.readouts import tasks

        outcome = tasks.read_out(partition_day(context), plans)
        return emit(outlet_events, READOUTS, context, outcome)

    @task
    def send_digest(**context) -> dict:
        """Send the day's readouts to the stakeholders on the readouts.digest channels (none by default)."""
        from crosschannel.stages.readouts import tasks

        return tasks.send_digest(partition_day(context), context, notify.notifiers_for)  # the alerts' channels

    plans = plan_readouts()
    chain(plans, steps.sql_jobs("build_readout_groups", plans), read_out(plans), send_digest())


dag = campaign_readout()

if __name__ == "__main__":
    test_run(dag)
