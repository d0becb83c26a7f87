"""The local target's stand-in for the DMS replication task: same start types, same S3 layout, same stop.

It snapshots the source tables for a full load and reads the source's change log (`cdc_log`) for CDC,
stopping at the partition's end like a task started with `CdcStopPosition`, and writes exactly what DMS's
S3 target writes (crosschannel.core.dms). Time is the source's clock (`cdc_clock`, the simulated now; a day's
run at its end at the earliest): a full load holds the rows committed before it (`updated_at`), and a row
committed at or after it, logged already (an imported history, crosschannel.sim.byod), is a change of the day it
was committed, as it was for DMS running then. Its record (<root>/system/dms-local-task.json) plays
DescribeReplicationTasks. Never imported on the aws target, where DMS itself runs.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
from collections.abc import Iterable

import sqlalchemy as sa

from crosschannel.core import paths, source, storage
from crosschannel.core.config import get_config
from crosschannel.core.dms import (
    FULL_LOAD_TYPES,
    START_TYPES,
    STOPPED_AT_STOP_POSITION,
    cdc_stop_position,
    header_for,
    mapped_tables,
    settings,
)
from crosschannel.core.errors import DataError

ROWS_PER_READ = 20_000


class SourceValueError(DataError, ValueError):
    """A source row holds a value its column's type cannot (SQLite stores anything); names table, column, row."""


def format_value(column: sa.Column, value) -> str:
    """One CSV field as DMS writes it; full-load values (Python types) and CDC row images (JSON) agree."""
    try:
        return _format(column, value)
    except (ValueError, TypeError) as exc:
        raise SourceValueError(f"source table {column.table.name}, column {column.name}: {value!r} is not a valid "
                               f"{column.type} ({exc})") from exc


def _row_error(exc: SourceValueError, tbl: sa.Table, row, where: str) -> SourceValueError:
    keys = {c.name: row[c.name] if isinstance(row, dict) else getattr(row, c.name) for c in tbl.primary_key.columns}
    return SourceValueError(f"{exc} in the row with key {keys} ({where}). Repair: correct the value in the source "
                            f"DB (UPDATE {tbl.name} ...), or delete the row; see README, Runbook")


def _format(column: sa.Column, value) -> str:
    if value is None:
        return ""
    kind = column.type
    if isinstance(kind, sa.DateTime):
        moment = value if isinstance(value, dt.datetime) else dt.datetime.fromisoformat(str(value))
        return moment.strftime(source.TS_FORMAT)
    if isinstance(kind, sa.Date):
        return (value if isinstance(value, dt.date) else dt.date.fromisoformat(str(value)[:10])).isoformat()
    if isinstance(kind, sa.Boolean):
        return "true" if value in (True, 1, "1", "t", "true") else "false"
    if isinstance(kind, sa.Numeric) and not isinstance(kind, sa.Integer):
        return f"{float(value):.{kind.scale or 0}f}"
    if isinstance(kind, sa.Integer):
        return str(int(value))
    return str(value)


def _csv_bytes(header: list[str], rows: Iterable[list[str]]) -> bytes:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(rows)
    return buffer.getvalue().encode()


