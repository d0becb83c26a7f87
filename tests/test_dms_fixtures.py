"""DMS's real S3 output (tests/dms_files.py, as AWS documents it) landed by the real landing check and merged by the
trusted stage's plan on both engines: DuckDB in the worker (crosschannel.core.sqljobs.run_local) and the Glue
script include/glue/run_sql.py under local pyspark. Five days: a full load (two LOAD files per table), CDC with
quotes, delimiters, line breaks, NULLs and empty strings in files named with 9 and 10 digits, each day's last
changes flushed after midnight into the next day's folder, a reload on the fourth day (fewer LOAD files than
before) and CDC after it. Every day's state is written out below, by hand."""

from __future__ import annotations

import datetime as dt
import json
from decimal import Decimal

import pytest

from crosschannel.core import dms, paths, sqljobs, storage
from crosschannel.stages.ingest import landing
from crosschannel.stages.trusted import merge
from tests.conftest import glue_script
from tests.dms_files import Change, DmsFiles

D1, D2, D3, D4, D5 = (dt.date(2026, 11, d) for d in range(1, 6))
T = dt.datetime


def store(store_id, name, city, region, opened, updated) -> dict:
    return {"store_id": store_id, "name": name, "city": city, "region": region, "opened_date": opened,
            "updated_at": updated}


def product(product_id, name, price, active, updated) -> dict:
    return {"product_id": product_id, "sku": f"SKU-{product_id}", "name": name, "category": "kitchen",
            "brand": "Acme", "price": price, "active": active, "created_at": "2026-01-01 08:00:00",
            "updated_at": updated}


def customer(customer_id, first, last, email, phone, tier, home, updated) -> dict:
    return {"customer_id": customer_id, "first_name": first, "last_name": last, "email": email, "phone": phone,
            "email_opt_in": "true", "sms_opt_in": "false", "loyalty_tier": tier, "home_store_id": home,
            "signup_date": "2024-01-01", "updated_at": updated}


def stock(store_id, product_id, on_hand, updated) -> dict:
    return {"store_id": store_id, "product_id": product_id, "on_hand": on_hand, "updated_at": updated}


S1 = store("1", 'Main St, "Flagship"', "Salem", "north", "2020-01-02", "2026-10-01 09:00:00")
S2 = store("2", "Harbour\nOutlet", "Dover", "south", "2021-03-04", "2026-10-01 09:00:00")
S3 = store("3", "Three", "Porto", "east", "2019-05-06", "2026-10-01 09:00:00")
P10 = product("10", '12" pan, non-stick', "19.90", "true", "2026-10-01 09:00:00")
P11 = product("11", "Mug", "5.00", "false", "2026-10-01 09:00:00")
C100 = customer("100", "Ann", "O'Neil", "ann@example.com", None, "gold", "1", "2026-10-01 09:00:00")
C101 = customer("101", "Bob", 'Smith "Bobby"', None, "", "none", None, "2026-10-01 09:00:00")  # '' lands as NULL
C103 = customer("103", "Cy", "Young", "cy@example.com", None, "none", None, "2026-11-03 23:40:00")


def day1(files: DmsFiles) -> None:
    """start-replication for 11-01, the task started at 00:05 on 11-02: one transfer time, two LOAD files a table."""
    files.full_load(T(2026, 11, 2, 0, 5), {"stores": [S1, S2, S3], "products": [P10, P11],
                                           "customers": [C100, C101]}, rows_per_file=2)


