"""
### retail_trusted: the landed DMS files merged into the current state of every source table

Runs when `retail_ingest` lands a partition (the `crosschannel.landing.dms` asset; its events carry the
partition), or by hand with a `partition` Param. This is the trusted stage's first step; Segment event
typing, customer 360, features and the Great Expectations gates come next.

1. `plan_merge` lists one job per table of the DMS table mappings. On the aws target it renders
   `include/sql/trusted/cdc_merge.sql` for the table and uploads it with the list of landed files.
2. `merge_table` (mapped over the tables) applies the full load in effect plus every CDC file up to the
   partition, latest change per key by commit time, file and row order, deletes removed. local target:
   DuckDB in the worker. aws target: `GlueJobOperator` running the generic Glue 5.x script
   `include/glue/run_sql.py` (uploaded to `aws.glue.script_location`) with the same SQL.
   Results wait as candidates under `<root>/staging/trusted/<table>/dt=YYYY-MM-DD/`.
3. `gate_trusted` runs each table's Great Expectations suite (`include/expectations/trusted_<table>.json`)
   on its candidate. A failed critical expectation stops the run with every failure and sample values,
   and the trusted zone keeps its previous good partitions; warnings are reported. Results are kept in
   `<root>/reports/dt=YYYY-MM-DD/gates/`. When all pass, the candidates become
   `<root>/trusted/<table>/dt=YYYY-MM-DD/`.
4. `plan_features` / `compute_features` / `gate_features`: the customer features of the partition day
   (`include/sql/trusted/customer_features.sql` over the trusted tables; DuckDB locally, the same Glue job
   on aws), gated by `include/expectations/features_customer.json`, then published to
   `<root>/features/customer/dt=YYYY-MM-DD/`.
5. `publish_trusted` emits the `crosschannel.trusted` and `crosschannel.features.customer` assets with
   the partition, rows and gate outcomes.

Needs on aws: the `aws_default` connection, `aws.glue.role_arn` with read access to the landing zone and
write access to the trusted zone. Backfill: runs are idempotent (each partition is rewritten whole); run
`retail_ingest` for the days first, its asset events trigger this DAG.
"""

from __future__ import annotations

import datetime as dt

from airflow.sdk import chain, dag, task

from crosschannel.config import get_config
from crosschannel.pipeline import (
    DEFAULT_ARGS,
    PARTITION_PARAM,
    features_asset,
    landing_dms_asset,
    partition_day,
    trusted_asset,
)

CONFIG = get_config()
TRUSTED = trusted_asset()
FEATURES = features_asset()
# Both Glue steps run the one generic job script; only their script_args differ.
GLUE_JOB = {
    "job_name": CONFIG.aws.glue.job_name,
    "script_location": CONFIG.aws.glue.script_location,
    "iam_role_arn": CONFIG.aws.glue.role_arn,
    "create_job_kwargs": {"GlueVersion": CONFIG.aws.glue.glue_version, "WorkerType": CONFIG.aws.glue.worker_type,
                          "NumberOfWorkers": CONFIG.aws.glue.number_of_workers},
    "aws_conn_id": CONFIG.aws.conn_id,
    "region_name": CONFIG.aws.region,
    "deferrable": True,
}


@dag(
    dag_id="retail_trusted",
    schedule=[landing_dms_asset()],
    start_date=dt.datetime(2026, 11, 1, tzinfo=dt.UTC),
    catchup=False,
    max_active_runs=1,
    default_args=DEFAULT_ARGS,
    tags=["crosschannel", "trusted", f"target:{CONFIG.target}"],
    doc_md=__doc__,
    params={"partition": PARTITION_PARAM},
)
def retail_trusted():
    @task
    def plan_merge(**context) -> list[dict]:
        """List the partition's merge job per table (aws: upload the rendered SQL)."""
        from crosschannel.trusted import plan_merge

        return plan_merge(partition_day(context))

    jobs = plan_merge()

    if CONFIG.target == "aws":
        from airflow.providers.amazon.aws.operators.glue import GlueJobOperator

        merge_table = GlueJobOperator.partial(
            task_id="merge_table",
            **GLUE_JOB,
        ).expand(script_args=jobs.map(lambda job: job["script_args"]))
    else:

        @task
        def merge_table(job: dict) -> int:
            """Merge one table's landed files into its current state on DuckDB and commit the partition."""
            from crosschannel.trusted import merge_and_write

            return merge_and_write(job["table"], dt.date.fromisoformat(job["partition"]))

        merge_table = merge_table.expand(job=jobs)

    @task
    def gate_trusted(**context) -> dict:
        """Run the Great Expectations suites on every merged table; publish them only if none fails critically."""
        from crosschannel.trusted import gate_and_publish

        return gate_and_publish(partition_day(context))

    @task(multiple_outputs=True)
    def plan_features(**context) -> dict:
        """Describe the partition's features job (aws: upload the rendered SQL, list the trusted inputs)."""
        from crosschannel.features import plan_features

        return plan_features(partition_day(context))

    features_job = plan_features()

    if CONFIG.target == "aws":
        compute_features = GlueJobOperator(
            task_id="compute_features",
            script_args=features_job["script_args"],
            **GLUE_JOB,
        )
    else:

        @task
        def compute_features(**context) -> int:
            """Compute the customer features of the partition on DuckDB, as the gate's candidate."""
            from crosschannel.features import compute_features

            return compute_features(partition_day(context))

        compute_features = compute_features()

    @task
    def gate_features(**context) -> dict:
        """Run the features suite on the candidate; publish the features only if it passes."""
        from crosschannel.features import gate_and_publish_features

        return gate_and_publish_features(partition_day(context))

    @task(outlets=[TRUSTED, FEATURES])
    def publish_trusted(*, outlet_events, **context) -> dict:
        """Emit the trusted and features assets with the partition, row counts and gate outcomes."""
        from crosschannel.trusted import summarize

        day = partition_day(context)
        summary = summarize(day)
        for asset in (TRUSTED, FEATURES):
            outlet_events[asset].extra = summary
            outlet_events[asset].add_partitions(day.isoformat())
        return summary

    chain(jobs, merge_table, gate_trusted(), features_job, compute_features, gate_features(), publish_trusted())


dag = retail_trusted()

if __name__ == "__main__":
    dag.test()
