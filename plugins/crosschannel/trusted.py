"""Trusted zone, first step: the current state of every source table at the partition, from DMS's files.

The inputs are exactly the files the landing manifests list: the LOAD files of the full load in effect at
the partition (the latest one landed at or before it) and the CDC files of every day from that full load
to the partition. A missing day's manifest is an error: the state cannot be built across a gap. The
merge itself is include/sql/trusted/cdc_merge.sql, the same on DuckDB and on Spark.
"""

from __future__ import annotations

import datetime as dt
import logging
from typing import TYPE_CHECKING

from crosschannel import dms, engines, source, sqljobs, storage

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


def merge_sql(table: str) -> str:
    tbl = source.table(table)
    return engines.render(
        "trusted/cdc_merge.sql",
        keys=[c.name for c in tbl.primary_key.columns],
        columns=[{"name": c.name, "sql_type": engines.sql_type(c)} for c in tbl.columns],
    )


def current_state(table: str, day: dt.date) -> pa.Table:
    """The table's current state at the end of `day`, merged on DuckDB (what the local merge job commits).

    A landed value that does not cast to its column's type (a column whose type changed at the source)
    fails here on DuckDB; Spark casts it to NULL instead, which the gate's not-null expectations stop.
    """
    import duckdb

    try:
        landing = sqljobs.read_input("landing", landing_input(table, day))
        return engines.run_duckdb(merge_sql(table), {"landing": landing})
    except duckdb.ConversionException as exc:
        raise TrustedInputError(f"trusted merge of table {table} for {day}: a landed value does not fit its "
                                f"column's type ({exc})") from exc


def landing_input(table: str, day: dt.date) -> dict:
    """The merge's `landing` input: the landed files in apply order (an empty table of text if none)."""
    columns = ", ".join(f"{name} STRING" for name in dms.header_for(source.table(table)))
    return {**sqljobs.dms_csv(landing_files(table, day)), "schema": f"{columns}, _file_seq BIGINT, _row_seq BIGINT"}


def final_dir(name: str, day: dt.date, zone: str = "trusted") -> ObjectStoragePath:
    return storage.partition_dir(zone, name, day=day.isoformat())


def candidate_dir(name: str, day: dt.date, zone: str = "trusted") -> ObjectStoragePath:
    """Where a job's result waits for its gate; only a passing gate publishes it: <root>/staging/<zone>/..."""
    return storage.partition_dir("staging", zone, name, day=day.isoformat())


def write_table(table: str, day: dt.date, data: pa.Table, *, candidate: bool = True) -> ObjectStoragePath:
    """Commit a table as one Parquet file (by default as the candidate for the gate)."""
    target = candidate_dir(table, day) if candidate else final_dir(table, day)
    sqljobs.write_partition(target, data)
    return target


def rows_in(folder: ObjectStoragePath) -> int:
    import pyarrow.parquet as pq

    total = 0
    for path in folder.glob("*.parquet"):
        with path.open("rb") as handle:
            total += pq.ParquetFile(handle).metadata.num_rows
    return total


def gate_and_publish(day: dt.date, suites: dict[str, tuple[ObjectStoragePath, ObjectStoragePath]],
                     docs_name: str) -> dict:
    """Run each suite on its candidate; only if no critical expectation fails, publish every candidate.

    `suites` maps a suite name to (candidate, final) partition folders. A failure leaves the published
    partitions as they were and raises with every failed expectation and sample values; warnings are
    reported. References resolve against the candidates gated together (`trusted_<table>`), else against
    the trusted partition of the day. Results are kept per partition, Data Docs under reports/dt=.../<docs_name>.
    """
    from crosschannel import gates

    frames = {}
    for suite, (candidate, _) in suites.items():
        if not storage.is_committed(candidate):
            raise TrustedInputError(f"{storage.url_of(candidate)}: nothing was computed for {suite} on {day}")
        frames[suite] = sqljobs.read_partition(candidate).to_pandas()
    published: dict[str, object] = {}

    def keys_of(table: str, key: str):
        if f"trusted_{table}" in frames:
            return frames[f"trusted_{table}"][key].dropna().unique()
        if table not in published:
            folder = final_dir(table, day)
            if not storage.is_committed(folder):
                raise TrustedInputError(f"{storage.url_of(folder)}: the reference table {table} is not published")
            published[table] = sqljobs.read_partition(folder).column(key).to_pandas()
        return published[table].dropna().unique()

    results = []
    run = gates.GateRun(day, docs_name=docs_name)
    for suite, (_, final) in suites.items():
        previous = final.parent / f"dt={(day - dt.timedelta(days=1)).isoformat()}"
        previous_rows = rows_in(previous) if storage.is_committed(previous) else None
        result = run.validate(suite, frames[suite], previous_rows, keys_of=keys_of)
        gates.record(result)
        results.append(result)
    data_docs = run.publish_docs()
    log.info("Great Expectations Data Docs for %s: %s", day, data_docs)
    gates.enforce(results)
    for candidate, final in suites.values():
        storage.promote(candidate, final)
    return {"partition": day.isoformat(), "gates": {r.suite: r.success for r in results}, "data_docs": data_docs,
            "rows": {r.suite: r.rows for r in results},
            "warnings": {r.suite: len(r.failed_warning) for r in results if r.failed_warning}}


def trusted_suites(day: dt.date) -> dict[str, tuple[ObjectStoragePath, ObjectStoragePath]]:
    """The trusted gate's suites: every merged table, the identity map and the typed events."""
    names = [*dms.mapped_tables(), "identity_map", "events"]
    return {f"trusted_{name}": (candidate_dir(name, day), final_dir(name, day)) for name in names}


def gate_trusted(day: dt.date) -> dict:
    return gate_and_publish(day, trusted_suites(day), "data_docs")


def plan_merge(day: dt.date) -> list[dict]:
    """One merge job per mapped table: the landed files in effect at the partition, to the table's candidate."""
    return [sqljobs.job(day, f"{table}_cdc_merge.sql", merge_sql(table), {"landing": landing_input(table, day)},
                        candidate_dir(table, day))
            for table in dms.mapped_tables()]


def summarize(day: dt.date) -> dict:
    """Rows per published partition and the gate outcomes for the day, read back from what was committed."""
    from crosschannel import features

    rows = {}
    for name in [*dms.mapped_tables(), "identity_map", "events", "customer_360"]:
        target = final_dir(name, day)
        if not storage.is_committed(target):
            raise TrustedInputError(f"{storage.url_of(target)}: the trusted partition of {name} was not committed")
        rows[name] = rows_in(target)
    reports = storage.zone("reports", f"dt={day.isoformat()}", "gates")
    suites = [*trusted_suites(day), *features.derived_suites(day)]
    gate_results = {name: storage.read_json(reports / f"{name}.json")["success"] for name in suites
                    if (reports / f"{name}.json").exists()}
    docs = {name: storage.zone("reports", f"dt={day.isoformat()}", name, "index.html")
            for name in ("data_docs", "data_docs_derived")}
    customer_features = features.final_dir(day)
    return {"partition": day.isoformat(), "rows": rows, "gates": gate_results, "gate_reports": storage.url_of(reports),
            "data_docs": {name: storage.url_of(path) for name, path in docs.items() if path.exists()},
            "features_rows": rows_in(customer_features) if storage.is_committed(customer_features) else None}