def day2(files: DmsFiles) -> None:
    """11-02's CDC: 10- and 9-digit names in its folder, its last hour flushed at 00:40 on 11-03 into 11-03's
    folder with 11-03's first change."""
    s1 = {**S1, "name": 'Main St, "Flagship"\r\nclosed Sundays', "updated_at": "2026-11-02 08:15:00"}
    s4 = store("4", 'Quay, "Old" Town', "Nice", "west", "2026-11-02", "2026-11-02 08:45:00")
    files.cdc_file("stores", T(2026, 11, 2, 9, 0, 0, 123400), [
        Change("U", T(2026, 11, 2, 8, 15, 0, 250000), s1), Change("D", T(2026, 11, 2, 8, 30), S3),
        Change("I", T(2026, 11, 2, 8, 45), s4)], digits=10)
    # one transaction's two images of store 4 cut into two files: the later file wins
    files.cdc_file("stores", T(2026, 11, 2, 15, 30, 0, 250000), [
        Change("U", T(2026, 11, 2, 15, 29), {**s4, "city": "First", "updated_at": "2026-11-02 15:29:00"})])
    files.cdc_file("stores", T(2026, 11, 2, 15, 30, 0, 260000), [
        Change("U", T(2026, 11, 2, 15, 29), {**s4, "city": "Zoë's", "updated_at": "2026-11-02 15:29:00"})],
        digits=10)
    files.cdc_file("customers", T(2026, 11, 2, 15, 30, 0, 250000), [
        Change("U", T(2026, 11, 2, 15), {**C101, "email": "bob@example.com", "updated_at": "2026-11-02 15:00:00"}),
        Change("I", T(2026, 11, 2, 15, 5), customer("102", "Lee", "Lee, Jr.", "", "+1 555 0100", "silver", "2",
                                                      "2026-11-02 15:05:00"))])
    files.cdc_file("inventory", T(2026, 11, 2, 15, 30, 0, 250000), [
        Change("I", T(2026, 11, 2, 15), stock("1", "10", "5", "2026-11-02 15:00:00")),
        Change("I", T(2026, 11, 2, 15, 1), stock("2", "11", "7", "2026-11-02 15:01:00"))])
    late = {**S2, "name": 'Late, "night"\nshift', "updated_at": "2026-11-02 23:30:00"}
    files.cdc_file("stores", T(2026, 11, 3, 0, 40, 0, 500000), [
        Change("U", T(2026, 11, 2, 23, 30), late),
        Change("U", T(2026, 11, 3, 0, 20), {**late, "region": "west", "updated_at": "2026-11-03 00:20:00"})])
    files.cdc_file("customers", T(2026, 11, 3, 0, 40, 0, 500000), [Change("D", T(2026, 11, 2, 23, 45), C100)])


def day3(files: DmsFiles) -> None:
    """11-03's CDC; the task stops at 11-04 00:00 and flushes 11-03's last changes at 00:30 into 11-04's folder:
    customer 103 opens at 23:40 (to be closed on 11-04, before the reload)."""
    files.cdc_file("inventory", T(2026, 11, 3, 12), [
        Change("U", T(2026, 11, 3, 11), stock("1", "10", "4", "2026-11-03 11:00:00"))], digits=10)
    files.cdc_file("products", T(2026, 11, 3, 12), [
        Change("U", T(2026, 11, 3, 11, 30), {**P11, "price": "6.50", "active": "true",
                                              "updated_at": "2026-11-03 11:30:00"})], digits=10)
    files.cdc_file("customers", T(2026, 11, 4, 0, 30), [Change("I", T(2026, 11, 3, 23, 40), C103)])
    files.cdc_file("stores", T(2026, 11, 4, 0, 30), [Change("U", T(2026, 11, 3, 23, 50), store(
        "4", "Quay", "Zoë's", "west", "2026-11-02", "2026-11-03 23:50:00"))])


RELOADED = {
    "stores": [store("1", "Reloaded", "Salem", "north", "2020-01-02", "2026-11-04 10:00:00"),
               {**S2, "name": 'Late, "night"\nshift', "region": "west", "updated_at": "2026-11-03 00:20:00"},
               store("4", "Quay", "Zoë's", "west", "2026-11-02", "2026-11-03 23:50:00")],
    "products": [P10, {**P11, "price": "6.50", "active": "true", "updated_at": "2026-11-03 11:30:00"}],
    "customers": [{**C101, "email": "bob@example.com", "phone": None, "updated_at": "2026-11-02 15:00:00"},
                  customer("102", "Lee", "Lee, Jr.", None, "+1 555 0100", "silver", "2", "2026-11-02 15:05:00")],
    "inventory": [stock("1", "10", "4", "2026-11-03 11:00:00"), stock("2", "11", "0", "2026-11-04 11:00:00")],
}


def day4(files: DmsFiles) -> None:
    """reload-target for 11-04, started at 00:05 on 11-05: the snapshot holds 11-04's changes (customer 103 closed,
    store 1 renamed, stock of product 11 sold out), which no CDC file carries; one LOAD file a table now."""
    files.full_load(T(2026, 11, 5, 0, 5), RELOADED, rows_per_file=5)


