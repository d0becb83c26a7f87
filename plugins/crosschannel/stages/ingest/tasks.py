"""retail_ingest's tasks, one function per task id, the same on both targets. `start_replication` and
`await_replication` are steps of crosschannel.wiring.steps (the provider's DMS operators on aws)."""

from __future__ import annotations

import datetime as dt
import logging

from crosschannel.core import dms
from crosschannel.stages.ingest import segment
from crosschannel.stages.ingest.landing import check_landing, dms_summary

log = logging.getLogger(__name__)


def plan_extract(day: dt.date, force_full_load: bool, task_has_run: bool) -> dict:
    """Choose the DMS start type: full load the first time (`task_has_run` false) or when forced, else resume
    CDC to the day's end.

    A re-run of the partition that landed the full load resumes (it does not reload) and re-checks that
    full load's LOAD files.
    """
    if force_full_load:
        start_type = "reload-target"
    elif task_has_run:
        start_type = "resume-processing"
    else:
        start_type = "start-replication"
    plan = {
        "partition": day.isoformat(),
        "start_type": start_type,
        "full_load": start_type in dms.FULL_LOAD_TYPES or day.isoformat() in dms.full_load_partitions(),
        "cdc_stop_position": dms.cdc_stop_position(day),
    }
    log.info("DMS plan for %s: %s", day, plan)
    return plan


def land_dms_files(day: dt.date, start_type: str, full_load: bool, stop: dict) -> dict:
    """Check that the replication task stopped at the partition's stop position (not stopped by hand, by low
    memory or an error: the day's changes would be partial), then every DMS file of the partition; commit its
    manifest; the rows and operations per table."""
    if stop.get("stop_reason") != dms.STOPPED_AT_STOP_POSITION:
        raise dms.DmsLandingError(
            f"the replication task is {stop.get('status')!r} with {stop.get('stop_reason')!r}, not "
            f"{dms.STOPPED_AT_STOP_POSITION!r}: it did not run to {day}'s CDC stop position, so the day's changes may "
            "be partial. Find why it stopped (DMS console, task logs), then clear start_replication to run it again")
    return dms_summary(check_landing(day, start_type, full_load))


def land_segment_events(day: dt.date) -> dict:
    """Check every message of the day's Segment files and land them unchanged into the partition."""
    return segment.land_day(day)