class LocalReplicationTask:
    """The local stand-in for the DMS replication task: same start types, same S3 layout, same stop."""

    def __init__(self, engine: sa.Engine | None = None):
        cfg = get_config()
        self.engine = engine or source.connect(cfg.source.sqlalchemy_url)
        self.state_path = paths.local_dms_task_state()
        self.settings = settings()
        self.tables = [source.table(name) for name in mapped_tables()]

    def state(self) -> dict:
        return storage.read_json(self.state_path) if self.state_path.exists() else {"full_loads": [], "runs": {}}

    def has_run(self) -> bool:
        """True once the task has run a full load (DMS: ReplicationTaskStartDate is set)."""
        return bool(self.state()["full_loads"])

    def start(self, start_type: str, day: dt.date) -> dict:
        """Run the task for the partition: optional full load, then CDC up to the end of the day."""
        if start_type not in START_TYPES:
            raise ValueError(f"start_replication_task_type {start_type!r}: expected one of {', '.join(START_TYPES)}")
        state = self.state()
        if start_type in FULL_LOAD_TYPES:
            loads = [f for f in state["full_loads"] if f["partition"] != day.isoformat()]
            state["full_loads"] = sorted([*loads, self._full_load(day)], key=lambda f: f["partition"])
        full_load = self._full_load_for(state, day)
        self._check_log_not_rebuilt(state)
        written = self._cdc_day(day, full_load["watermark"], dt.datetime.strptime(full_load["ts"], source.TS_FORMAT))
        state["runs"][day.isoformat()] = {
            "start_type": start_type,
            "status": "stopped",
            "stop_reason": STOPPED_AT_STOP_POSITION,  # as DMS reports a stop at a commit-time CdcStopPosition
            "cdc_stop_position": cdc_stop_position(day),
            "full_load_partition": full_load["partition"],
            "cdc_files": written,
        }
        state["last_run"] = day.isoformat()
        storage.write_json(self.state_path, state)
        return state["runs"][day.isoformat()]

    @staticmethod
    def _full_load_for(state: dict, day: dt.date) -> dict:
        """The full load a partition's CDC follows: the latest one taken at or before that day."""
        earlier = [f for f in state["full_loads"] if f["partition"] <= day.isoformat()]
        if not earlier:
            raise RuntimeError(
                f"no full load at or before {day}: start the task with start-replication first "
                "(the DAG's plan step does this when the task has never run)"
            )
        return earlier[-1]

    def _check_log_not_rebuilt(self, state: dict) -> None:
        with self.engine.connect() as conn:
            position = conn.execute(sa.select(sa.func.coalesce(sa.func.max(source.cdc_log.c.seq), 0))).scalar_one()
        latest = state["full_loads"][-1]["watermark"]
        if position < latest:
            raise RuntimeError(
                f"the source DB's change log (position {position}) is behind the last full load's position "
                f"({latest}): the source DB was rebuilt. Run the DAG with force_full_load to reload every table."
            )

    def _snapshot(self, conn: sa.Connection) -> None:
        """Read every table and the log position from one snapshot of the source."""
        if conn.dialect.name == "sqlite":
            conn.exec_driver_sql("BEGIN")
        elif conn.dialect.name == "postgresql":
            conn.exec_driver_sql("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")

    def _full_load(self, day: dt.date) -> dict:
        """Snapshot every table into staged LOAD files; only when all are written do they replace the old."""
        max_bytes = int(self.settings["MaxFileSize"]) * 1024
        rows: dict[str, int] = {}
        staged = {}
        try:
            with self.engine.connect() as conn:
                conn.begin()
                self._snapshot(conn)
                log = source.cdc_log
                watermark = conn.execute(sa.select(sa.func.coalesce(sa.func.max(log.c.seq), 0))).scalar_one()
                clock = self._snapshot_time(conn, day)
                stamp = clock.strftime(source.TS_FORMAT)
                for tbl in self.tables:
                    staging = paths.dms_landing() / f"_staging_{tbl.name}_full_load"
                    storage.remove(staging)
                    staging.mkdir(parents=True, exist_ok=True)
                    staged[tbl.name] = staging
                    query = sa.select(tbl).where(tbl.c.updated_at < clock).order_by(*tbl.primary_key.columns)
                    result = conn.execution_options(stream_results=True, yield_per=ROWS_PER_READ).execute(query)
                    rows[tbl.name] = self._write_load_files(staging, tbl, result, stamp, max_bytes)
                conn.rollback()
            for name, staging in staged.items():
                folder = paths.dms_landing() / name
                folder.mkdir(parents=True, exist_ok=True)
                for old in folder.glob("LOAD*.csv"):
                    old.unlink()
                for new in sorted(staging.glob("LOAD*.csv")):
                    new.fs.mv(new.path, (folder / new.name).path)
        finally:
            for staging in staged.values():
                storage.remove(staging)
        return {"partition": day.isoformat(), "ts": stamp, "watermark": int(watermark), "rows": rows}

    def _snapshot_time(self, conn: sa.Connection, day: dt.date) -> dt.datetime:
        """When the full load of `day` runs: the source clock, and the day's end at the earliest (a run for a day
        starts once it is over). Refused when the source holds updates or deletes committed after it: the tables
        hold only each row's latest image, so what they were then cannot be read (replay needs an insert-only
        history, as import-csv writes)."""
        end = dt.datetime.combine(day + dt.timedelta(days=1), dt.time(0))
        moment = max(source.get_clock(conn) or end, end)
        log = source.cdc_log
        later = conn.execute(sa.select(log.c.table_name, log.c.op, log.c.commit_ts).where(
            log.c.commit_ts >= moment, log.c.op.in_(("U", "D"))).order_by(log.c.commit_ts).limit(1)).first()
        if later is not None:
            raise DataError(f"full load of {day} as of {moment}: the source DB holds changes committed after that "
                            f"(first: {later.op} on {later.table_name} at {later.commit_ts}), and a full load "
                            "can only read each row's latest image: set the source clock to the latest change, or "
                            "replay an insert-only history (import-csv)")
        return moment

    def _write_load_files(self, folder, tbl: sa.Table, result, stamp: str, max_bytes: int) -> int:
        """Stream rows into LOAD files of at most MaxFileSize, numbered with DMS's hex counter."""
        columns = list(tbl.columns)
        count, number, handle = 0, 0, None
        try:
            for record in result:
                if handle is None or handle.tell() >= max_bytes:
                    if handle is not None:
                        handle.close()
                    number += 1
                    handle = (folder / f"LOAD{number:08X}.csv").open("w", newline="", encoding="utf-8")
                    writer = csv.writer(handle, lineterminator="\n")
                    writer.writerow(header_for(tbl))
                try:
                    values = [format_value(c, v) for c, v in zip(columns, record, strict=True)]
                except SourceValueError as exc:
                    raise _row_error(exc, tbl, record, "full load snapshot") from exc
                writer.writerow(["I", stamp, *values])
                count += 1
        finally:
            if handle is not None:
                handle.close()
        return count

    def _cdc_day(self, day: dt.date, watermark: int, loaded_at: dt.datetime) -> dict[str, list[str]]:
        """Write the day's changes per table into its date folder, replacing the folder whole: those logged after
        the full load (`watermark`) and those committed at or after its snapshot time (`loaded_at`)."""
        start = dt.datetime.combine(day, dt.time(0))
        log = source.cdc_log
        query = (
            sa.select(log.c.table_name, log.c.op, log.c.commit_ts, log.c.row_data, log.c.seq)
            .where(log.c.commit_ts >= start, log.c.commit_ts < start + dt.timedelta(days=1),
                   sa.or_(log.c.seq > watermark, log.c.commit_ts >= loaded_at))
            .order_by(log.c.commit_ts, log.c.seq)
        )
        changes: dict[str, list[tuple]] = {t.name: [] for t in self.tables}
        with self.engine.connect() as conn:
            for name, op, commit_ts, row_data, seq in conn.execute(query):
                if name in changes:
                    changes[name].append((op, commit_ts, json.loads(row_data), seq))
        interval = dt.timedelta(seconds=int(self.settings["CdcMaxBatchInterval"]))
        written: dict[str, list[str]] = {}
        for tbl in self.tables:
            folder = paths.dms_landing() / tbl.name / day.strftime("%Y/%m/%d")
            if not changes[tbl.name]:
                storage.remove(folder)
                continue
            batches: dict[int, list[tuple]] = {}
            for change in changes[tbl.name]:
                batches.setdefault((change[1] - start) // interval, []).append(change)
            with storage.committing(folder, marker=False) as staging:
                names = []
                for batch in batches.values():
                    first = batch[0][1]
                    name = first.strftime("%Y%m%d-%H%M%S") + f"{first.microsecond // 100:04d}.csv"
                    lines = [_cdc_line(tbl, *change) for change in batch]
                    (staging / name).write_bytes(_csv_bytes(header_for(tbl), lines))
                    names.append(name)
            written[tbl.name] = names
        return written


def _cdc_line(tbl: sa.Table, op: str, ts: dt.datetime, image: dict, seq: int) -> list[str]:
    try:
        return [op, ts.strftime(source.TS_FORMAT), *(format_value(c, image.get(c.name)) for c in tbl.columns)]
    except SourceValueError as exc:
        error = _row_error(exc, tbl, image, f"change {seq} of cdc_log")
        raise SourceValueError(f"{error}. The captured changes keep the bad value: then delete them from cdc_log "
                               f"too (change {seq}, and the one your UPDATE or DELETE captures)") from exc


def local_task_status(day: dt.date) -> dict:
    """The local task's record for the partition (what DmsTaskCompletedSensor checks on AWS)."""
    run = LocalReplicationTask().state()["runs"].get(day.isoformat())
    if run is None:
        raise RuntimeError(f"the local replication task has no run for partition {day}: run the extract first")
    if run["status"] != "stopped":
        raise RuntimeError(f"the local replication task for {day} is {run['status']!r}, expected 'stopped'")
    return run