def day5(files: DmsFiles) -> None:
    """11-05's CDC after the reload; its last change flushed into 11-06's folder with one of 11-06."""
    files.cdc_file("stores", T(2026, 11, 5, 10, 30), [
        Change("I", T(2026, 11, 5, 10), store("5", "Five", "Lyon", "east", "2026-11-05", "2026-11-05 10:00:00"))],
        digits=10)
    files.cdc_file("products", T(2026, 11, 5, 10, 30), [Change("D", T(2026, 11, 5, 10, 5), P10)], digits=10)
    c102 = customer("102", "Lee", "Lee, Jr.", "lee@example.com", None, "silver", "2", "2026-11-05 10:10:00")
    files.cdc_file("customers", T(2026, 11, 5, 10, 30), [Change("U", T(2026, 11, 5, 10, 10), c102)], digits=10)
    c101 = {**RELOADED["customers"][0], "loyalty_tier": "silver", "updated_at": "2026-11-05 23:55:00"}
    files.cdc_file("customers", T(2026, 11, 6, 0, 25), [
        Change("U", T(2026, 11, 5, 23, 55), c101),
        Change("U", T(2026, 11, 6, 0, 10), {**c101, "loyalty_tier": "gold", "updated_at": "2026-11-06 00:10:00"})])


DAYS = [(D1, "start-replication", day1), (D2, "resume-processing", day2), (D3, "resume-processing", day3),
        (D4, "reload-target", day4), (D5, "resume-processing", day5)]


def d(text: str) -> dt.date:
    return dt.date.fromisoformat(text)


def ts(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text)


def stores(*rows) -> list[tuple]:
    return [(sid, name, city, region, d(opened), ts(updated)) for sid, name, city, region, opened, updated in rows]


def customers(*rows) -> list[tuple]:
    return [(cid, None, first, last, email, phone, True, False, tier, home, d("2024-01-01"), ts(updated))
            for cid, first, last, email, phone, tier, home, updated in rows]


def products(*rows) -> list[tuple]:
    return [(pid, f"SKU-{pid}", name, "kitchen", "Acme", Decimal(price), active, ts("2026-01-01 08:00:00"),
             ts(updated)) for pid, name, price, active, updated in rows]


def inventory(*rows) -> list[tuple]:
    return [(sid, pid, on_hand, ts(updated)) for sid, pid, on_hand, updated in rows]


FLAGSHIP = 'Main St, "Flagship"'
SUNDAYS = 'Main St, "Flagship"\r\nclosed Sundays'
LATE = 'Late, "night"\nshift'
ANN = (100, "Ann", "O'Neil", "ann@example.com", None, "gold", 1, "2026-10-01 09:00:00")
BOB = (101, "Bob", 'Smith "Bobby"', None, None, "none", None, "2026-10-01 09:00:00")
BOB_MAIL = (101, "Bob", 'Smith "Bobby"', "bob@example.com", None, "none", None, "2026-11-02 15:00:00")
LEE = (102, "Lee", "Lee, Jr.", None, "+1 555 0100", "silver", 2, "2026-11-02 15:05:00")
CY = (103, "Cy", "Young", "cy@example.com", None, "none", None, "2026-11-03 23:40:00")
MUG = (11, "Mug", "5.00", False, "2026-10-01 09:00:00")
MUG_UP = (11, "Mug", "6.50", True, "2026-11-03 11:30:00")
PAN = (10, '12" pan, non-stick', "19.90", True, "2026-10-01 09:00:00")
QUAY = (4, "Quay", "Zoë's", "west", "2026-11-02", "2026-11-03 23:50:00")
STORE2_WEST = (2, LATE, "Dover", "west", "2021-03-04", "2026-11-03 00:20:00")

