"""The weekly training schedule as a partitioned timetable: runs on Mondays at 04:00 UTC, each keyed by the day
that just ended (Sunday's partition key, "2026-11-29"), so the run header, the grid and the asset events show the
day it trained on, and a manual run or a backfill takes the same one field, the Partition Key.

Airflow's CronPartitionTimetable keys a run by its cron tick (or by whole cron intervals before it): a Monday.
This subclass keys it by the day before the tick. A custom timetable must be registered by a plugin
(plugins/crosschannel_plugin.py) in every component that deserializes DAGs. Cheap to import.
"""

from __future__ import annotations

import datetime as dt

from airflow.timetables.trigger import CronPartitionTimetable


class DayBeforePartitionTimetable(CronPartitionTimetable):
    """A cron schedule whose runs are keyed by the day before their tick, in the timetable's time zone."""

    def _format_key(self, partition_date) -> str:
        return (partition_date.in_timezone(self._timezone) - dt.timedelta(days=1)).strftime(self._key_format)
