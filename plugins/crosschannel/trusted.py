"""Trusted zone, first step: the current state of every source table at the partition, from DMS's files.

The inputs are exactly the files the landing manifests list: the LOAD files of the full load in effect at
the partition (the latest one landed at or before it) and the CDC files of every day from that full load
to the partition. A missing day's manifest is an error: the state cannot be built across a gap. The
merge itself is include/sql/trusted/cdc_merge.sql, the same on DuckDB and on Spark.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
from typing import TYPE_CHECKING

from crosschannel import dms, engines, source, storage

if TYPE_CHECKING:
    import pyarrow as pa
    from airflow.sdk import ObjectStoragePath


log = logging.getLogger(__name__)


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
    """The table's current state at the end of `day`, merged on DuckDB.

    A landed value that does not cast to its column's type (a column whose type changed at the source)
    fails here on DuckDB; Spark casts it to NULL instead, which the gate's not-null expectations stop.
    """
    import duckdb

    try:
        return engines.run_duckdb(merge_sql(table), {"landing": read_landing(table, landing_files(table, day))})
    except duckdb.ConversionException as exc:
        raise TrustedInputError(f"trusted merge of table {table} for {day}: a landed value does not fit its "
                                f"column's type ({exc})") from exc


def final_dir(table: str, day: dt.date) -> ObjectStoragePath:
    return storage.partition_dir("trusted", table, day=day.isoformat())


def candidate_dir(table: str, day: dt.date) -> ObjectStoragePath:
    """Where a merge result waits for its gate; only a passing gate publishes it to the trusted zone."""
    return storage.partition_dir("staging", "trusted", table, day=day.isoformat())


def write_table(table: str, day: dt.date, data: pa.Table, *, candidate: bool = True) -> ObjectStoragePath:
    """Commit the table's merge result as one Parquet file (by default as the candidate for the gate)."""
    import pyarrow.parquet as pq

    target = candidate_dir(table, day) if candidate else final_dir(table, day)
    with storage.committing(target) as staging, (staging / "part-00000.parquet").open("wb") as handle:
        pq.write_table(data, handle)
    return target


def read_partition(folder: ObjectStoragePath) -> pa.Table:
    import pyarrow as pa
    import pyarrow.parquet as pq

    parts = []
    for path in sorted(folder.glob("*.parquet")):
        with path.open("rb") as handle:
            parts.append(pq.read_table(handle))
    return pa.concat_tables(parts)


def rows_in(folder: ObjectStoragePath) -> int:
    import pyarrow.parquet as pq

    total = 0
    for path in folder.glob("*.parquet"):
        with path.open("rb") as handle:
            total += pq.ParquetFile(handle).metadata.num_rows
    return total


def gate_and_publish(day: dt.date) -> dict:
    """Run every table's suite on its candidate; only if no critical expectation fails, publish them all.

    A failure leaves the trusted zone as it was (the previous good partitions untouched) and raises with
    every failed expectation and sample values; warnings are reported. Results are kept per partition.
    """
    from crosschannel import gates

    frames = {}
    for table in dms.mapped_tables():
        candidate = candidate_dir(table, day)
        if not storage.is_committed(candidate):
            raise TrustedInputError(f"{storage.url_of(candidate)}: no merge result for {table} on {day}")
        frames[table] = read_partition(candidate).to_pandas()

    def keys_of(table: str, key: str):
        return frames[table][key].dropna().unique()

    results = []
    run = gates.GateRun(day)
    for table, frame in frames.items():
        previous = final_dir(table, day - dt.timedelta(days=1))
        previous_rows = rows_in(previous) if storage.is_committed(previous) else None
        result = run.validate(f"trusted_{table}", frame, previous_rows, keys_of=keys_of)
        gates.record(result)
        results.append(result)
    data_docs = run.publish_docs()
    log.info("Great Expectations Data Docs for %s: %s", day, data_docs)
    gates.enforce(results)
    for table in dms.mapped_tables():
        storage.promote(candidate_dir(table, day), final_dir(table, day))
    return {"partition": day.isoformat(), "gates": {r.suite: r.success for r in results}, "data_docs": data_docs,
            "warnings": {r.suite: len(r.failed_warning) for r in results if r.failed_warning}}


def upload_sql(day: dt.date, name: str, sql: str) -> ObjectStoragePath:
    """Put a rendered SQL file where the aws target's Glue job reads it: <root>/system/glue/sql/dt=.../<name>."""
    path = storage.zone("system", "glue", "sql", f"dt={day.isoformat()}", name)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(sql)
    return path


def plan_merge(day: dt.date) -> list[dict]:
    """One job per mapped table: on aws the rendered SQL is uploaded and the inputs are the landed files."""
    from crosschannel.config import get_config

    cfg = get_config()
    jobs = []
    for table in dms.mapped_tables():
        output = candidate_dir(table, day)
        job = {"table": table, "partition": day.isoformat(), "output_path": storage.url_of(output)}
        if cfg.target == "aws":
            sql_path = upload_sql(day, f"{table}_cdc_merge.sql", merge_sql(table))
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
    """Rows per trusted table and the gate outcomes for the partition, read back from what was committed."""
    rows = {}
    for table in dms.mapped_tables():
        target = final_dir(table, day)
        if not storage.is_committed(target):
            raise TrustedInputError(f"{storage.url_of(target)}: the trusted partition of {table} was not committed")
        rows[table] = rows_in(target)
    reports = storage.zone("reports", f"dt={day.isoformat()}", "gates")
    gate_results = {p.stem: storage.read_json(p)["success"] for p in reports.glob("*.json")} \
        if reports.exists() else {}
    from crosschannel import features

    docs = storage.zone("reports", f"dt={day.isoformat()}", "data_docs", "index.html")
    customer_features = features.final_dir(day)
    return {"partition": day.isoformat(), "rows": rows, "gates": gate_results, "gate_reports": storage.url_of(reports),
            "data_docs": storage.url_of(docs) if docs.exists() else None,
            "features_rows": rows_in(customer_features) if storage.is_committed(customer_features) else None}
