"""Amazon Personalize's import files: SQL jobs (include/sql/activation/personalize_csv.sql and _checks.sql) that write
each dataset's CSV and judge it against its schema where the rows are, byte-identical on DuckDB and on the Glue
script's Spark; the worker reads the checks' few rows and copies the file."""

from __future__ import annotations

import csv
import datetime as dt
import decimal
import io

import pyarrow as pa
import pytest

from crosschannel.core import paths, sqljobs, storage
from crosschannel.stages.activation import outbox, personalize
from crosschannel.stages.activation.outbox import PERSONALIZE, ActivationError
from tests.test_models import _run

DAY = dt.date(2026, 11, 3)
NOON = dt.datetime(2026, 11, 3, 12)


def write_datasets(day: dt.date, tables: dict[str, pa.Table], mode: str = "FULL", spark=None, run: str = "run") -> None:
    """What plan_personalize and the build_personalize jobs leave for the run's export: the modes, and each dataset's
    file and checks, from `tables` (a dataset's rows as its SQL returns them) instead of the trusted zone."""
    storage.write_json(personalize.run_folder(day, run) / "modes.json", dict.fromkeys(tables, mode))
    for name, table in tables.items():
        given = paths.activation(PERSONALIZE, day, "given", name)
        sqljobs.write_partition(given, table)
        _run(personalize.file_jobs(day, run, name, "SELECT * FROM given", {"given": sqljobs.parquet([given])}), spark)


def money(*values) -> pa.Array:
    return pa.array([None if v is None else decimal.Decimal(str(v)) for v in values], pa.decimal128(18, 2))


def interactions(users: int, per_user: int, *, stamp: dt.datetime = NOON) -> pa.Table:
    n = users * per_user
    return pa.table({"USER_ID": [str(u) for u in range(users) for _ in range(per_user)], "ITEM_ID": ["1"] * n,
                     "TIMESTAMP": pa.array([stamp] * n, pa.timestamp("us")), "EVENT_TYPE": ["view"] * n,
                     "EVENT_VALUE": money(*[1] * n)})


def _checks(table: pa.Table, dataset: str = "interactions") -> dict:
    write_datasets(DAY, {dataset: table})
    return personalize.read_checks(DAY, "run", dataset)


def _file(day: dt.date, dataset: str, run: str = "run") -> bytes:
    (data,) = storage.resolve(personalize.run_folder(day, run) / "files" / dataset).glob("part-*")
    return data.read_bytes()


def test_personalize_minimum_data_is_enforced_with_a_clear_error(local_env):
    with pytest.raises(ActivationError, match=r"999 interaction\(s\), Amazon Personalize needs >= 1,000"):
        personalize.check_minimum("interactions", _checks(interactions(999, 1)), "FULL", DAY)
    with pytest.raises(ActivationError, match=r"24 user\(s\) with >= 2 interactions"):
        personalize.check_minimum("interactions", _checks(pa.concat_tables([interactions(24, 2),
                                                                            interactions(1000, 1)])), "FULL", DAY)
    with pytest.raises(ActivationError, match="new records"):
        personalize.check_minimum("interactions", _checks(interactions(10, 50)), "INCREMENTAL", DAY)

    assert _checks(interactions(25, 40)) == {"rows": 1000, "users": 25, "bad": {}, "type": {}}
    personalize.check_minimum("interactions", _checks(interactions(25, 40)), "FULL", DAY)
    personalize.check_minimum("interactions", _checks(interactions(1000, 1)), "INCREMENTAL", DAY)


def test_too_little_personalize_data_fails_a_send_but_not_a_backfill(local_env):
    write_datasets(DAY, {
        "interactions": interactions(7, 6),
        "items": pa.table({"ITEM_ID": ["1"], "CATEGORY": ["shoes"], "BRAND": ["b"], "PRICE": money(9.5),
                           "CREATION_TIMESTAMP": pa.array([dt.datetime(2025, 1, 1)], pa.timestamp("us")),
                           "STOCK_LOCATIONS": ["S1|S4|ONLINE"]}),
        "users": pa.table({"USER_ID": ["1"], "LOYALTY_TIER": ["gold"], "CHURN_DECILE": ["3"],
                           "REPURCHASE_DECILE": ["9"]})})

    send = {"send": True, "reason": "the newest partition", "force": False, "attempt": "a1"}
    with pytest.raises(outbox.DestinationNotReady, match="42 interaction"):
        personalize.export_personalize(DAY, send, "run")

    built = _file(DAY, "interactions")
    backfill = {"send": False, "reason": "a backfill", "force": False, "attempt": "a2"}
    assert personalize.export_personalize(DAY, backfill, "run") == []
    assert not personalize.run_folder(DAY, "run").exists()  # the run's working files, once planned
    receipt = storage.read_json(paths.delivery("personalize", DAY, "a2", "outbox", "interactions.json"))["receipt"]
    assert receipt["status"] == "not sent" and "Amazon Personalize needs >= 1,000" in receipt["reason"]
    csv_file = paths.delivery("personalize", DAY, "a2", "interactions") / "part-00000.csv"
    assert csv_file.read_bytes() == built  # the job's file, copied
    header, first = csv_file.read_text().splitlines()[:2]
    assert header == "USER_ID,ITEM_ID,TIMESTAMP,EVENT_TYPE,EVENT_VALUE"
    assert first == f"0,1,{int(NOON.replace(tzinfo=dt.UTC).timestamp())},view,1.0"
    assert not (csv_file.parent / storage.MARKER).exists()  # Personalize imports every object of a folder