EXPECTED = {
    D1: {"stores": stores((1, FLAGSHIP, "Salem", "north", "2020-01-02", "2026-10-01 09:00:00"),
                          (2, "Harbour\nOutlet", "Dover", "south", "2021-03-04", "2026-10-01 09:00:00"),
                          (3, "Three", "Porto", "east", "2019-05-06", "2026-10-01 09:00:00")),
         "products": products(PAN, MUG), "customers": customers(ANN, BOB), "inventory": []},
    D2: {"stores": stores((1, SUNDAYS, "Salem", "north", "2020-01-02", "2026-11-02 08:15:00"),
                          (2, LATE, "Dover", "south", "2021-03-04", "2026-11-02 23:30:00"),
                          (4, 'Quay, "Old" Town', "Zoë's", "west", "2026-11-02", "2026-11-02 15:29:00")),
         "products": products(PAN, MUG), "customers": customers(BOB_MAIL, LEE),
         "inventory": inventory((1, 10, 5, "2026-11-02 15:00:00"), (2, 11, 7, "2026-11-02 15:01:00"))},
    D3: {"stores": stores((1, SUNDAYS, "Salem", "north", "2020-01-02", "2026-11-02 08:15:00"), STORE2_WEST, QUAY),
         "products": products(PAN, MUG_UP), "customers": customers(BOB_MAIL, LEE, CY),
         "inventory": inventory((1, 10, 4, "2026-11-03 11:00:00"), (2, 11, 7, "2026-11-02 15:01:00"))},
    D4: {"stores": stores((1, "Reloaded", "Salem", "north", "2020-01-02", "2026-11-04 10:00:00"), STORE2_WEST, QUAY),
         "products": products(PAN, MUG_UP), "customers": customers(BOB_MAIL, LEE),
         "inventory": inventory((1, 10, 4, "2026-11-03 11:00:00"), (2, 11, 0, "2026-11-04 11:00:00"))},
    D5: {"stores": stores((1, "Reloaded", "Salem", "north", "2020-01-02", "2026-11-04 10:00:00"), STORE2_WEST, QUAY,
                          (5, "Five", "Lyon", "east", "2026-11-05", "2026-11-05 10:00:00")),
         "products": products(MUG_UP),
         "customers": customers((*BOB_MAIL[:5], "silver", None, "2026-11-05 23:55:00"),
                                (102, "Lee", "Lee, Jr.", "lee@example.com", None, "silver", 2, "2026-11-05 10:10:00")),
         "inventory": inventory((1, 10, 4, "2026-11-03 11:00:00"), (2, 11, 0, "2026-11-04 11:00:00"))},
}


@pytest.fixture
def glue_job():
    """include/glue/run_sql.py loaded as Glue runs it (its `run()` takes a SparkSession)."""
    return glue_script()


def _rows(output_path: str) -> list[tuple]:
    return [tuple(row.values()) for row in sqljobs.read_partition(storage.location(output_path)).to_pylist()]


def merged(day: dt.date, spark=None, glue_job=None) -> dict[str, dict[str, list[tuple]]]:
    """Every mapped table's state at `day` as the trusted plan merges it: {engine: {table: rows}}."""
    states: dict[str, dict[str, list[tuple]]] = {"duckdb": {}}
    for table, job in zip(dms.mapped_tables(), merge.plan_merge(day, run="duckdb"), strict=True):
        sqljobs.run_local(job)
        states["duckdb"][table] = _rows(job["--output_path"])
    if spark is not None:
        states["glue"] = {}
        for table, job in zip(dms.mapped_tables(), merge.plan_merge(day, run="glue"), strict=True):
            glue_job.run(spark, job["--sql_path"], json.loads(job["--inputs"]), job["--output_path"])
            states["glue"][table] = _rows(job["--output_path"])
    return states


def expected(day: dt.date) -> dict[str, list[tuple]]:
    return {name: EXPECTED[day].get(name, []) for name in dms.mapped_tables()}


