"""What every DAG of the bundle shares: default task arguments, schedules, asset events and the test runner.

Every run works on one day, its Airflow partition key ("2026-11-02"): the schedules set it, a manual run or a
backfill takes it in the one field Airflow offers (the trigger form's Partition Key, the REST API's
`partition_key`), and every stage after the head inherits it through partitioned assets.

Cheap to import (no pandas, boto3 or database access): DAG files import it at parse time.
"""

from __future__ import annotations

import datetime as dt
import logging
from typing import Any

from airflow.sdk import Asset, CronPartitionTimetable, PartitionedAssetTimetable

from crosschannel.core.config import get_config
from crosschannel.core.partition import is_backfill, partition_day
from crosschannel.wiring.notify import FailureNotifier
from crosschannel.wiring.timetables import DayBeforePartitionTimetable

log = logging.getLogger(__name__)
OWNER = "data-platform"

DEFAULT_ARGS: dict[str, Any] = {
    "owner": OWNER,
    "retries": 2,
    "retry_delay": dt.timedelta(minutes=1),
    "retry_exponential_backoff": True,
    "max_retry_delay": dt.timedelta(minutes=30),
    "on_failure_callback": [FailureNotifier()],  # on-call hears of every failed task (alerts.oncall)
}

# The time-scheduled DAGs start on `schedule.start_date`; the asset-scheduled ones run whenever their assets say.
SCHEDULE_START = dt.datetime.fromisoformat(get_config().schedule.start_date).replace(tzinfo=dt.UTC)
ASSET_SCHEDULED_START = dt.datetime(2026, 11, 1, tzinfo=dt.UTC)

# The head of the chain: a run fires at midnight UTC for the day that just ended, its partition key ("2026-11-02").
# `airflow backfill create --dag-id retail_ingest --from-date A --to-date B` makes one run per partition A..B;
# every stage after it runs for the same key through partitioned assets (see `partitioned_on`).
DAILY_PARTITIONS_UTC = CronPartitionTimetable("0 0 * * *", timezone="UTC", run_offset=-1, key_format="%Y-%m-%d")

# The weekly training run fires on Mondays at 04:00 UTC for the day that just ended (Sunday's partition key).
WEEKLY_MONDAY_UTC = DayBeforePartitionTimetable("0 4 * * 1", timezone="UTC", key_format="%Y-%m-%d")


def partitioned_on(*assets: Asset) -> PartitionedAssetTimetable:
    """A stage's schedule: one run per partition key, once every upstream asset has an event for that key."""
    condition = assets[0]
    for asset in assets[1:]:
        condition = condition & asset
    return PartitionedAssetTimetable(assets=condition)


def tags(stage: str) -> list[str]:
    """A DAG's tags: the bundle, its stage and the target it was parsed for (filterable in the UI)."""
    return ["crosschannel", stage, f"target:{get_config().target}"]


def emit(outlet_events, asset: Asset, context, extra: dict) -> dict:
    """An asset event for the run's partition: its key, and in its extra the partition, the backfill flag and the
    day's page in the reports view. Returns the extra (the publishing task's XCom) and logs the page."""
    from crosschannel.core.paths import reports_view

    day = partition_day(context)
    extra = {**extra, "partition": day.isoformat(), "backfill": is_backfill(context), "reports": reports_view(day)}
    outlet_events[asset].extra = extra
    outlet_events[asset].add_partitions(day.isoformat())
    log.info("%s for %s; its reports in the Airflow UI: %s", asset.name, day, extra["reports"])
    return extra


def test_run(dag, partition: str | None = None, **kwargs):
    """`dag.test()` of the run for `partition` (its partition key), without the DAG's deadline alerts. Without a
    partition it is the command line's first argument: `python dags/retail_ingest.py 2026-11-02`.

    dag.test() takes no partition key: the run it creates is given one before any task starts. And Airflow
    3.3.2's dag.test() schedules an in-memory copy of the DAG whose deadline alerts are not the metadata-DB rows
    DagRun.update_state looks up, and fails; the scheduler is unaffected, deadlines are exercised there
    (tests/test_operations_e2e.py)."""
    import sys
    from unittest import mock

    from airflow.models import dagrun

    if partition is None:
        if len(sys.argv) != 2:
            raise SystemExit(f"usage: python {sys.argv[0]} YYYY-MM-DD (the partition key of the run)")
        partition = sys.argv[1]
    create = dagrun.get_or_create_dagrun

    def keyed(**run_kwargs):
        run = create(**run_kwargs)
        run.partition_key = partition
        run_kwargs["session"].commit()
        return run

    dag.deadline = None
    with mock.patch.object(dagrun, "get_or_create_dagrun", keyed):
        return dag.test(**kwargs)
