"""What every DAG of the bundle shares: default task arguments, schedules, the partition Param, asset events
and the test runner.

Cheap to import (no pandas, boto3 or database access): DAG files import it at parse time.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from airflow.sdk import Asset, CronPartitionTimetable, Param, PartitionedAssetTimetable
from airflow.timetables.trigger import CronTriggerTimetable

from crosschannel.core.config import get_config
from crosschannel.core.partition import is_backfill, partition_day
from crosschannel.wiring.notify import FailureNotifier

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

# The weekly training run fires on Mondays at 04:00 UTC for the day that just ended (Sunday's partition).
WEEKLY_MONDAY_UTC = CronTriggerTimetable("0 4 * * 1", timezone="UTC", interval=dt.timedelta(days=1))


def partitioned_on(*assets: Asset) -> PartitionedAssetTimetable:
    """A stage's schedule: one run per partition key, once every upstream asset has an event for that key."""
    condition = assets[0]
    for asset in assets[1:]:
        condition = condition & asset
    return PartitionedAssetTimetable(assets=condition)


PARTITION_PARAM = Param(
    None,
    type=["null", "string"],
    pattern=r"^\d{4}-\d{2}-\d{2}$",
    title="Partition",
    description="The day to process (YYYY-MM-DD). Leave empty on scheduled runs: the data interval decides.",
)


def tags(stage: str) -> list[str]:
    """A DAG's tags: the bundle, its stage and the target it was parsed for (filterable in the UI)."""
    return ["crosschannel", stage, f"target:{get_config().target}"]


def emit(outlet_events, asset: Asset, context, extra: dict) -> None:
    """An asset event for the run's partition: its key, and the partition and backfill flag in its extra."""
    day = partition_day(context)
    outlet_events[asset].extra = {**extra, "partition": day.isoformat(), "backfill": is_backfill(context)}
    outlet_events[asset].add_partitions(day.isoformat())


def test_run(dag, **kwargs):
    """`dag.test()` without the DAG's deadline alerts: Airflow 3.3.2's dag.test() schedules an in-memory copy of
    the DAG whose deadline alerts are not the metadata-DB rows DagRun.update_state looks up, and fails. The
    scheduler is unaffected; deadlines are exercised there (tests/test_operations_e2e.py)."""
    dag.deadline = None
    return dag.test(**kwargs)
