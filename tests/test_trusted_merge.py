"""include/sql/trusted/cdc_merge.sql on DuckDB and on Spark 3.5 over the same landed rows: equal results."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pyarrow as pa
import pytest

from crosschannel.core import dms, engines, gates, source
from crosschannel.stages.trusted import merge

HEADER = ["Op", "dms_commit_ts", "store_id", "name", "city", "region", "opened_date", "updated_at"]


def _landing(rows: list[tuple]) -> pa.Table:
    """Rows as (file_seq, row_seq, Op, ts, store_id, name, city, region, opened_date, updated_at)."""
    columns = list(zip(*rows, strict=True))
    data = {"_file_seq": pa.array(columns[0], pa.int64()), "_row_seq": pa.array(columns[1], pa.int64())}
    for i, name in enumerate(HEADER, start=2):
        data[name] = pa.array(columns[i], pa.string())
    return pa.table({name: data[name] for name in [*HEADER, "_file_seq", "_row_seq"]})


LOAD = "2026-11-01 00:00:00.000000"
ROWS = [
    # the full load
    (0, 0, "I", LOAD, "1", "One", "Salem", "north", "2020-01-02", "2026-01-01 10:00:00.000000"),
    (0, 1, "I", LOAD, "2", "Two", "Dover", "south", "2021-03-04", "2026-01-01 10:00:00.000000"),
    (0, 2, "I", LOAD, "3", "Three", None, "east", "2019-05-06", "2026-01-01 10:00:00.000000"),
    # day 1: an update, a delete, an insert
    (1, 0, "U", "2026-11-01 09:00:00.000000", "1", "Uno", "Salem", "north", "2020-01-02", "2026-11-01 09:00:00.0"),
    (1, 1, "D", "2026-11-01 10:00:00.000000", "2", "Two", "Dover", "south", "2021-03-04", "2026-01-01 10:00:00.0"),
    (1, 2, "I", "2026-11-01 11:00:00.000000", "4", "Four", "Salem", "west", "2022-07-08", "2026-11-01 11:00:00.0"),
    # day 2, files landed out of order: the later file holds the earlier change of store 1
    (3, 0, "U", "2026-11-02 08:00:00.000000", "1", "Eins", "Salem", "north", "2020-01-02", "2026-11-02 08:00:00.0"),
    (2, 0, "U", "2026-11-02 12:00:00.000000", "1", "Un", "Salem", "north", "2020-01-02", "2026-11-02 12:00:00.0"),
    # a replayed change: the same update landed twice
    (2, 1, "U", "2026-11-02 13:00:00.000000", "4", "Vier", "Salem", "west", "2022-07-08", "2026-11-02 13:00:00.0"),
    (3, 1, "U", "2026-11-02 13:00:00.000000", "4", "Vier", "Salem", "west", "2022-07-08", "2026-11-02 13:00:00.0"),
    # same commit time, later row wins
    (2, 2, "U", "2026-11-02 14:00:00.000000", "3", "Drei", None, "east", "2019-05-06", "2026-11-02 14:00:00.0"),
    (2, 3, "U", "2026-11-02 14:00:00.000000", "3", "Tres", None, "east", "2019-05-06", "2026-11-02 14:00:00.0"),
]
EXPECTED = [
    (1, "Un", "Salem", "north", dt.date(2020, 1, 2), dt.datetime(2026, 11, 2, 12)),
    (3, "Tres", None, "east", dt.date(2019, 5, 6), dt.datetime(2026, 11, 2, 14)),
    (4, "Vier", "Salem", "west", dt.date(2022, 7, 8), dt.datetime(2026, 11, 2, 13)),
]


def _rows(table: pa.Table) -> list[tuple]:
    return [tuple(r.values()) for r in table.to_pylist()]


def test_merge_on_duckdb_applies_changes_in_commit_then_file_then_row_order():
    result = engines.run_duckdb(merge.merge_sql("stores"), {"landing": _landing(ROWS)})

    assert _rows(result) == EXPECTED
    assert [f.name for f in result.schema] == HEADER[2:]


def test_merge_on_spark_equals_duckdb(spark):
    sql = merge.merge_sql("stores")
    landing = _landing(ROWS)

    assert _rows(engines.run_spark(spark, sql, {"landing": landing})) == \
        _rows(engines.run_duckdb(sql, {"landing": landing})) == EXPECTED


@pytest.mark.parametrize("table", ["orders", "order_lines", "inventory", "products", "customers", "returns"])
def test_every_table_types_agree_on_both_engines(spark, table):
    """One landed row per table with every type (BIGINT, DECIMAL, BOOLEAN, DATE, TIMESTAMP, STRING)."""

    tbl = source.table(table)
    samples = {"BIGINT": "7", "DECIMAL(12, 2)": "19.90", "BOOLEAN": "true", "DATE": "2026-11-01",
               "TIMESTAMP": "2026-11-01 10:11:12.123456", "STRING": "x, \"quoted\""}
    values = [samples[engines.sql_type(c)] for c in tbl.columns]
    names = dms.header_for(tbl)
    landing = pa.table({**{n: pa.array([v], pa.string()) for n, v in zip(names, ["I", LOAD, *values], strict=True)},
                        "_file_seq": pa.array([0], pa.int64()), "_row_seq": pa.array([0], pa.int64())})
    sql = merge.merge_sql(table)

    on_duckdb = _rows(engines.run_duckdb(sql, {"landing": landing}))
    on_spark = _rows(engines.run_spark(spark, sql, {"landing": landing}))

    assert on_duckdb == on_spark
    assert Decimal("19.90") in on_duckdb[0] or "DECIMAL(12, 2)" not in {engines.sql_type(c) for c in tbl.columns}


def test_a_value_that_no_longer_fits_its_type_is_stopped_on_both_engines(spark):
    """DuckDB refuses the cast; Spark 3.5 (non-ANSI, as Glue) makes it NULL, which the gate stops."""
    import duckdb

    rows = [(0, 0, "I", LOAD, "1", "One", "Salem", "north", "not-a-date", "2026-01-01 10:00:00.000000")]
    sql = merge.merge_sql("stores")

    with pytest.raises(duckdb.ConversionException):
        engines.run_duckdb(sql, {"landing": _landing(rows)})
    on_spark = engines.run_spark(spark, sql, {"landing": _landing(rows)})
    assert on_spark.to_pylist()[0]["opened_date"] is None
    result = gates.GateRun(dt.date(2026, 11, 2)).validate("trusted_stores", on_spark.to_pandas())
    assert [f["column"] for f in result.failed_critical] == ["opened_date"]
