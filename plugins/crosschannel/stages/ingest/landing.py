"""The ingest stage's check of DMS's files: every file a partition needs is read, row by row, before its manifest
is committed (<root>/landing/manifests/dms/dt=D/), the partition's only entry point for readers. The same code
serves both targets; the layout is crosschannel.core.dms.

A full load's LOAD files are copied, then checked, into <root>/landing/full_loads/dt=D/ (committed whole): DMS
writes a later reload over the same file names, so readers of the days before that reload read the copy, which
never changes. A re-run of the full-load day re-checks its copy; a reload that crashed half way through leaves the
previous copy, and every day that follows it, as they were.
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
    cdc_order,
    full_load_partitions,
    header_for,
    mapped_tables,
)

if TYPE_CHECKING:
    from airflow.sdk import ObjectStoragePath

MAX_ERRORS_SHOWN = 10
_DAY = dt.timedelta(days=1)


def _read_rows(path: ObjectStoragePath) -> Iterator[tuple[int, list[str]]]:
    with path.open("r", newline="", encoding="utf-8") as handle:
        yield from enumerate(csv.reader(handle), start=1)


def check_file(path: ObjectStoragePath, tbl: sa.Table, *, full_load: bool, days: tuple[dt.date, ...] = (),
               count_day: dt.date | None = None, since: dt.datetime | None = None) -> tuple[Counter, set]:
    """(Op counts, distinct full-load timestamps) of a DMS file whose every row is well formed: for a CDC file,
    committed on one of `days` (the ops counted are those of `count_day`, committed at or after `since`).

    Anything else raises DmsLandingError naming the file, the lines and the columns. A file is read into Arrow a
    block at a time and checked column by column; only a file that does not pass is read again row by row, to name its
    problems (the columnar check is the stricter: what it passes, the row check passes with the same counts).
    """
    checked = _check_columns(path, tbl, full_load=full_load, days=days, count_day=count_day, since=since)
    if checked is not None:
        return checked
    return _check_rows(path, tbl, full_load=full_load, days=days, count_day=count_day, since=since)


_STAMP = r"^\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}\.\d{6}$"  # source.TS_FORMAT, written as DMS writes it


def _check_columns(path: ObjectStoragePath, tbl: sa.Table, *, full_load: bool, days: tuple[dt.date, ...],
                   count_day: dt.date | None, since: dt.datetime | None) -> tuple[Counter, set] | None:
    """check_file's result for a file that passes every check, read as Arrow columns a block at a time (memory
    bounded whatever MaxFileSize); None for any other file."""
    import pyarrow as pa
    import pyarrow.csv as pacsv

    ops: Counter = Counter()
    stamps: set[str] = set()
    try:
        with path.open("rb") as handle:
            if handle.read(3) == b"\xef\xbb\xbf":  # a byte-order mark: the row check names the header it breaks
                return None
            handle.seek(0)
            reader = pacsv.open_csv(handle, parse_options=pacsv.ParseOptions(
                newlines_in_values=True, ignore_empty_lines=False), convert_options=pacsv.ConvertOptions(
                column_types=dict.fromkeys(header_for(tbl), pa.string()), strings_can_be_null=False,
                quoted_strings_can_be_null=False))
            if reader.schema.names != header_for(tbl):
                return None
            for batch in reader:
                checked = _check_batch(batch, tbl, full_load=full_load, days=days, count_day=count_day, since=since)
                if checked is None:
                    return None
                ops += checked[0]
                stamps |= checked[1]
    except (pa.ArrowInvalid, OSError):
        return None
    return ops, stamps


def _check_batch(batch, tbl: sa.Table, *, full_load: bool, days: tuple[dt.date, ...], count_day: dt.date | None,
                 since: dt.datetime | None) -> tuple[Counter, set] | None:
    """One block of _check_columns: (op counts, transfer times), or None when a row breaks a check."""
    import pyarrow as pa
    import pyarrow.compute as pc

    if any(_longest(column) > csv.field_size_limit() for column in batch.columns):  # the row reader's limit
        return None
    op, stamp = batch.column(0), batch.column(1)
    if not (_every(pc.is_in(op, pa.array(["I"] if full_load else ["I", "U", "D"])))
            and _every(pc.match_substring_regex(stamp, _STAMP))):
        return None
    moments = pc.cast(stamp, pa.timestamp("us"))
    if batch.num_rows and pc.min(pc.year(moments)).as_py() < 1:  # Python's datetime starts at year 1
        return None
    on = pc.cast(moments, pa.date32())
    if days and not _every(pc.is_in(on, pa.array(list(days), pa.date32()))):
        return None
    if not all(_every(pc.not_equal(batch.column(c.name), "")) for c in tbl.primary_key.columns):
        return None
    counted = pa.array([True] * batch.num_rows, pa.bool_())
    if count_day is not None:
        counted = pc.and_(counted, pc.equal(on, pa.scalar(count_day, pa.date32())))
    if since is not None:
        counted = pc.and_(counted, pc.greater_equal(moments, pa.scalar(since, pa.timestamp("us"))))
    ops = Counter({row["values"]: row["counts"] for row in pc.value_counts(pc.filter(op, counted)).to_pylist()})
    return ops, set(pc.unique(stamp).to_pylist()) if full_load else set()


def _longest(column) -> int:
    """The longest value of a text column, in characters (0 when empty)."""
    import pyarrow.compute as pc

    return pc.max(pc.utf8_length(column)).as_py() or 0


def _every(mask) -> bool:
    """Whether a boolean Arrow array holds only true (an empty one does)."""
    import pyarrow.compute as pc

    return pc.all(mask).as_py() is not False


def _check_rows(path: ObjectStoragePath, tbl: sa.Table, *, full_load: bool, days: tuple[dt.date, ...],
                count_day: dt.date | None, since: dt.datetime | None) -> tuple[Counter, set]:
    """check_file row by row: every problem named with its line and column."""
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
                if days and moment.date() not in days:
                    errors.append(f"line {number}: column {expected[1]}: commit time {stamp} is not on "
                                  f"{' or '.join(str(d) for d in days)}")
                elif (count_day is None or moment.date() == count_day) and (since is None or moment >= since):
                    ops[op] += 1
            errors.extend(f"line {number}: column {expected[i]}: primary key is empty" for i in keys if not row[i])
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
    reloaded = start_type in FULL_LOAD_TYPES
    full_load = reloaded if full_load is None else full_load
    if reloaded:
        with storage.committing(paths.dms_full_load(day)) as kept:
            manifest = _check_day(day, full_load=True, loads=_copy_load_files(kept), landed=None)
    elif full_load:
        if not storage.is_committed(paths.dms_full_load(day)):
            raise DmsLandingError(f"{storage.url_of(paths.dms_full_load(day))}: the full load landed for {day} was not "
                                  "kept (landed before full loads were kept?): re-run the day with force_full_load")
        manifest = _check_day(day, full_load=True, loads=storage.resolve(paths.dms_full_load(day)),
                              landed=full_load_partitions().get(day.isoformat()))
    else:
        manifest = _check_day(day, full_load=False, loads=None, landed=None)
    with storage.committing(paths.dms_manifest(day)) as staging:
        storage.write_json(staging / "manifest.json", manifest)
    if full_load:
        landed = {**full_load_partitions(), day.isoformat(): {"ts": manifest["full_load_ts"]}}
        storage.write_json(paths.dms_full_loads(), landed)
    return manifest


def _cdc_files(folder: ObjectStoragePath) -> list[ObjectStoragePath]:
    """The CDC files of a date folder in write order; a file whose name is not DMS's is an error, not skipped."""
    found = [p for p in folder.iterdir() if p.is_file()] if folder.exists() else []
    unknown = sorted(p.name for p in found if not CDC_FILE.match(p.name))
    if unknown:
        raise DmsLandingError(f"{storage.url_of(folder)}: {unknown} are not DMS CDC file names (YYYYMMDD-HHMMSS and 3 "
                              "or 4 digits of the second, .csv): a file there would otherwise be left out silently")
    return sorted(found, key=lambda p: cdc_order(p.name))


