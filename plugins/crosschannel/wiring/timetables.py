"""The weekly training schedule as a partitioned timetable: runs on Mondays at 04:00 UTC, each keyed by the day
that just ended (Sunday's partition key, "2026-11-29"), so the run header, the grid and the asset events show the
day it trained on, and a manual run or a backfill takes the same one field, the Partition Key.

Airflow's CronPartitionTimetable keys a run by its cron tick (or by whole cron intervals before it): a Monday.
This subclass keys it by the day before the tick, both ways: a tick's key is the day before it, a backfill of the
days A..B runs the ticks whose keys lie in A..B, and a key decodes to its tick. A custom timetable must be
registered by a plugin (plugins/crosschannel_plugin.py) in every component that deserializes DAGs. Cheap to import.
"""

from __future__ import annotations

import datetime as dt

from airflow.timetables.trigger import CronPartitionTimetable

ONE_DAY = dt.timedelta(days=1)


class DayBeforePartitionTimetable(CronPartitionTimetable):
    """A cron schedule whose runs are keyed by the day before their tick, in the timetable's time zone."""

    def _format_key(self, partition_date) -> str:
        return (partition_date.in_timezone(self._timezone) - ONE_DAY).strftime(self._key_format)

    def _decode_partition_date(self, partition_key: str) -> dt.datetime:
        """The tick of the key: the first tick on the day after it (what a scheduled run of that key carries)."""
        return self._align_to_next(super()._decode_partition_date(partition_key) + ONE_DAY)

    def iter_partition_dagrun_infos(self, *, earliest: dt.datetime, latest: dt.datetime):
        """A backfill of the days earliest..latest: the ticks on the days after them."""
        return super().iter_partition_dagrun_infos(earliest=earliest + ONE_DAY,
                                                   latest=latest + 2 * ONE_DAY - dt.timedelta(microseconds=1))
