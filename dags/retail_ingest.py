"""
### retail_ingest: the store DB through AWS DMS, and the day's Segment events, into the landing zone

Daily, at midnight UTC for the day that just ended. For the run's partition (one UTC day):

1. `plan_extract` chooses the DMS start type: `start-replication` for the first full load,
   `resume-processing` afterwards, `reload-target` when the run's `force_full_load` Param is set,
   and the CDC stop position at the end of the day.
2. `start_replication` starts the replication task with that stop position; `await_replication` waits for
   it to stop there. aws target: `DmsStartTaskOperator` and `DmsTaskCompletedSensor` on the task in
   `aws.dms.replication_task_arn`. local target: the same steps on a local task that reads the source DB's
   change log and writes exactly DMS's S3 layout (LOAD files, CDC files in date folders, `Op` and
   commit-timestamp columns) under `<root>/landing/dms/`.
3. `land_dms_files` checks every file the partition needs and commits its manifest
   (`<root>/landing/manifests/dms/dt=YYYY-MM-DD/`), emitting the `crosschannel.landing.dms` asset.
4. `land_segment_events` checks each line of the day's Segment S3-destination files and lands them
   into `<root>/landing/segment/<source>/dt=YYYY-MM-DD/`, emitting `crosschannel.landing.segment`.

Needs: the `aws_default` connection on the aws target, with `dms:StartReplicationTask` and
`dms:DescribeReplicationTasks` on the task and read access to the landing bucket. The DMS endpoint must use
`include/dms/s3-target-settings.json` and the task `include/dms/table-mappings.json`.

Backfill: `airflow backfill create --dag-id retail_ingest --from-date A --to-date B`; runs are idempotent
(each rewrites only its day's CDC folder and manifest). Bad files fail the run with the file, line and
column named; the partition's previous manifest stays as it was.
"""

from __future__ import annotations

from airflow.sdk import Param, chain, dag, task

from crosschannel.core.partition import partition_day, run_flag
from crosschannel.wiring import assets, steps
from crosschannel.wiring.defaults import (
    DAILY_PARTITIONS_UTC,
    DEFAULT_ARGS,
    SCHEDULE_START,
    emit,
    tags,
    test_run,
)
from crosschannel.wiring.notify import deadline_alert

LANDING_DMS, LANDING_SEGMENT = assets.landing_dms(), assets.landing_segment()


@dag(
    dag_id="retail_ingest",
    schedule=DAILY_PARTITIONS_UTC,
    start_date=SCHEDULE_START,
    catchup=False,
    max_active_runs=1,
    default_args=DEFAULT_ARGS,
    deadline=deadline_alert("retail_ingest"),
    tags=tags("ingest"),
    doc_md=__doc__,
    params={
        "force_full_load": Param(
            False, type="boolean", title="Force a full load",
            description="Reload every table (DMS reload-target) instead of resuming change capture."),
    },
)
def retail_ingest():
    @task(multiple_outputs=True)
    def plan_extract(**context) -> dict:
        """Decide the DMS start type and CDC stop position for the partition."""
        from crosschannel.stages.ingest import tasks

        return tasks.plan_extract(partition_day(context), run_flag(context, "force_full_load"),
                                  steps.replication_task_has_run())

    @task(outlets=[LANDING_DMS])
    def land_dms_files(start_type: str, full_load: bool, *, outlet_events, **context) -> dict:
        """Check every DMS file of the partition and commit its manifest."""
        from crosschannel.stages.ingest import tasks

        summary = tasks.land_dms_files(partition_day(context), start_type, full_load, steps.replication_stop())
        return emit(outlet_events, LANDING_DMS, context, summary)

    @task(outlets=[LANDING_SEGMENT])
    def land_segment_events(*, outlet_events, **context) -> dict:
        """Check the day's Segment files line by line and land them into the partition."""
        from crosschannel.stages.ingest import tasks

        manifest = tasks.land_segment_events(partition_day(context))
        emit(outlet_events, LANDING_SEGMENT, context, {k: manifest[k] for k in ("messages", "by_type")})
        return manifest

    # plan -> start -> await -> land DMS files; Segment events land independently.
    plan = plan_extract()
    chain(plan, steps.start_replication(plan), steps.await_replication(),
          land_dms_files(plan["start_type"], plan["full_load"]))
    land_segment_events()


dag = retail_ingest()

if __name__ == "__main__":
    test_run(dag)