@pytest.mark.parametrize(("column", "value", "problem"), [
    ("TIMESTAMP", 1_793_750_400_000, r"TIMESTAMP \(long\): 1 row\(s\), e\.g\. \['1793750400000'\]"),  # ms as s
    ("USER_ID", None, r"USER_ID \(string\): 1 row\(s\), e\.g\. \[None\]"),  # not nullable
    ("ITEM_ID", "x" * 257, r"ITEM_ID \(string\): 1 row\(s\), e\.g\. \['x{60}\.\.\.'\]"),  # over 256 characters
    ("EVENT_VALUE", float("inf"), r"EVENT_VALUE \(float\): the SQL gives double, expected a DECIMAL"),
    ("EVENT_VALUE", 2e15, r"EVENT_VALUE \(float\): 1 row\(s\), e\.g\. \['2000000000000000\.00'\]"),  # no money
    ("EVENT_TYPE", "", r"EVENT_TYPE \(string\): 1 row\(s\), e\.g\. \[''\]"),  # empty: Personalize reads no value
])
def test_a_personalize_csv_that_breaks_its_schema_is_refused_before_anything_is_written(local_env, column, value,
                                                                                        problem):
    """Issue 13: the CSVs handed to Personalize are checked against their Avro schemas (types, nullability, epoch
    seconds, id lengths), not only their header; the checks are a SQL job's, the worker reads its findings."""
    good = interactions(2, 1)
    personalize.check_contract("interactions", _checks(good))  # the good rows pass
    if column == "TIMESTAMP":  # past Python's datetime: set as microseconds
        stamps = good.column(column).cast(pa.int64()).to_pylist()
        values = pa.array([stamps[0], value * 1_000_000], pa.int64()).cast(pa.timestamp("us"))
    elif value == float("inf"):  # a DOUBLE column: no decimal holds it
        values = pa.array([1.0, value], pa.float64())
    else:
        values = pa.array([good.column(column)[0].as_py(), value if column != "EVENT_VALUE" else decimal.Decimal(
            str(int(value)))], good.schema.field(column).type)
    bad = good.set_column(good.schema.get_field_index(column), column, values)

    with pytest.raises(ActivationError, match=problem):
        personalize.check_contract("interactions", _checks(bad))
    write_datasets(DAY, {"interactions": bad})
    with pytest.raises(ActivationError, match=problem):
        personalize.export_personalize(DAY, {"send": True, "reason": "r", "force": False, "attempt": "a9"}, "run")
    assert not paths.delivery(PERSONALIZE, DAY, "a9", "interactions").exists()


def test_a_stock_list_over_personalizes_categorical_limit_is_refused(local_env):
    stores = "|".join(f"S{n}" for n in range(1001, 1201))  # 200 stores: 1,199 characters
    table = pa.table({"ITEM_ID": ["1", "2"], "CATEGORY": ["toys", "toys"], "BRAND": ["b", "b"],
                      "PRICE": money(9.5, 9.5), "CREATION_TIMESTAMP": pa.array([NOON] * 2, pa.timestamp("us")),
                      "STOCK_LOCATIONS": ["S1|ONLINE", stores]})
    with pytest.raises(ActivationError, match=r"STOCK_LOCATIONS \(null/string\): 1 row\(s\)"):
        personalize.check_contract("items", _checks(table, "items"))


AWKWARD = ["plain", "a,b", 'say "hi"', "two\nlines", "cr\rhere", "", "Ünïcödé ✓", " padded ", None]


def _items() -> pa.Table:
    """Items whose values need every rule of the CSV: quoting, empty and null, cents, sub-second times."""
    n = len(AWKWARD)
    prices = ["59.90", "60.00", "0.05", "-3.10", "1234567.89", "0.00", "19.99", "100.50", None]
    return pa.table({
        "ITEM_ID": [f"sku-{i % 4}" for i in range(n)],  # repeated: later fields order the rows
        "CATEGORY": AWKWARD, "BRAND": list(reversed(AWKWARD)),
        "PRICE": money(*prices),
        "CREATION_TIMESTAMP": pa.array([dt.datetime(2026, 1, 5, 10, 0, 0, 999_999 - i) for i in range(n)],
                                       pa.timestamp("us")),
        "STOCK_LOCATIONS": ["S1|ONLINE", "", None, "S2", "S1", "ONLINE", "S3|S4", "", "S9"],
    })


