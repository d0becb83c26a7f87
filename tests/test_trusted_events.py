"""Segment messages typed, deduplicated and stitched: include/sql/trusted/identity_map.sql and events.sql on
DuckDB and on Spark 3.5 with equal results."""

from __future__ import annotations

import datetime as dt
import functools
import gzip
import json

import pyarrow as pa
import pytest

from crosschannel.core import engines, sqljobs, storage
from crosschannel.core.config import Generator
from crosschannel.sim import generator
from crosschannel.stages.trusted.events import (
    IDENTITY_SCHEMA,
    USER_SCHEMA,
    empty_identities,
    type_day,
)


def _message(mid, kind, ts, user=None, anon=None, event=None, **props):
    message = {"messageId": mid, "type": kind, "timestamp": f"2026-11-02T{ts}Z", "receivedAt": f"2026-11-02T{ts}Z",
               "userId": user, "anonymousId": anon, "context": {"channel": "web"}, "properties": props}
    if event:
        message["event"] = event
    return message


MESSAGES = [
    _message("m1", "track", "10:00:00.000", anon="dev-a", event="Product Viewed", product_id=11, price=9.5),
    _message("m2", "identify", "10:05:00.000", user="7", anon="dev-a"),
    _message("m3", "track", "10:06:00.000", user="7", anon="dev-a", event="Order Completed", order_id="501",
             revenue=19.0),
    _message("m3", "track", "10:06:00.000", user="7", anon="dev-a", event="Order Completed", order_id="501",
             revenue=19.0),  # replayed
    _message("m4", "track", "11:00:00.000", anon="dev-b", event="Products Searched", query="shoes"),
    _message("m5", "track", "12:00:00.000", user="guest-1", anon="dev-c", event="Cart Viewed"),
    _message("m6", "identify", "13:00:00.000", user="6", anon="dev-d"),
]
PREVIOUS = pa.table({
    "anonymous_id": pa.array(["dev-b", "dev-d"], pa.string()),
    "customer_id": pa.array([9, 5], pa.int64()),
    "identified_at": pa.array([dt.datetime(2026, 10, 30, 8), dt.datetime(2026, 10, 31, 9)], pa.timestamp("us")),
})


def _lines(messages: list[dict]) -> pa.Table:
    """Messages as the SQL jobs read a landed day (`segment_lines`: one JSON text per line of a file)."""
    return pa.table({"line": pa.array([json.dumps(m) for m in messages], pa.string()),
                     "_file_seq": pa.array([0] * len(messages), pa.int64()),
                     "_row_seq": pa.array(range(len(messages)), pa.int64())})


def _messages() -> pa.Table:
    return _lines(MESSAGES)


def _rows(table: pa.Table, *columns: str) -> list[tuple]:
    return [tuple(row[c] for c in columns) for row in table.to_pylist()]


def test_identities_and_events_on_duckdb():
    identities, events = type_day(_messages(), PREVIOUS)

    assert _rows(identities, "anonymous_id", "customer_id") == [("dev-a", 7), ("dev-b", 9), ("dev-d", 6)]
    assert _rows(events, "message_id", "event_name", "customer_id", "stitched") == [
        ("m1", "Product Viewed", 7, True),  # anonymous before the identify, same day
        ("m2", "identify", 7, False),
        ("m3", "Order Completed", 7, False),  # the replayed copy counts once
        ("m4", "Products Searched", 9, True),  # a device identified on an earlier day
        ("m5", "Cart Viewed", None, False),  # a userId that is no customer id
        ("m6", "identify", 6, False),
    ]
    m3 = events.to_pylist()[2]
    assert m3["order_id"] == 501 and str(m3["revenue"]) == "19.00"
    assert events.to_pylist()[0]["event_ts"] == dt.datetime(2026, 11, 2, 10, 0)


def test_spark_gives_the_same_identities_and_events(spark):
    on_duckdb = type_day(_messages(), PREVIOUS)
    on_spark = type_day(_messages(), PREVIOUS, run=functools.partial(engines.run_spark, spark))

    for duck, spk in zip(on_duckdb, on_spark, strict=True):
        assert spk.to_pylist() == duck.to_pylist()


