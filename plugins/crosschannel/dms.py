"""AWS DMS's S3 target layout: the local replication task that writes it, and the check that lands it.

Layout under <root>/landing/dms/ (S3 target settings in include/dms/s3-target-settings.json):

    <schema>/<table>/LOAD00000001.csv ...          full load (hex counter), Op=I on every row
    <schema>/<table>/YYYY/MM/DD/YYYYMMDD-HHMMSSffff.csv   CDC, in folders by commit date
    CSV with a header: Op, <TimestampColumnName>, then the table's columns; NULL is an empty field.

The timestamp column is the transfer time for the full load and the source commit time for CDC. On the
local target `LocalReplicationTask` plays DMS: it snapshots the tables for a full load and reads the
source's change log (`cdc_log`) for CDC, stopping at the partition's end like a task started with
`CdcStopPosition`. On both targets `check_landing` verifies every file the partition depends on and
commits a manifest, the partition's only entry point for readers.
"""

from __future__ import annotations

import csv
import datetime as dt
import functools
import io
import json
import re
from collections import Counter
from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING

import sqlalchemy as sa

from crosschannel import source, storage
from crosschannel.config import get_config

if TYPE_CHECKING:
    from airflow.sdk import ObjectStoragePath

FULL_LOAD_TYPES = ("start-replication", "reload-target")
START_TYPES = (*FULL_LOAD_TYPES, "resume-processing")
LOAD_FILE = re.compile(r"^LOAD[0-9A-F]{8}\.csv$")
CDC_FILE = re.compile(r"^\d{8}-\d{10}\.csv$")
ROWS_PER_READ = 20_000
MAX_ERRORS_SHOWN = 10


class DmsLandingError(ValueError):
    """The landed DMS files are missing, unreadable or hold bad rows; the message names file, line, column."""


@functools.cache
def settings() -> dict:
    return json.loads(get_config().dms.settings_path.read_text())


def mapped_tables() -> list[str]:
    """Tables the DMS table mappings include for the configured schema, in source order."""
    cfg = get_config()
    path = cfg.dms.table_mappings_path
    rules = json.loads(path.read_text()).get("rules", [])
    included = {
        r["object-locator"]["table-name"]
        for r in rules
        if r.get("rule-type") == "selection" and r.get("rule-action") == "include"
        and r["object-locator"].get("schema-name") in (cfg.source.schema_name, "%")
    }
    known = [t.name for t in source.RETAIL_TABLES if t.name in included or "%" in included]
    if not known:
        raise DmsLandingError(f"{path}: no selection rule includes a table of schema {cfg.source.schema_name!r}")
    return known


def landing_root() -> ObjectStoragePath:
    return storage.zone("landing", "dms", get_config().source.schema_name)


def manifest_dir(day: dt.date) -> ObjectStoragePath:
    return storage.partition_dir("landing", "manifests", "dms", day=day.isoformat())


def cdc_stop_position(day: dt.date) -> str:
    """DMS CdcStopPosition for the partition: the first commit at or after the end of the day (UTC).

    Commit time, not server time: the CDC folders are by commit date, so the task must have read every
    commit of the day, however late it reads them, before the partition's manifest is written.
    """
    return "commit_time:" + dt.datetime.combine(day + dt.timedelta(days=1), dt.time(0)).strftime("%Y-%m-%dT%H:%M:%S")


# ------------------------------------------------------------------------------------------ values
def format_value(column: sa.Column, value) -> str:
    """One CSV field as DMS writes it; full-load values (Python types) and CDC row images (JSON) agree."""
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


def header_for(tbl: sa.Table) -> list[str]:
    return ["Op", settings()["TimestampColumnName"], *(c.name for c in tbl.columns)]