def _as_python_writes(table: pa.Table) -> bytes:
    """The file as the export wrote it before it was a SQL job: pandas' CSV of the rows sorted by every field,
    timestamps as epoch seconds (rounded down), floats as Python prints them; but a line break in a value is now a
    space (Personalize wants each record on one line; the worker's CSV quoted it over two lines)."""
    rows = []
    for row in table.to_pylist():
        row = {k: v.replace("\r", " ").replace("\n", " ") if isinstance(v, str) else v for k, v in row.items()}
        stamp = int(row["CREATION_TIMESTAMP"].replace(tzinfo=dt.UTC).timestamp() // 1)
        price = None if row["PRICE"] is None else float(row["PRICE"])
        rows.append([row["ITEM_ID"], row["CATEGORY"], row["BRAND"], price, stamp, row["STOCK_LOCATIONS"]])
    rows.sort(key=lambda r: [(v is None, v if v is not None else 0) for v in r])
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(table.column_names)
    writer.writerows([["" if v is None else repr(v) if isinstance(v, float) else v for v in r] for r in rows])
    return out.getvalue().encode()


def test_the_import_file_is_the_same_bytes_on_spark_and_as_python_writes_it(local_env, spark):
    """Issue 15: the Personalize file is written where the rows are; DuckDB (local) and the Glue script's Spark
    write the same bytes, which are the CSV the worker wrote before (Python's csv module over the sorted rows) but
    for line breaks in values, now spaces."""
    table = _items()
    found = {}
    for engine in ("duckdb", "spark"):
        write_datasets(DAY, {"items": table}, spark=spark if engine == "spark" else None)
        found[engine] = _file(DAY, "items")

    assert found["spark"] == found["duckdb"]
    assert found["duckdb"] == _as_python_writes(table)
    assert found["duckdb"].count(b"\n") == len(AWKWARD) + 1 and b"\r" not in found["duckdb"]  # a record per line
    parsed = list(csv.reader(io.StringIO(found["duckdb"].decode(), newline="")))
    assert sorted(r[1] for r in parsed[1:]) == sorted("" if v is None else v.replace("\n", " ").replace("\r", " ")
                                                      for v in AWKWARD)
    assert {r[3] for r in parsed[1:]} == {"59.9", "60.0", "0.05", "-3.1", "1234567.89", "0.0", "19.99", "100.5", ""}
    assert len({r[4] for r in parsed[1:]}) == 1  # the sub-second times are one epoch second


def test_the_checks_are_the_same_on_spark(local_env, spark):
    rows = interactions(30, 2).to_pylist()
    rows[3]["USER_ID"], rows[5]["ITEM_ID"], rows[7]["EVENT_VALUE"] = None, "y" * 300, decimal.Decimal("5e15")
    rows[9]["TIMESTAMP"] = dt.datetime(1999, 12, 31, 23, 59, 59)
    table = pa.Table.from_pylist(rows, schema=interactions(1, 1).schema)
    found = {}
    for engine in ("duckdb", "spark"):
        write_datasets(DAY, {"interactions": table}, spark=spark if engine == "spark" else None)
        found[engine] = personalize.read_checks(DAY, "run", "interactions")

    duck, sparked = found["duckdb"], found["spark"]
    assert sparked == duck
    assert duck["rows"] == 60 and duck["users"] == 29  # user 1 keeps one row (the other is a null's)
    assert duck["bad"] == {"ITEM_ID": (1, ["y" * 300]), "TIMESTAMP": (1, ["946684799"]), "USER_ID": (1, [None]),
                           "EVENT_VALUE": (1, ["5000000000000000.00"])}


def test_two_runs_of_a_day_export_their_own_file_checks_and_modes(local_env):
    """A backfill beside the scheduled run of the same day: each run's export reads the file, checks and modes its
    own jobs wrote, never the other's (a FULL import of a one-day file would wipe Personalize's history)."""
    write_datasets(DAY, {"interactions": interactions(40, 30)}, mode="FULL", run="scheduled")
    write_datasets(DAY, {"interactions": interactions(1000, 1)}, mode="INCREMENTAL", run="backfill")

    scheduled, backfill = _file(DAY, "interactions", "scheduled"), _file(DAY, "interactions", "backfill")
    (plan,) = personalize.export_personalize(DAY, {"send": True, "reason": "r", "force": True, "attempt": "a1"},
                                             "scheduled")

    assert plan["mode"] == "FULL" and plan["records"] == 1200
    assert storage.location(plan["files"][0]).read_bytes() == scheduled != backfill
    assert _file(DAY, "interactions", "backfill") == backfill  # the other run's files untouched


def test_a_model_without_a_decile_field_in_the_users_schema_is_refused(local_env, monkeypatch):
    """personalize_users.sql gives a decile per configured model; a schema without one (a model added, the schema
    not) is refused before any job runs, instead of the file silently lacking the new model's decile."""
    real = personalize.schema

    def users_without_repurchase(dataset: str) -> dict:
        found = real(dataset)
        if dataset == "users":
            found["fields"] = [f for f in found["fields"] if f["name"] != "REPURCHASE_DECILE"]
        return found

    monkeypatch.setattr(personalize, "schema", users_without_repurchase)
    with pytest.raises(ActivationError, match=r"gives the deciles \['CHURN_DECILE', 'REPURCHASE_DECILE'\], "
                                              r"include/personalize/users\.json declares \['CHURN_DECILE'\]"):
        personalize.plan_personalize(DAY, True, "run")
