"""Trusted zone, first step: the current state of every source table at the partition, from DMS's files.

The inputs are exactly the files the landing manifests list: the LOAD files of the full load in effect at the
partition (the latest one landed at or before it, as the landing check kept it) and the CDC files of every day
from that full load to the partition. A missing day's manifest is an error: the state cannot be built across a
gap. When the day before's trusted state was published after all of that had landed (`base_day`), the merge
starts from it and reads only the day's CDC files: a day's merge then costs one day of changes plus the state,
not every change since the full load. The merge itself is include/sql/trusted/cdc_merge.sql, the same on DuckDB
and on Spark.
"""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING

from crosschannel.core import dms, engines, paths, source, sqljobs, storage
from crosschannel.core.errors import DataError

if TYPE_CHECKING:
    import pyarrow as pa
    from airflow.sdk import ObjectStoragePath


class TrustedInputError(DataError, ValueError):
    """The landing zone cannot give the partition's state; the message names the day, table or file."""


def _full_load_day(day: dt.date) -> dt.date:
    loads = [d for d in dms.full_load_partitions() if d <= day.isoformat()]
    if not loads:
        raise TrustedInputError(f"no full load landed at or before {day}: run retail_ingest for that day first")
    return dt.date.fromisoformat(max(loads))


def _manifest(current: dt.date, day: dt.date, full_load_day: dt.date) -> ObjectStoragePath:
    manifest = paths.dms_manifest(current)
    if not storage.is_committed(manifest):
        raise TrustedInputError(
            f"no committed landing manifest for {current} ({storage.url_of(manifest)}): the state of {day} needs "
            f"every day since the full load of {full_load_day}; run retail_ingest for {current}")
    return manifest


def _entry(manifest: ObjectStoragePath, table: str) -> dict:
    path = storage.resolve(manifest) / "manifest.json"
    entry = storage.read_json(path)["tables"].get(table)
    if entry is None:
        raise TrustedInputError(f"{storage.url_of(path)}: table {table!r} is not in the landing manifest")
    return entry


def landing_files(table: str, day: dt.date) -> tuple[list[ObjectStoragePath], int]:
    """The files whose changes make up the table's state at the end of `day`, in apply order, each once (a CDC
    file flushed after midnight is in two days' manifests), and how many of them are LOAD files (the first)."""
    full_load_day = _full_load_day(day)
    folder = paths.dms_landing() / table
    kept = storage.resolve(paths.dms_full_load(full_load_day)) / table
    files = []
    current = full_load_day
    while current <= day:
        entry = _entry(_manifest(current, day, full_load_day), table)
        if current == full_load_day:
            files += [kept / name for name in entry["load_files"]]
            load_count = len(files)
        files += [folder / relative for relative in entry["cdc_files"]]
        current += dt.timedelta(days=1)
    return list({f.path: f for f in files}.values()), load_count


def base_day(day: dt.date) -> dt.date | None:
    """The day before, when the day's merge can start from its published trusted state: the full load in effect
    is older than the day, and every table's trusted partition of the day before was published after the landing
    manifests of every day from that full load to it (a day landed again since, a reload, leaves it stale: the
    merge then starts from the full load) with the table's columns as configured now. None otherwise."""
    full_load_day, before = _full_load_day(day), day - dt.timedelta(days=1)
    if full_load_day > before:
        return None
    landed = []
    current = full_load_day
    while current <= day:  # the day's own manifest must be there too: its CDC files are the merge's input
        landed.append(storage.committed_at(_manifest(current, day, full_load_day)) or 0)
        current += dt.timedelta(days=1)
    for table in dms.mapped_tables():
        state = paths.trusted(table, before)
        published = storage.committed_at(state)
        # a column added to the source since: the full load has it, the state not
        if published is None or published < max(landed[:-1]) or \
                sqljobs.column_names(state) != [c.name for c in source.table(table).columns]:
            return None
    return before


def merge_sql(table: str, day: dt.date | None = None, load_files: int = 0, incremental: bool = False) -> str:
    """The merge of one table; for a partition `day`, changes committed after its end (in a CDC file flushed
    after midnight together with the day's last ones) are left for the next day (the LOAD files are the base).
    `incremental`: the day's changes over the `base` input, the published state of the day before."""
    tbl = source.table(table)
    return engines.render(
        "trusted/cdc_merge.sql",
        keys=[c.name for c in tbl.primary_key.columns],
        columns=[{"name": c.name, "sql_type": engines.sql_type(c)} for c in tbl.columns],
        until=engines.stamp(day + dt.timedelta(days=1)) if day else None, load_files=load_files,
        since=engines.stamp(day) if incremental else None,
    )


def current_state(table: str, day: dt.date) -> pa.Table:
    """The table's current state at the end of `day`, merged on DuckDB (what the local merge job commits).

    A landed value that does not cast to its column's type (a column whose type changed at the source)
    fails here on DuckDB; Spark casts it to NULL instead, which the gate's not-null expectations stop.
    """
    import duckdb

    try:
        files, loads = landing_files(table, day)
        landing = sqljobs.read_input("landing", landing_input(table, files))
        return engines.run_duckdb(merge_sql(table, day, loads), {"landing": landing})
    except duckdb.ConversionException as exc:
        raise TrustedInputError(f"trusted merge of table {table} for {day}: a landed value does not fit its "
                                f"column's type ({exc})") from exc


def landing_input(table: str, files: list[ObjectStoragePath]) -> dict:
    """The merge's `landing` input: the landed files in apply order (an empty table of text if none)."""
    columns = ", ".join(f"{name} STRING" for name in dms.header_for(source.table(table)))
    return {**sqljobs.dms_csv(files), "schema": f"{columns}, _file_seq BIGINT, _row_seq BIGINT"}


def write_table(table: str, day: dt.date, data: pa.Table, *, candidate: bool = True,
                run: str = "") -> ObjectStoragePath:
    """Commit a table as one Parquet file (by default as the run's candidate for the gate)."""
    target = paths.candidate(table, day, run=run) if candidate else paths.trusted(table, day)
    sqljobs.write_partition(target, data)
    return target


def plan_merge(day: dt.date, run: str = "") -> list[dict]:
    """One merge job per mapped table, to the table's candidate: the day's CDC files over the published state of
    the day before (`base_day`), else the landed files in effect at the partition from the full load on."""
    before, jobs = base_day(day), []
    for table in dms.mapped_tables():
        if before is None:
            files, loads = landing_files(table, day)
            sql, inputs = merge_sql(table, day, loads), {"landing": landing_input(table, files)}
        else:
            entry = _entry(paths.dms_manifest(day), table)
            files = [paths.dms_landing() / table / relative for relative in entry["cdc_files"]]
            sql = merge_sql(table, day, incremental=True)
            inputs = {"landing": landing_input(table, files), "base": sqljobs.parquet([paths.trusted(table, before)])}
        jobs.append(sqljobs.job(day, f"{table}_cdc_merge.sql", sql, inputs, paths.candidate(table, day, run=run)))
    return jobs