def test_user_ids_that_are_the_retailers_external_ids_name_their_customer_on_both_engines(spark):
    """A userId is the customer whose external_id it is (byod's text ids), else the customer id it spells exactly,
    unless that customer is known by an external id. Texts that engines cast differently spell no customer."""
    customers = pa.table({"customer_id": pa.array([7, 6, 42], pa.int64()),
                          "external_id": pa.array(["C7", None, "guest-1"], pa.string())})
    messages = _lines([*MESSAGES, _message("m7", "identify", "14:00:00.000", user="C7", anon="dev-e"),
                       *(_message(f"x{i}", "track", "15:00:00.000", user=user, event="Cart Viewed")
                         for i, user in enumerate(["06", "6.0", "6.4", "1e1", " 6", "0x6", "6_0"]))])

    on_duckdb = type_day(messages, PREVIOUS, customers=customers)
    on_spark = type_day(messages, PREVIOUS, run=functools.partial(engines.run_spark, spark), customers=customers)

    identities, events = on_duckdb
    assert _rows(identities, "anonymous_id", "customer_id") == [("dev-b", 9), ("dev-c", 42), ("dev-d", 6),
                                                                 ("dev-e", 7)]
    assert _rows(events, "message_id", "customer_id", "stitched") == [
        ("m1", None, False), ("m2", None, False), ("m3", None, False),  # "7" is not customer 7's id: C7 is
        ("m4", 9, True), ("m5", 42, False), ("m6", 6, False), ("m7", 7, False),
        *((f"x{i}", None, False) for i in range(7))]
    for duck, spk in zip(on_duckdb, on_spark, strict=True):
        assert spk.to_pylist() == duck.to_pylist()


def test_first_day_starts_from_an_empty_map():
    identities, events = type_day(_messages(), empty_identities())

    assert _rows(identities, "anonymous_id", "customer_id") == [("dev-a", 7), ("dev-d", 6)]
    assert _rows(events, "message_id", "customer_id")[3] == ("m4", None)


def test_generated_checkouts_are_attributed_to_the_buyer():
    settings = Generator(seed=3, customers=800, stores=5, products=60, history_days=30, event_history_days=1,
                         start_partition="2026-11-01")
    retailer = generator.Retailer.create(settings)
    changes, events = retailer.simulate_day(with_events=True, n_stores=settings.stores)
    _, typed = type_day(_lines(events), empty_identities())

    rows = typed.to_pylist()
    buyers = dict(zip(changes.inserts["orders"]["order_id"], changes.inserts["orders"]["customer_id"], strict=True))
    completed = [r for r in rows if r["event_name"] == "Order Completed"]
    assert completed and all(r["customer_id"] == buyers[r["order_id"]] for r in completed)
    assert len(rows) == len(events)
    assert any(r["stitched"] for r in rows)


def test_the_glue_script_runs_the_planned_jobs_from_the_landed_files_and_an_empty_first_day(spark, tmp_path):
    """include/glue/run_sql.py under local pyspark with the inputs the plan gives Glue: the landed gzip files (two,
    with a blank line), and on the first day an empty identity map made from its schema. Same rows as DuckDB over
    the local reader of the same files."""
    from tests.conftest import glue_script

    (tmp_path / "landed").mkdir()
    files = [tmp_path / "landed" / "a.gz", tmp_path / "landed" / "b.gz"]
    for file, part in zip(files, (MESSAGES[:3], MESSAGES[3:]), strict=True):
        file.write_bytes(gzip.compress(("\n".join(json.dumps(m) for m in part) + "\n \t\n").encode()))
    inputs = {"previous": {"format": "parquet", "paths": [], "schema": IDENTITY_SCHEMA},
              "segment_lines": sqljobs.json_lines([storage.location(f.as_uri()) for f in files]),
              "customers": {"format": "parquet", "paths": [], "schema": USER_SCHEMA}}
    lines = sqljobs.read_input("segment_lines", inputs["segment_lines"])
    assert lines.num_rows == len(MESSAGES) and lines.column("_file_seq").to_pylist() == [0, 0, 0, 1, 1, 1, 1]

    for name in ("identity_map", "events"):
        if name == "events":
            inputs["identities"] = sqljobs.parquet([storage.location((tmp_path / "identity_map").as_uri())])
        (tmp_path / f"{name}.sql").write_text(engines.render(f"trusted/{name}.sql"))
        args = glue_script().parse_args(["--sql_path", (tmp_path / f"{name}.sql").as_uri(), "--inputs",
                                         json.dumps(inputs), "--output_path", (tmp_path / name).as_uri()])
        glue_script().run(spark, args["sql_path"], args["inputs"], args["output_path"])

    identities, events = type_day(lines, empty_identities())
    written = {name: sqljobs.read_partition(storage.location((tmp_path / name).as_uri())).to_pylist()
               for name in ("identity_map", "events")}
    assert written["identity_map"] == identities.to_pylist() and len(identities) == 2
    assert written["events"] == sqljobs.in_stable_order(events).to_pylist() and len(events) == 6