# ------------------------------------------------------------------------------------------ local DMS
class LocalReplicationTask:
    """The local stand-in for the DMS replication task: same start types, same S3 layout, same stop."""

    def __init__(self, engine: sa.Engine | None = None):
        cfg = get_config()
        self.engine = engine or source.connect(cfg.source.sqlalchemy_url)
        self.state_path = storage.zone("system", "dms-local-task.json")
        self.settings = settings()
        self.tables = [source.table(name) for name in mapped_tables()]

    def state(self) -> dict:
        return storage.read_json(self.state_path) if self.state_path.exists() else {"full_loads": [], "runs": {}}

    def has_run(self) -> bool:
        """True once the task has run a full load (DMS: the task is no longer 'ready' and never started)."""
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
        written = self._cdc_day(day, full_load["watermark"])
        state["runs"][day.isoformat()] = {
            "start_type": start_type,
            "status": "stopped",
            "stop_reason": "Stop Reason CDC_STOP_POSITION_REACHED",
            "cdc_stop_position": cdc_stop_position(day),
            "full_load_partition": full_load["partition"],
            "cdc_files": written,
        }
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
                clock = source.get_clock(conn) or dt.datetime.combine(day + dt.timedelta(days=1), dt.time(0))
                stamp = clock.strftime(source.TS_FORMAT)
                for tbl in self.tables:
                    staging = landing_root() / f"_staging_{tbl.name}_full_load"
                    if staging.exists():
                        staging.fs.rm(staging.path, recursive=True)
                    staging.mkdir(parents=True, exist_ok=True)
                    staged[tbl.name] = staging
                    query = sa.select(tbl).order_by(*tbl.primary_key.columns)
                    result = conn.execution_options(stream_results=True, yield_per=ROWS_PER_READ).execute(query)
                    rows[tbl.name] = self._write_load_files(staging, tbl, result, stamp, max_bytes)
                conn.rollback()
            for name, staging in staged.items():
                folder = landing_root() / name
                folder.mkdir(parents=True, exist_ok=True)
                for old in folder.glob("LOAD*.csv"):
                    old.unlink()
                for new in sorted(staging.glob("LOAD*.csv")):
                    new.fs.mv(new.path, (folder / new.name).path)
        finally:
            for staging in staged.values():
                if staging.exists():
                    staging.fs.rm(staging.path, recursive=True)
        return {"partition": day.isoformat(), "ts": stamp, "watermark": int(watermark), "rows": rows}

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
                writer.writerow(["I", stamp, *(format_value(c, v) for c, v in zip(columns, record, strict=True))])
                count += 1
        finally:
            if handle is not None:
                handle.close()
        return count

    def _cdc_day(self, day: dt.date, watermark: int) -> dict[str, list[str]]:
        """Write the day's changes per table into its date folder, replacing the folder whole."""
        start = dt.datetime.combine(day, dt.time(0))
        log = source.cdc_log
        query = (
            sa.select(log.c.table_name, log.c.op, log.c.commit_ts, log.c.row_data)
            .where(log.c.commit_ts >= start, log.c.commit_ts < start + dt.timedelta(days=1), log.c.seq > watermark)
            .order_by(log.c.commit_ts, log.c.seq)
        )
        changes: dict[str, list[tuple]] = {t.name: [] for t in self.tables}
        with self.engine.connect() as conn:
            for name, op, commit_ts, row_data in conn.execute(query):
                if name in changes:
                    changes[name].append((op, commit_ts, json.loads(row_data)))
        interval = dt.timedelta(seconds=int(self.settings["CdcMaxBatchInterval"]))
        written: dict[str, list[str]] = {}
        for tbl in self.tables:
            folder = landing_root() / tbl.name / day.strftime("%Y/%m/%d")
            if not changes[tbl.name]:
                if folder.exists():
                    folder.fs.rm(folder.path, recursive=True)
                continue
            batches: dict[int, list[tuple]] = {}
            for change in changes[tbl.name]:
                batches.setdefault((change[1] - start) // interval, []).append(change)
            with storage.committing(folder, marker=False) as staging:
                names = []
                for batch in batches.values():
                    first = batch[0][1]
                    name = first.strftime("%Y%m%d-%H%M%S") + f"{first.microsecond // 100:04d}.csv"
                    lines = (
                        [op, ts.strftime(source.TS_FORMAT), *(format_value(c, image.get(c.name)) for c in tbl.columns)]
                        for op, ts, image in batch
                    )
                    (staging / name).write_bytes(_csv_bytes(header_for(tbl), lines))
                    names.append(name)
            written[tbl.name] = names
        return written


def local_task_status(day: dt.date) -> dict:
    """The local task's record for the partition (what DmsTaskCompletedSensor checks on AWS)."""
    run = LocalReplicationTask().state()["runs"].get(day.isoformat())
    if run is None:
        raise RuntimeError(f"the local replication task has no run for partition {day}: run the extract first")
    if run["status"] != "stopped":
        raise RuntimeError(f"the local replication task for {day} is {run['status']!r}, expected 'stopped'")
    return run


# ------------------------------------------------------------------------------------------ landing check
def _read_rows(path: ObjectStoragePath) -> Iterator[tuple[int, list[str]]]:
    with path.open("r", newline="", encoding="utf-8") as handle:
        yield from enumerate(csv.reader(handle), start=1)


def check_file(path: ObjectStoragePath, tbl: sa.Table, *, full_load: bool, day: dt.date | None) -> tuple[Counter, set]:
    """(Op counts, distinct full-load timestamps) of a DMS file whose every row is well formed.

    Anything else raises DmsLandingError naming the file, the lines and the columns.
    """
    expected = header_for(tbl)
    keys = {i for i, c in enumerate(tbl.columns, start=2) if c.primary_key}
    ops: Counter = Counter()
    stamps: set[str] = set()
    errors: list[str] = []
    try:
        rows = _read_rows(path)
        _, header = next(rows, (0, []))
        if header != expected:
            raise DmsLandingError(f"{path}: header {header} does not match the expected columns {expected}")
        for number, row in rows:
            if len(row) != len(expected):
                errors.append(f"line {number}: {len(row)} fields, expected {len(expected)}")
                continue
            op, stamp = row[0], row[1]
            if op not in ("I", "U", "D") or (full_load and op != "I"):
                errors.append(f"line {number}: column Op: {op!r} is not one of {'I' if full_load else 'I, U, D'}")
            try:
                moment = dt.datetime.strptime(stamp, source.TS_FORMAT)
            except ValueError:
                errors.append(f"line {number}: column {expected[1]}: {stamp!r} is not yyyy-MM-dd HH:mm:ss.SSSSSS")
            else:
                if day is not None and moment.date() != day:
                    errors.append(f"line {number}: column {expected[1]}: commit time {stamp} is not on {day}")
            errors.extend(f"line {number}: column {expected[i]}: primary key is empty" for i in keys if not row[i])
            ops[op] += 1
            if full_load:
                stamps.add(stamp)
            if len(errors) > 100:
                break
    except UnicodeDecodeError as exc:
        raise DmsLandingError(f"{path}: not UTF-8 text ({exc})") from exc
    except csv.Error as exc:
        raise DmsLandingError(f"{path}: not readable as CSV ({exc})") from exc
    if errors:
        shown = "; ".join(errors[:MAX_ERRORS_SHOWN])
        more = f" (and more: {len(errors)} shown of at least as many)" if len(errors) > MAX_ERRORS_SHOWN else ""
        raise DmsLandingError(f"{path} (table {tbl.name}): {shown}{more}")
    return ops, stamps


def _full_loads_path() -> ObjectStoragePath:
    return storage.zone("landing", "manifests", "dms", "full_loads.json")


def full_load_partitions() -> dict[str, dict]:
    """The partitions whose run landed a full load, with its transfer time: {"2026-11-01": {"ts": ...}}."""
    path = _full_loads_path()
    return storage.read_json(path) if path.exists() else {}


def check_landing(day: dt.date, start_type: str, full_load: bool | None = None) -> dict:
    """Verify the partition's DMS files and commit its manifest; returns the manifest.

    `full_load` says the partition is the one a full load landed in (by default: the start type did one);
    a re-run of that partition re-checks the LOAD files, which must still be the ones it landed.
    """
    full_load = start_type in FULL_LOAD_TYPES if full_load is None else full_load
    # What the partition consists of, not how this run got it: a re-run commits the same manifest.
    manifest: dict = {"partition": day.isoformat(), "full_load": full_load, "tables": {}}
    stamps: set[str] = set()
    for name in mapped_tables():
        tbl = source.table(name)
        folder = landing_root() / name
        load_files = sorted(p for p in folder.glob("LOAD*.csv") if LOAD_FILE.match(p.name)) if folder.exists() else []
        cdc_folder = folder / day.strftime("%Y/%m/%d")
        cdc_files = sorted(p for p in cdc_folder.glob("*.csv") if CDC_FILE.match(p.name)) if cdc_folder.exists() else []
        entry: dict = {"load_files": [p.name for p in load_files], "cdc_files": [p.name for p in cdc_files]}
        if full_load:
            loaded: Counter = Counter()
            for path in load_files:
                counts, seen = check_file(path, tbl, full_load=True, day=None)
                loaded += counts
                stamps |= seen
            entry["full_load_rows"] = loaded.get("I", 0)
        ops: Counter = Counter()
        for path in cdc_files:
            ops += check_file(path, tbl, full_load=False, day=day)[0]
        entry["cdc_ops"] = {op: ops.get(op, 0) for op in ("I", "U", "D")}
        entry["rows"] = entry.get("full_load_rows", 0) + sum(ops.values())
        manifest["tables"][name] = entry
    if full_load:
        manifest["full_load_ts"] = _full_load_stamp(day, stamps)
    with storage.committing(manifest_dir(day)) as staging:
        storage.write_json(staging / "manifest.json", manifest)
    if full_load:
        landed = {**full_load_partitions(), day.isoformat(): {"ts": manifest["full_load_ts"]}}
        storage.write_json(_full_loads_path(), landed)
    return manifest


def _full_load_stamp(day: dt.date, stamps: set[str]) -> str:
    """The one transfer time of a full load's LOAD files, checked against what the partition landed before."""
    if not stamps:
        raise DmsLandingError(f"{landing_root()}: a full load was landed for {day} but no LOAD file holds a row")
    if len(stamps) > 1:
        raise DmsLandingError(
            f"{landing_root()}: the LOAD files carry {len(stamps)} transfer times ({min(stamps)} .. {max(stamps)}): "
            "set UseTaskStartTimeForFullLoadTimestamp on the S3 endpoint so one full load has one time"
        )
    (stamp,) = stamps
    landed = full_load_partitions().get(day.isoformat())
    if landed and landed["ts"] != stamp:
        raise DmsLandingError(
            f"the full load landed for {day} (transfer time {landed['ts']}) has been replaced by a later full "
            f"load (transfer time {stamp}): its LOAD files are gone, so {day} cannot be re-checked as a full load"
        )
    return stamp
