"""The deadline every DAG's Deadline Alert counts from: the end of the run's partition day (midnight UTC after
it), or the moment the run was created when that is later (a backfill, a re-run or a manual run of a past day).

"The day's audiences by 07:00" is `audience_activation: 420` minutes after the day ends, whichever stage is late.
A reference relative to the queued time (`DAGRUN_QUEUED_AT`) is what Airflow 3.3 recomputes when a run or task
is cleared, and that recomputation fails with HTTP 500 (apache/airflow#70368): with this reference, clearing a
failed run from the UI or the REST API works. The deadline is computed once, when the run is created.

Airflow looks the class up among its plugins' `deadline_references` (plugins/crosschannel_plugin.py registers it)
in the scheduler, the api-server and the dag-processor. Cheap to import.
"""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING, Any

from airflow.sdk.definitions.deadline import BaseDeadlineReference

from crosschannel.core.partition import parse_day, run_partition

if TYPE_CHECKING:
    from sqlalchemy.orm import Session


def partition_day_end(partition_key: str | None, conf: dict | None) -> dt.datetime | None:
    """Midnight UTC after the run's partition day: its partition key, else the `partition` of its conf."""
    value = run_partition(partition_key, conf)
    if not value:
        return None
    day = parse_day(str(value)[:10], "deadline reference")
    return dt.datetime.combine(day + dt.timedelta(days=1), dt.time(0), tzinfo=dt.UTC)


class PartitionDayEnd(BaseDeadlineReference):
    """The end of the run's partition day, or the run's creation when that is later (see the module)."""

    required_kwargs = frozenset({"dag_id", "run_id"})

    def _evaluate_with(self, *, session: Session, dag_id: str, run_id: str, **_: Any) -> dt.datetime | None:
        from airflow.models import DagRun
        from sqlalchemy import select

        run = session.execute(select(DagRun.partition_key, DagRun.conf)
                              .where(DagRun.dag_id == dag_id, DagRun.run_id == run_id)).one_or_none()
        now = dt.datetime.now(dt.UTC)
        if run is None:
            return None
        try:
            end = partition_day_end(run.partition_key, run.conf)
        except ValueError:
            end = None  # the run fails on its own bad partition; the deadline counts from now
        return now if end is None else max(end, now)

