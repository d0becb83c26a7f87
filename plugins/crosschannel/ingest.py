"""The ingest stage's steps, shared by both targets; the DAG wires them (dags/retail_ingest.py)."""

from __future__ import annotations

import datetime as dt
import logging

from crosschannel import dms, segment_events, storage
from crosschannel.config import get_config

log = logging.getLogger(__name__)


def replication_task_has_run() -> bool:
    """Has the replication task run its full load? aws: DMS says so; local: the local task's record."""
    cfg = get_config()
    if cfg.target == "aws":
        from airflow.providers.amazon.aws.hooks.dms import DmsHook

        hook = DmsHook(aws_conn_id=cfg.aws.conn_id, region_name=cfg.aws.region)
        task = hook.get_task_description(cfg.aws.dms.replication_task_arn)
        if task is None:
            raise RuntimeError(f"DMS replication task {cfg.aws.dms.replication_task_arn} does not exist")
        return "ReplicationTaskStartDate" in task  # absent until the task is first started
    return dms.LocalReplicationTask().has_run()


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


def land_segment_events(day: dt.date) -> dict:
    """Check every message of the day's Segment files and land them unchanged into the partition."""
    cfg = get_config()
    source_dir = segment_events.day_source_path(storage.location(cfg.segment.logs_url), cfg.segment.source_id, day)
    files = sorted(p for p in source_dir.glob("*.gz")) if source_dir.exists() else []
    if not files and not cfg.segment.allow_empty_day:
        raise FileNotFoundError(
            f"no Segment files for source {cfg.segment.source_id!r} on {day} at {source_dir} "
            "(set segment.allow_empty_day to accept a day without events)"
        )
    target = storage.partition_dir("landing", "segment", cfg.segment.source_id, day=day.isoformat())
    counts: dict = {}
    with storage.committing(target) as staging:
        for path in files:
            data = path.read_bytes()
            for key, n in segment_events.check_file(str(path), data, day).items():
                counts[key] = counts.get(key, 0) + n
            (staging / path.name).write_bytes(data)
        manifest = {
            "partition": day.isoformat(),
            "source_id": cfg.segment.source_id,
            "source": storage.url_of(source_dir),
            "files": [p.name for p in files],
            "messages": sum(counts.values()),
            "by_type": segment_events.summarize(counts.items()),
        }
        storage.write_json(staging / "manifest.json", manifest)
    log.info("landed %d Segment messages for %s into %s", manifest["messages"], day, target)
    return manifest


def dms_summary(manifest: dict) -> dict:
    """The rows and operations per table that a DMS manifest records, for asset events and the demo."""
    return {
        "partition": manifest["partition"],
        "full_load": manifest["full_load"],
        "rows": {name: t["rows"] for name, t in manifest["tables"].items()},
        "cdc_ops": {name: t["cdc_ops"] for name, t in manifest["tables"].items()},
    }
