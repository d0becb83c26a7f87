"""The ingest stage's check of DMS's files: every file a partition needs is read, row by row, before its manifest
is committed (<root>/landing/manifests/dms/dt=D/), the partition's only entry point for readers. The same code
serves both targets; the layout is crosschannel.core.dms.
"""

from __future__ import annotations

import csv
import datetime as dt
from collections import Counter
from collections.abc import Iterator
from typing import TYPE_CHECKING

import sqlalchemy as sa

from crosschannel.core import paths, source, storage
from crosschannel.core.dms import (
    CDC_FILE,
    FULL_LOAD_TYPES,
    LOAD_FILE,
    DmsLandingError,
    full_load_partitions,
    header_for,
    mapped_tables,
)

if TYPE_CHECKING:
    from airflow.sdk import ObjectStoragePath

MAX_ERRORS_SHOWN = 10


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
        folder = paths.dms_landing() / name
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
    with storage.committing(paths.dms_manifest(day)) as staging:
        storage.write_json(staging / "manifest.json", manifest)
    if full_load:
        landed = {**full_load_partitions(), day.isoformat(): {"ts": manifest["full_load_ts"]}}
        storage.write_json(paths.dms_full_loads(), landed)
    return manifest


def _full_load_stamp(day: dt.date, stamps: set[str]) -> str:
    """The one transfer time of a full load's LOAD files, checked against what the partition landed before."""
    if not stamps:
        raise DmsLandingError(f"{paths.dms_landing()}: a full load was landed for {day} but no LOAD file holds a row")
    if len(stamps) > 1:
        raise DmsLandingError(
            f"{paths.dms_landing()}: the LOAD files carry {len(stamps)} transfer times "
            f"({min(stamps)} .. {max(stamps)}): "
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


def dms_summary(manifest: dict) -> dict:
    """The rows and operations per table that a DMS manifest records, for asset events and the demo."""
    return {
        "partition": manifest["partition"],
        "full_load": manifest["full_load"],
        "rows": {name: t["rows"] for name, t in manifest["tables"].items()},
        "cdc_ops": {name: t["cdc_ops"] for name, t in manifest["tables"].items()},
    }
