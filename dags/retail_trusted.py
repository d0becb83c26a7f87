"""
### retail_trusted: landed DMS and Segment files to the trusted zone, customer 360 and features, behind gates

Runs when `retail_ingest` lands a partition (the `crosschannel.landing.dms` and
`crosschannel.landing.segment` assets; their events carry the partition), or by hand with a Partition
Key. Every transform is one SQL file of `include/sql/trusted/` run as a SQL job: DuckDB in the worker
on the local target, the generic Glue 5.x script `include/glue/run_sql.py` through `GlueJobOperator`
(deferrable) on aws. Results wait as candidates under `<root>/staging/` until their gate passes.

1. `plan_merge` / `merge_table` (mapped over the tables of the DMS mappings): the full load in effect plus
   every CDC file up to the partition, latest change per key by commit time, file and row order, deletes
   removed (`cdc_merge.sql`).
2. Then `plan_identities` flattens the landed Segment day; `map_identities` (`identity_map.sql`) carries the
   identity map forward from the previous day; `plan_events` / `type_events` (`events.sql`) types,
   deduplicates and stitches the day's events to customers (a userId is a customer's external id or id,
   read from the merged customers).
3. `plan_gate_trusted` / `check_trusted` run the Great Expectations suites
   (`include/expectations/trusted_<name>.json`) on every candidate where the data is: GX Core on pandas in the
   worker on local, on Spark in the same Glue job on aws (`include/glue/gx_checks.py`). `gate_trusted` reads
   their results: a failed critical expectation stops the run with every failure, sample values and the keys of
   their rows, and the trusted zone keeps its previous good partitions; warnings are reported. When all pass,
   the candidates become `<root>/trusted/<name>/dt=YYYY-MM-DD/`.
4. `plan_derived` / `build_derived`: `customer_360.sql` and `customer_features.sql` (features as of the day,
   labels whose window is complete) over the published partitions; `plan_gate_derived` / `check_derived` /
   `gate_derived` gate and publish them to `<root>/trusted/customer_360/` and `<root>/features/customer/`.
5. `publish_trusted` emits the `crosschannel.trusted` and `crosschannel.features.customer` assets with the
   partition, rows and gate outcomes.

Gate results: `<root>/reports/dt=YYYY-MM-DD/gates/<suite>.json`; Data Docs: `.../data_docs/index.html` and
`.../data_docs_derived/index.html`. Needs on aws: the `aws_default` connection and `aws.glue.role_arn` with
read access to the landing and staging zones and write access to staging. Backfill: runs are idempotent
(each partition is rewritten whole); run `retail_ingest` for the days first, its asset events trigger this DAG.
"""

from __future__ import annotations

from airflow.sdk import chain, dag, task

from crosschannel.core.partition import partition_day
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

TRUSTED, FEATURES = assets.trusted(), assets.features()


@dag(
    dag_id="retail_trusted",
    schedule=partitioned_on(assets.landing_dms(), assets.landing_segment()),
    start_date=ASSET_SCHEDULED_START,
    catchup=False,
    max_active_runs=1,
    default_args=DEFAULT_ARGS,
    deadline=deadline_alert("retail_trusted"),
    tags=tags("trusted"),
    doc_md=__doc__,
)
def retail_trusted():
    @task
    def plan_merge(**context) -> list[dict]:
        """One merge job per table: the landed files in effect at the partition and the rendered SQL."""
        from crosschannel.stages.trusted import tasks

        return tasks.plan_merge(partition_day(context), context["run_id"])

    @task
    def plan_identities(**context) -> list[dict]:
        """Flatten the landed Segment day and plan the identity map job (the previous day's map carried on)."""
        from crosschannel.stages.trusted import tasks

        return tasks.plan_identities(partition_day(context), context["run_id"])

    @task
    def plan_events(**context) -> list[dict]:
        """Plan the typed events job over the flattened day and its identity map."""
        from crosschannel.stages.trusted import tasks

        return tasks.plan_events(partition_day(context), context["run_id"])

    @task
    def plan_gate_trusted(**context) -> list[dict]:
        """Plan the gate job of the trusted candidates (suites, candidates, the keys their references read)."""
        from crosschannel.stages.trusted import tasks

        return tasks.plan_gate_trusted(partition_day(context), context["run_id"])

    @task
    def gate_trusted(**context) -> dict:
        """Publish every trusted candidate only if its gate job found no critical failure."""
        from crosschannel.stages.trusted import tasks

        return tasks.gate_trusted(partition_day(context), context["run_id"])

    @task
    def plan_derived(**context) -> list[dict]:
        """Plan the customer 360 and customer features jobs over the day's published trusted partitions."""
        from crosschannel.stages.trusted import tasks

        return tasks.plan_derived(partition_day(context), context["run_id"])

    @task
    def plan_gate_derived(**context) -> list[dict]:
        """Plan the gate job of customer 360 and the features."""
        from crosschannel.stages.trusted import tasks

        return tasks.plan_gate_derived(partition_day(context), context["run_id"])

    @task
    def gate_derived(**context) -> dict:
        """Publish customer 360 and the features only if their gate job found no critical failure."""
        from crosschannel.stages.trusted import tasks

        return tasks.gate_derived(partition_day(context), context["run_id"])

    @task(outlets=[TRUSTED, FEATURES])
    def publish_trusted(*, outlet_events, **context) -> dict:
        """Emit the trusted and features assets with the partition, row counts and gate outcomes."""
        from crosschannel.stages.trusted import tasks

        summary = tasks.publish_trusted(partition_day(context))
        emit(outlet_events, FEATURES, context, summary)
        return emit(outlet_events, TRUSTED, context, summary)

    merges = plan_merge()
    identities, events = plan_identities(), plan_events()
    checks = plan_gate_trusted()
    merged = steps.sql_jobs("merge_table", merges)
    chain(merges, merged, checks)
    # the identity map and the events read the merged customers (whose userIds are the retailer's external ids)
    chain(merged, identities, steps.sql_jobs("map_identities", identities), events,
          steps.sql_jobs("type_events", events), checks)
    gate = gate_trusted()
    chain(checks, steps.sql_jobs("check_trusted", checks), gate)
    derived, derived_checks = plan_derived(), plan_gate_derived()
    chain(gate, derived, steps.sql_jobs("build_derived", derived), derived_checks,
          steps.sql_jobs("check_derived", derived_checks), gate_derived(), publish_trusted())


dag = retail_trusted()

if __name__ == "__main__":
    test_run(dag)