def _load_files(folder: ObjectStoragePath) -> list[ObjectStoragePath]:
    """A table's LOAD files in DMS's order (its hex counter), none when the folder does not exist."""
    return sorted(p for p in folder.glob("LOAD*.csv") if LOAD_FILE.match(p.name)) if folder.exists() else []


def _copy_load_files(kept: ObjectStoragePath) -> ObjectStoragePath:
    """Copy every mapped table's LOAD files as DMS left them into the folder being committed (server-side on S3)."""
    for name in mapped_tables():
        folder = paths.dms_landing() / name
        (kept / name).mkdir(parents=True, exist_ok=True)
        for path in _load_files(folder):
            path.fs.copy(path.path, (kept / name / path.name).path)
    return kept


def _check_day(day: dt.date, *, full_load: bool, loads: ObjectStoragePath | None, landed: dict | None) -> dict:
    """The partition's manifest, once every file is checked: the LOAD files under `loads` (a full load's kept
    copy, whose transfer time must be the one `landed` records) and the day's CDC files."""
    # What the partition consists of, not how this run got it: a re-run commits the same manifest.
    manifest: dict = {"partition": day.isoformat(), "full_load": full_load, "tables": {}}
    stamps: set[str] = set()
    for name in mapped_tables():
        load_files = _load_files(loads / name) if loads is not None else []
        entry: dict = {"load_files": [p.name for p in load_files], "cdc_files": []}
        if full_load:
            loaded: Counter = Counter()
            for path in load_files:
                counts, seen = check_file(path, source.table(name), full_load=True)
                loaded += counts
                stamps |= seen
            entry["full_load_rows"] = loaded.get("I", 0)
        manifest["tables"][name] = entry
    # A full load holds every change committed before its transfer time (the task's start): the partition takes
    # only the changes after it. Earlier ones (the day before's last changes, flushed into the day's folder before
    # a reload) would bring back rows the full load no longer has.
    since = None
    if full_load:
        manifest["full_load_ts"] = _full_load_stamp(day, stamps, landed)
        since = dt.datetime.strptime(manifest["full_load_ts"], source.TS_FORMAT)
    for name, entry in manifest["tables"].items():
        tbl = source.table(name)
        folder = paths.dms_landing() / name
        # DMS names a CDC folder by write time: the day's last changes are flushed after midnight, into the next
        # day's folder (with CdcMaxBatchInterval 3600, up to an hour of them), so the day's own folder may start
        # with the day before's. The next day's files that hold changes of the day belong to it too; the merge
        # applies only what was committed by the day's end.
        ops: Counter = Counter()
        for date, committed in ((day, (day - _DAY, day)), (day + _DAY, (day, day + _DAY))):
            for path in _cdc_files(folder / date.strftime("%Y/%m/%d")):
                counts = check_file(path, tbl, full_load=False, days=committed, count_day=day, since=since)[0]
                if (date == day and since is None) or counts:
                    entry["cdc_files"].append(storage.relative(path, folder))
                    ops += counts
        entry["cdc_ops"] = {op: ops.get(op, 0) for op in ("I", "U", "D")}
        entry["rows"] = entry.get("full_load_rows", 0) + sum(ops.values())
    return manifest


def _full_load_stamp(day: dt.date, stamps: set[str], landed: dict | None) -> str:
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
    if landed and landed["ts"] != stamp:
        raise DmsLandingError(
            f"{storage.url_of(paths.dms_full_load(day))}: the kept copy of the full load landed for {day} has transfer "
            f"time {stamp}, but {landed['ts']} was recorded: the copy was changed; re-run the day with force_full_load"
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