def test_the_flattening_reads_json_values_and_zoned_times_alike_on_both_engines(spark):
    """Numbers stay their JSON text, an offset is applied (UTC out), a missing revenue falls back to total, what is
    not a time is none."""
    messages = [
        {**_message("z1", "track", "10:00:00.000", user="7", event="Order Completed", order_id=501, total=20.50,
                    price=1e2, quantity=2), "timestamp": "2026-11-02T12:00:00.250+02:00"},
        {**_message("z2", "track", "10:00:00.000", user="7", event="Product Viewed", product_id="11"),
         "timestamp": "2026-11-01T19:30:00-05:00"},
        {**_message("z3", "track", "10:00:00.000", user=7, event="Product Viewed"), "timestamp": "yesterday"},
    ]
    on_duckdb = type_day(_lines(messages), empty_identities())[1].to_pylist()
    on_spark = type_day(_lines(messages), empty_identities(), run=functools.partial(engines.run_spark, spark))[1]

    assert on_spark.to_pylist() == on_duckdb
    by_id = {row["message_id"]: row for row in on_duckdb}
    assert by_id["z1"]["event_ts"] == dt.datetime(2026, 11, 2, 10, 0, 0, 250000)
    assert str(by_id["z1"]["revenue"]) == "20.50" and str(by_id["z1"]["price"]) == "100.00"
    assert by_id["z1"]["order_id"] == 501 and by_id["z1"]["quantity"] == 2 and by_id["z1"]["customer_id"] == 7
    assert by_id["z2"]["event_ts"] == dt.datetime(2026, 11, 2, 0, 30) and by_id["z2"]["product_id"] == 11
    assert by_id["z3"]["event_ts"] is None and by_id["z3"]["customer_id"] == 7


def test_a_landed_line_that_is_not_utf8_names_its_file(tmp_path):
    bad = tmp_path / "bad.gz"
    bad.write_bytes(gzip.compress(json.dumps(MESSAGES[0]).encode() + b"\n" + b'{"messageId": "\xff"}\n'))

    with pytest.raises(sqljobs.SqlJobError, match=r"bad\.gz: a line is not UTF-8 text"):
        sqljobs.read_input("segment_lines", sqljobs.json_lines([storage.location(bad.as_uri())]))


def test_a_sql_job_naming_a_column_its_input_lacks_says_which_file_and_column(local_env, tmp_path):
    """A feature of models.features that the snapshots do not hold (or any column an input lacks) fails the job
    with the SQL file, its inputs and DuckDB's own words on the column, without retries, the output untouched."""
    day = dt.date(2026, 11, 2)
    folder = storage.location((tmp_path / "snapshot").as_uri())
    sqljobs.write_partition(folder, pa.table({"customer_id": [1, 2], "churn_90d": [0, 1]}))
    job = sqljobs.job(day, "churn_train_rows.sql", engines.render("models/training_rows.sql", label="churn_90d",
                      features=["recency_days"]), {"snapshots": sqljobs.parquet([folder])},
                      storage.location((tmp_path / "out").as_uri()), output_format="csv")

    with pytest.raises(sqljobs.SqlJobError, match=r"churn_train_rows\.sql: the SQL does not fit its inputs "
                                                  r'\(snapshots\): .*"s" does not have a column named "recency_days"'):
        sqljobs.run_local(job)
    assert not (tmp_path / "out").exists()


def test_a_columns_least_value_comes_from_the_parquet_footers_or_the_column(tmp_path):
    """sqljobs.column_min (the history start of the training split, read on the worker): from the row groups'
    statistics where every group has them, from the column where a writer left them out; nulls are not values."""
    import pyarrow.parquet as pq

    values = [None, dt.datetime(2025, 5, 10, 0, 30), dt.datetime(2024, 1, 2), None, dt.datetime(2026, 1, 1)]
    table = pa.table({"customer_id": list(range(5)), "first_order_ts": pa.array(values, pa.timestamp("us"))})
    for name, statistics in (("with", True), ("without", False)):
        folder = storage.location((tmp_path / name).as_uri())
        with storage.committing(folder) as staging, (staging / "part-00000.parquet").open("wb") as handle:
            pq.write_table(table, handle, row_group_size=2, write_statistics=statistics)
        assert sqljobs.column_min(folder, "first_order_ts") == dt.datetime(2024, 1, 2)
    empty = storage.location((tmp_path / "nulls").as_uri())
    sqljobs.write_partition(empty, table.set_column(1, "first_order_ts", pa.nulls(5, pa.timestamp("us"))))
    assert sqljobs.column_min(empty, "first_order_ts") is None
    with pytest.raises(sqljobs.SqlJobError, match="no column 'last_order_ts'"):
        sqljobs.column_min(empty, "last_order_ts")
