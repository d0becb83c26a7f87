"""Trusted zone, first step: the current state of every source table at the partition, from DMS's files.

The inputs are exactly the files the landing manifests list: the LOAD files of the full load in effect at
the partition (the latest one landed at or before it) and the CDC files of every day from that full load
to the partition. A missing day's manifest is an error: the state cannot be built across a gap. The
merge itself is include/sql/trusted/cdc_merge.sql, the same on DuckDB and on Spark.
"""

from __future__ import annotations

import datetime as dt
import json
from typing import TYPE_CHECKING

from crosschannel import dms, engines, source, storage

if TYPE_CHECKING:
    import pyarrow as pa
    from airflow.sdk import ObjectStoragePath


class TrustedInputError(ValueError):
    """The landing zone cannot give the partition's state; the message names the day, table or file."""


def landing_files(table: str, day: dt.date) -> list[ObjectStoragePath]:
    """The files whose changes make up the table's state at the end of `day`, in apply order."""
    loads = {d: v for d, v in dms.full_load_partitions().items() if d <= day.isoformat()}
    if not loads:
        raise TrustedInputError(f"no full load landed at or before {day}: run retail_ingest for that day first")
    full_load_day = dt.date.fromisoformat(max(loads))
    folder = dms.landing_root() / table
    files = []
    current = full_load_day
    while current <= day:
        manifest_path = dms.manifest_dir(current) / "manifest.json"
        if not storage.is_committed(dms.manifest_dir(current)):
            raise TrustedInputError(
                f"no committed landing manifest for {current} ({manifest_path}): the state of {day} needs every "
                f"day since the full load of {full_load_day}; run retail_ingest for {current}"
            )
        entry = storage.read_json(manifest_path)["tables"].get(table)
        if entry is None:
            raise TrustedInputError(f"{manifest_path}: table {table!r} is not in the landing manifest")
        if current == full_load_day:
            files += [folder / name for name in entry["load_files"]]
        files += [folder / current.strftime("%Y/%m/%d") / name for name in entry["cdc_files"]]
        current += dt.timedelta(days=1)
    return files


def read_landing(table: str, files: list[ObjectStoragePath]) -> pa.Table:
    """Every row of the files as text, with its file and row order; empty fields are NULL."""
    import pyarrow as pa
    from pyarrow import csv

    names = dms.header_for(source.table(table))
    parts = []
    for file_seq, path in enumerate(files):
        with path.open("rb") as handle:
            part = csv.read_csv(
                handle,
                read_options=csv.ReadOptions(column_names=names, skip_rows=1),
                convert_options=csv.ConvertOptions(column_types=dict.fromkeys(names, pa.string()),
                                                   strings_can_be_null=True, null_values=[""]),
            )
        parts.append(part.append_column("_file_seq", pa.array([file_seq] * part.num_rows, pa.int64()))
                     .append_column("_row_seq", pa.array(range(part.num_rows), pa.int64())))
    if not parts:
        empty = {name: pa.array([], pa.string()) for name in names}
        return pa.table({**empty, "_file_seq": pa.array([], pa.int64()), "_row_seq": pa.array([], pa.int64())})
    return pa.concat_tables(parts)


def merge_sql(table: str) -> str:
    tbl = source.table(table)
    return engines.render(
        "trusted/cdc_merge.sql",
        keys=[c.name for c in tbl.primary_key.columns],
        columns=[{"name": c.name, "sql_type": engines.sql_type(c)} for c in tbl.columns],
    )


def current_state(table: str, day: dt.date) -> pa.Table:
    """The table's current state at the end of `day`, merged on DuckDB."""
    return engines.run_duckdb(merge_sql(table), {"landing": read_landing(table, landing_files(table, day))})


def write_table(table: str, day: dt.date, data: pa.Table) -> ObjectStoragePath:
    """Commit the table's partition <root>/trusted/<table>/dt=YYYY-MM-DD/ as one Parquet file."""
    import pyarrow.parquet as pq

    target = storage.partition_dir("trusted", table, day=day.isoformat())
    with storage.committing(target) as staging, (staging / "part-00000.parquet").open("wb") as handle:
        pq.write_table(data, handle)
    return target


def plan_merge(day: dt.date) -> list[dict]:
    """One job per mapped table: on aws the rendered SQL is uploaded and the inputs are the landed files."""
    from crosschannel.config import get_config

    cfg = get_config()
    jobs = []
    for table in dms.mapped_tables():
        output = storage.partition_dir("trusted", table, day=day.isoformat())
        job = {"table": table, "partition": day.isoformat(), "output_path": storage.url_of(output)}
        if cfg.target == "aws":
            sql_path = storage.zone("system", "glue", "sql", f"dt={day.isoformat()}", f"{table}_cdc_merge.sql")
            sql_path.parent.mkdir(parents=True, exist_ok=True)
            sql_path.write_text(merge_sql(table))
            paths = [storage.url_of(p) for p in landing_files(table, day)]
            job["script_args"] = {
                "--sql_path": storage.url_of(sql_path),
                "--inputs": json.dumps({"landing": {"format": "dms_csv", "paths": paths}}),
                "--output_path": storage.url_of(output),
            }
        jobs.append(job)
    return jobs


def merge_and_write(table: str, day: dt.date) -> int:
    """The local target's merge: DuckDB over the landed files, committed as the table's partition."""
    state = current_state(table, day)
    write_table(table, day, state)
    return state.num_rows


def summarize(day: dt.date) -> dict:
    """Rows per trusted table for the partition, read back from the committed Parquet files."""
    import pyarrow.parquet as pq

    rows = {}
    for table in dms.mapped_tables():
        target = storage.partition_dir("trusted", table, day=day.isoformat())
        if not storage.is_committed(target):
            raise TrustedInputError(f"{target}: the trusted partition of {table} was not committed")
        rows[table] = sum(pq.ParquetFile(p.open("rb")).metadata.num_rows for p in target.glob("*.parquet"))
    return {"partition": day.isoformat(), "rows": rows}
