"""The deadline every DAG's Deadline Alert holds a run to: the stakeholders' promise for the run's partition day
(`alerts.deadlines`, e.g. `audience_activation: D+1 07:00` in `alerts.timezone`). A run created up to a day after
its promise (the day's own run, started late because something upstream was late) keeps it: the alert goes out at
once. A run created later than that (a manual run of an older day, a stage of a backfill) gets the same allowance,
counted from its creation. Backfill runs at the head get none: a backfill creates all its runs at once, queued
one after the other, and rebuilding history is no promise to stakeholders. Runs without a partition key get none
either (they fail at once, and on-call hears).

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

from crosschannel.core.config import get_config
from crosschannel.core.partition import parse_day

if TYPE_CHECKING:
    from sqlalchemy.orm import Session


def promised_by(dag_id: str, partition_key: str | None, created: dt.datetime) -> dt.datetime | None:
    """When the DAG's run for `partition_key`, created at `created`, must have finished (UTC; see the module);
    None when the configuration promises nothing for the DAG or the run has no partition key."""
    alerts = get_config().alerts
    promise = alerts.promise(dag_id)
    if promise is None or not partition_key:
        return None
    day = parse_day(partition_key, "deadline reference")
    due = promise.due(day, alerts.zone)
    if created - due <= dt.timedelta(days=1):
        return due
    day_end = dt.datetime.combine(day + dt.timedelta(days=1), dt.time(0), tzinfo=alerts.zone).astimezone(dt.UTC)
    return created + max(due - day_end, dt.timedelta(0))


class PartitionPromise(BaseDeadlineReference):
    """The promise for the run's partition day, or its allowance from the run's creation (see the module)."""

    required_kwargs = frozenset({"dag_id", "run_id"})

    def _evaluate_with(self, *, session: Session, dag_id: str, run_id: str, **_: Any) -> dt.datetime | None:
        from airflow.models import DagRun
        from sqlalchemy import select

        run = session.execute(select(DagRun.partition_key, DagRun.run_type)
                              .where(DagRun.dag_id == dag_id, DagRun.run_id == run_id)).one_or_none()
        if run is None or getattr(run.run_type, "value", run.run_type) == "backfill":
            return None
        try:
            return promised_by(dag_id, run.partition_key, dt.datetime.now(dt.UTC))
        except ValueError:
            return None  # a bad key fails the run's first task, and on-call hears


class PartitionDayEnd(PartitionPromise):
    """The reference's name in DAG versions serialized before 2026-12: resolved the same way until the
    dag-processor has parsed the DAGs again."""
