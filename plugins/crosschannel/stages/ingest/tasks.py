"""retail_ingest's tasks, one function per task id, the same on both targets. `start_replication` and
`await_replication` are steps of crosschannel.wiring.steps (the provider's DMS operators on aws)."""

from __future__ import annotations

import datetime as dt
import logging

from crosschannel.core import dms, paths, segment_files, storage
from crosschannel.core.config import get_config
from crosschannel.stages.ingest.landing import check_landing, dms_summary, replication_task_has_run

log = logging.getLogger(__name__)


def plan_extract(day: dt.date, force_full_load: bool) -> dict:
    """Choose the DMS start type: full load the first time (or when forced), else resume CDC to the day's end.

    A re-run of the partition that landed the full load resumes (it does not reload) and re-checks that
    full load's LOAD files.
    """
    if force_full_load:
        start_type = "reload-target"
    elif replication_task_has_run():
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


def land_dms_files(day: dt.date, start_type: str, full_load: bool) -> dict:
    """Check every DMS file of the partition, commit its manifest; the rows and operations per table."""
    return dms_summary(check_landing(day, start_type, full_load))


def land_segment_events(day: dt.date) -> dict:
    """Check every message of the day's Segment files and land them unchanged into the partition."""
    cfg = get_config()
    source_dir = segment_files.day_source_path(storage.location(cfg.segment.logs_url), cfg.segment.source_id, day)
    files = sorted(p for p in source_dir.glob("*.gz")) if source_dir.exists() else []
    if not files and not cfg.segment.allow_empty_day:
        raise FileNotFoundError(
            f"no Segment files for source {cfg.segment.source_id!r} on {day} at {source_dir} "
            "(set segment.allow_empty_day to accept a day without events)"
        )
    target = paths.segment_landing(day)
    counts: dict = {}
    with storage.committing(target) as staging:
        for path in files:
            data = path.read_bytes()
            for key, n in segment_files.check_file(str(path), data, day).items():
                counts[key] = counts.get(key, 0) + n
            (staging / path.name).write_bytes(data)
        manifest = {
            "partition": day.isoformat(),
            "source_id": cfg.segment.source_id,
            "source": storage.url_of(source_dir),
            "files": [p.name for p in files],
            "messages": sum(counts.values()),
            "by_type": segment_files.summarize(counts.items()),
        }
        storage.write_json(staging / "manifest.json", manifest)
    log.info("landed %d Segment messages for %s into %s", manifest["messages"], day, target)
    return manifest