def test_the_builder_writes_what_dms_documents(local_env):
    """The bytes of a LOAD and a CDC file: header, Op, the timestamp column, RFC 4180 quoting with doubled quotes,
    delimiters and line breaks, NULL and the empty string as the empty field (CsvNullValue ''), and DMS's names."""
    files = DmsFiles()
    day1(files)
    day2(files)

    folder = paths.dms_landing() / "stores"
    assert sorted(p.name for p in folder.glob("LOAD*.csv")) == ["LOAD00000001.csv", "LOAD00000002.csv"]
    assert (folder / "LOAD00000001.csv").read_bytes() == (
        b"Op,dms_commit_ts,store_id,name,city,region,opened_date,updated_at\n"
        b'I,2026-11-02 00:05:00.000000,1,"Main St, ""Flagship""",Salem,north,2020-01-02,2026-10-01 09:00:00\n'
        b'I,2026-11-02 00:05:00.000000,2,"Harbour\nOutlet",Dover,south,2021-03-04,2026-10-01 09:00:00\n')
    assert (paths.dms_landing() / "customers" / "LOAD00000001.csv").read_text().splitlines()[2] == \
        'I,2026-11-02 00:05:00.000000,101,,Bob,"Smith ""Bobby""",,,true,false,none,,2024-01-01,2026-10-01 09:00:00'
    assert sorted(str(p.relative_to(folder.path)) for p in folder.glob("*/*/*/*.csv")) == [
        "2026/11/02/20261102-0900001234.csv", "2026/11/02/20261102-153000250.csv",
        "2026/11/02/20261102-1530002600.csv", "2026/11/03/20261103-004000500.csv"]
    assert (folder / "2026/11/02/20261102-0900001234.csv").read_bytes().splitlines(keepends=True)[1:3] == [
        b'U,2026-11-02 08:15:00.250000,1,"Main St, ""Flagship""\r\n',
        b'closed Sundays",Salem,north,2020-01-02,2026-11-02 08:15:00\n']


def test_a_reload_leaves_out_the_last_changes_flushed_before_it(local_env):
    """Defect: on a reload day, the day before's last changes, flushed after midnight into the day's folder, were
    applied over the reload's LOAD files. A key they hold that was deleted before the reload came back (customer
    103, opened at 23:40 on 11-03 and closed on 11-04: the reload started at 00:05 on 11-05 no longer has it).
    Those changes are in the LOAD files already; the reload day's manifest leaves their file out."""
    files = DmsFiles()
    for day, start_type, write in DAYS[:4]:
        write(files)
        landing.check_landing(day, start_type)

    assert merge.current_state("customers", D4).column("customer_id").to_pylist() == [101, 102]
    manifest = storage.read_json(storage.resolve(paths.dms_manifest(D4)) / "manifest.json")
    assert manifest["tables"]["customers"]["cdc_files"] == []
    d3 = storage.read_json(storage.resolve(paths.dms_manifest(D3)) / "manifest.json")
    assert d3["tables"]["customers"]["cdc_files"] == ["2026/11/03/20261103-004000500.csv",
                                                      "2026/11/04/20261104-003000000.csv"]
    assert merge.current_state("customers", D3).column("customer_id").to_pylist() == [101, 102, 103]


def test_dms_files_land_and_merge_to_the_same_correct_state_on_duckdb_and_glue(local_env, spark, glue_job):
    """Day by day as DMS writes them: each day lands, then both engines merge every mapped table (from the day
    before's published state when it can, `merge.base_day`); both give the state written above. After the reload,
    the days before it still give their own state."""
    files = DmsFiles()
    incremental = {}
    for day, start_type, write in DAYS:
        write(files)
        landing.check_landing(day, start_type)
        incremental[day] = merge.base_day(day) is not None
        states = merged(day, spark, glue_job)
        assert states["duckdb"] == states["glue"], day
        assert states["duckdb"] == expected(day), day
        for table in dms.mapped_tables():  # published, as the gate does: the next day's merge starts from it
            storage.promote(paths.candidate(table, day, run="duckdb"), paths.trusted(table, day))
    # from the published day before, except on a full load's day (11-01, the reload of 11-04)
    assert incremental == {D1: False, D2: True, D3: True, D4: False, D5: True}

    for day in (D2, D3):  # history holds after the reload: the kept full load of 11-01 and its CDC
        landing.check_landing(day, "resume-processing")
        # 11-02 from 11-01's state; 11-03 from the full load, 11-02 having landed again after its state was published
        assert (merge.base_day(day) is not None) == (day == D2)
        assert merged(day)["duckdb"] == expected(day), day


def test_a_day_merges_from_the_full_load_when_the_state_before_lacks_a_column(local_env):
    """A column added to the source since the day before was published: that state cannot be the base."""
    files = DmsFiles()
    for day, start_type, write in DAYS[:2]:
        write(files)
        landing.check_landing(day, start_type)
    for table in dms.mapped_tables():
        sqljobs.write_partition(paths.trusted(table, D1), merge.current_state(table, D1))
    assert merge.base_day(D2) == D1

    sqljobs.write_partition(paths.trusted("stores", D1), merge.current_state("stores", D1).drop_columns(["region"]))
    assert merge.base_day(D2) is None
    assert merged(D2)["duckdb"] == expected(D2)
