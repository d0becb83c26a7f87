"""Bring-your-own-data CSV import into the source DB (crosschannel.sim.byod)."""

from __future__ import annotations

import datetime as dt

import pytest
import sqlalchemy as sa

from crosschannel.core import source
from crosschannel.sim import byod

ORDERS = """\
order_id,customer_id,order_ts,product_id,quantity,amount,store_id,channel
1001,1,2024-03-01 10:15:00,10,2,20.00,1,store
1001,1,2024-03-01 10:15:00,11,1,5.50,1,store
1002,2,2024-03-02T12:30:00+01:00,10,3,29.99,,WEB
"""
CUSTOMERS = """\
customer_id,first_name,last_name,email,phone,email_opt_in,sms_opt_in,loyalty_tier,home_store_id,signup_date
1,Ann,Lee,ann@example.com,+15550001,yes,0,Gold,1,2023-01-05
2,Bo,Park,,,false,TRUE,,,
3,Cy,Diaz,cy@example.com,,1,no,platinum,1,2022-06-30
"""


@pytest.fixture
def engine(tmp_path):
    engine = source.connect(f"sqlite:///{tmp_path}/src.db", create=True)
    source.create_schema(engine)
    return engine


def write(tmp_path, name: str, text: str) -> str:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return str(path)


def rows(engine, tbl: sa.Table) -> list[dict]:
    with engine.connect() as conn:
        return [dict(r._mapping) for r in conn.execute(sa.select(tbl).order_by(*tbl.primary_key.columns))]


def pick(records: list[dict], *keys: str) -> list[tuple]:
    return [tuple(record[key] for key in keys) for record in records]


def counts(engine) -> dict[str, int]:
    with engine.connect() as conn:
        tables = (*source.RETAIL_TABLES, source.cdc_clock)
        return {t.name: conn.execute(sa.select(sa.func.count()).select_from(t)).scalar() for t in tables}


def seed_catalogue(engine) -> None:
    ts = dt.datetime(2020, 1, 1)
    with engine.begin() as conn:
        conn.execute(source.stores.insert(), [{
            "store_id": 1, "name": "Main St", "city": "Salem", "region": "north", "opened_date": ts.date(),
            "updated_at": ts}])
        conn.execute(source.products.insert(), [{
            "product_id": pid, "sku": f"SKU-{pid}", "name": f"Thing {pid}", "category": "home",
            "brand": "acme", "price": 9.0, "active": True, "created_at": ts, "updated_at": ts}
            for pid in (10, 11)])


def test_orders_and_customers_are_loaded(tmp_path, engine):
    # Arrange
    seed_catalogue(engine)
    orders_csv = write(tmp_path, "orders.csv", ORDERS)
    customers_csv = write(tmp_path, "customers.csv", CUSTOMERS)

    # Act
    result = byod.import_csv(orders_csv, customers_csv, engine=engine)

    # Assert
    assert result == {"orders": 2, "order_lines": 3, "customers": 3, "placeholder_customers": 0,
                      "placeholder_products": 0, "placeholder_stores": 0, "sources_absent": ["events"]}
    customers = rows(engine, source.customers)
    assert customers[0] | {"updated_at": None} == {
        "customer_id": 1, "external_id": None, "first_name": "Ann", "last_name": "Lee", "email": "ann@example.com",
        "phone": "+15550001", "email_opt_in": True, "sms_opt_in": False, "loyalty_tier": "gold",
        "home_store_id": 1, "signup_date": dt.date(2023, 1, 5), "updated_at": None}
    assert pick(customers[1:], "email", "email_opt_in", "sms_opt_in", "loyalty_tier", "signup_date") == [
        (None, False, True, "none", dt.date(2024, 3, 2)), ("cy@example.com", True, False, "platinum",
                                                           dt.date(2022, 6, 30))]
    orders = rows(engine, source.orders)
    assert pick(orders, "order_id", "customer_id", "store_id", "channel", "status") == [
        (1001, 1, 1, "store", "completed"), (1002, 2, None, "web", "completed")]
    assert pick(orders, "subtotal", "discount", "total") == [(25.5, 0, 25.5), (29.99, 0, 29.99)]
    assert orders[1]["order_ts"] == orders[1]["updated_at"] == dt.datetime(2024, 3, 2, 11, 30)
    lines = rows(engine, source.order_lines)
    assert pick(lines, "order_id", "line_no", "product_id", "quantity", "unit_price", "discount") == [
        (1001, 1, 10, 2, 10.0, 0), (1001, 2, 11, 1, 5.5, 0), (1002, 1, 10, 3, 10.0, 0)]
    with engine.connect() as conn:
        assert source.get_clock(conn) == dt.datetime(2024, 3, 3)
        assert source.cdc_enabled(conn)  # every row is a change too, committed at its own time
        log = conn.execute(sa.select(source.cdc_log.c.op, source.cdc_log.c.commit_ts).where(
            source.cdc_log.c.table_name == "orders")).all()
    assert log == [("I", o["updated_at"]) for o in rows(engine, source.orders)]


def test_orders_only_gets_placeholders_and_generated_ids(tmp_path, engine):
    # Arrange: the DB already holds products 10 and 11, store 1, customer 7 and their order 500.
    seed_catalogue(engine)
    ts = dt.datetime(2024, 1, 1)
    with engine.begin() as conn:
        conn.execute(source.customers.insert(), [{
            "customer_id": 7, "first_name": "Di", "last_name": "Fox", "email_opt_in": False,
            "sms_opt_in": False, "loyalty_tier": "none", "signup_date": ts.date(), "updated_at": ts}])
        conn.execute(source.orders.insert(), [{
            "order_id": 500, "customer_id": 7, "channel": "web", "status": "completed", "order_ts": ts,
            "subtotal": 1.0, "discount": 0.0, "total": 1.0, "updated_at": ts}])
    orders_csv = write(tmp_path, "orders.csv", """\
customer_id,order_date,amount,product_id,quantity,store_id
7,2024-02-01,12.00,,,
8,2024-02-03,30.00,99,3,42
8,2024-02-03,10.00,99,1,42
8,2024-02-05,7.00,10,,
""")

    # Act
    result = byod.import_csv(orders_csv, engine=engine)

    # Assert
    assert result == {"orders": 3, "order_lines": 4, "customers": 0, "placeholder_customers": 1,
                      "placeholder_products": 2, "placeholder_stores": 1, "sources_absent": ["events", "contacts"]}
    orders = rows(engine, source.orders)
    assert pick(orders, "order_id", "customer_id", "store_id", "channel", "total") == [
        (500, 7, None, "web", 1.0), (501, 7, None, "web", 12.0), (502, 8, 42, "store", 40.0),
        (503, 8, None, "web", 7.0)]
    lines = rows(engine, source.order_lines)
    unknown = [p for p in rows(engine, source.products) if p["sku"] == "BYOD-UNKNOWN"]
    assert len(unknown) == 1 and unknown[0]["product_id"] == 100
    assert pick(unknown, "price", "category", "brand") == [(0, "unknown", "unknown")]
    assert pick(lines, "order_id", "line_no", "product_id", "quantity", "unit_price") == [
        (501, 1, 100, 1, 12.0), (502, 1, 99, 3, 10.0), (502, 2, 99, 1, 10.0), (503, 1, 10, 1, 7.0)]
    imported = next(p for p in rows(engine, source.products) if p["product_id"] == 99)
    assert pick([imported], "name", "price", "category") == [("Imported product 99", 10.0, "unknown")]
    store = next(s for s in rows(engine, source.stores) if s["store_id"] == 42)
    assert pick([store], "name", "city", "region") == [("Imported store 42", "unknown", "unknown")]
    customer = next(c for c in rows(engine, source.customers) if c["customer_id"] == 8)
    assert customer | {"updated_at": None} == {
        "customer_id": 8, "external_id": None, "first_name": "Unknown", "last_name": "Customer", "email": None,
        "phone": None,
        "email_opt_in": False, "sms_opt_in": False, "loyalty_tier": "none", "home_store_id": None,
        "signup_date": dt.date(2024, 2, 3), "updated_at": None}
    with engine.connect() as conn:
        assert source.get_clock(conn) == dt.datetime(2024, 2, 6)


HEADER = "order_id,customer_id,order_date,amount,quantity,channel\n"


@pytest.mark.parametrize(("line", "expected"), [
    ("2,,2024-03-01,5,1,web", "orders.csv line 3, column customer_id: value is empty"),
    ("2," + "C" * 65 + ",2024-03-01,5,1,web", "orders.csv line 3, column customer_id: 'CCCC" + "C" * 36 + "...' is "
     "too long (expected an id of at most 64 characters)"),
    ("2,2,,5,1,web", "orders.csv line 3, column order_date: value is empty"),
    ("2,2,01/03/2024,5,1,web", "orders.csv line 3, column order_date: '01/03/2024' is not an ISO date"),
    ("2,2,2024-02-30,5,1,web", "orders.csv line 3, column order_date: '2024-02-30' is not an ISO date"),
    ("2,2,2024-03-01,,1,web", "orders.csv line 3, column amount: value is empty"),
    ("2,2,2024-03-01,abc,1,web", "orders.csv line 3, column amount: 'abc' is not a number"),
    ("2,2,2024-03-01,-3.50,1,web",
     "orders.csv line 3, column amount: '-3.50' is negative (expected an amount >= 0)"),
    ("2,2,2024-03-01,5,0,web", "orders.csv line 3, column quantity: '0' is less than 1"),
    ("2,2,2024-03-01,5,1.5,web", "orders.csv line 3, column quantity: '1.5' is not a whole number"),
    ("2,2,2024-03-01,5,1,phone", "orders.csv line 3, column channel: 'phone' is not allowed"),
    ("1,2,2024-03-01,5,1,web",
     "orders.csv line 3, column customer_id: '2' differs from customer 1 on an earlier line of order_id 1"),
    ("2,2,2024-03-01,5,1", "orders.csv line 3: 5 fields (expected 6"),
])
def test_bad_order_lines_are_reported(tmp_path, engine, line, expected):
    # Arrange: line 2 is good, line 3 is the bad one.
    orders_csv = write(tmp_path, "orders.csv", HEADER + "1,1,2024-03-01,5,1,web\n" + line + "\n")

    # Act / Assert
    with pytest.raises(byod.CsvImportError) as error:
        byod.import_csv(orders_csv, engine=engine)
    assert str(error.value).startswith(expected)
    assert sum(counts(engine).values()) == 0


@pytest.mark.parametrize(("line", "expected"), [
    ("2,maybe,gold,2023-01-01", "customers.csv line 3, column email_opt_in: 'maybe' is not allowed"),
    ("2,no,diamond,2023-01-01", "customers.csv line 3, column loyalty_tier: 'diamond' is not allowed"),
    ("2,no,gold,soon", "customers.csv line 3, column signup_date: 'soon' is not an ISO date"),
    ("1,no,gold,2023-01-01", "customers.csv line 3, column customer_id: '1' appears on an earlier line"),
])
def test_bad_customer_lines_are_reported(tmp_path, engine, line, expected):
    # Arrange
    orders_csv = write(tmp_path, "orders.csv", HEADER + "1,1,2024-03-01,5,1,web\n")
    header = "customer_id,email_opt_in,loyalty_tier,signup_date\n"
    customers_csv = write(tmp_path, "customers.csv", header + "1,yes,none,2023-01-01\n" + line + "\n")

    # Act / Assert
    with pytest.raises(byod.CsvImportError) as error:
        byod.import_csv(orders_csv, customers_csv, engine=engine)
    assert str(error.value).startswith(expected)
    assert sum(counts(engine).values()) == 0


def test_line_numbers_count_blank_lines_and_problems_are_capped(tmp_path, engine):
    # Arrange: a blank line 3, then 12 negative amounts on lines 4-15.
    body = "1,1,2024-03-01,5,1,web\n\n" + "".join(f"{i},1,2024-03-01,-1,1,web\n" for i in range(2, 14))
    orders_csv = write(tmp_path, "orders.csv", HEADER + body)

    # Act
    with pytest.raises(byod.CsvImportError) as error:
        byod.import_csv(orders_csv, engine=engine)

    # Assert
    reported = str(error.value).splitlines()
    assert reported[0].startswith("orders.csv line 4, column amount: '-1' is negative")
    assert reported[9].startswith("orders.csv line 13, column amount")
    assert reported[10:] == ["and 2 more"]


@pytest.mark.parametrize(("content", "expected"), [
    (b"", "orders.csv: the file is empty"),
    (b"customer_id,order_date,amount\n", "orders.csv: no data lines after the header"),
    (b"customer_id,amount\n1,5\n",
     "orders.csv: missing required column(s) order_ts or order_date (found: customer_id, amount)"),
    (b"customer_id,order_date,amount\n1,2024-03-01,5\xa0\n", "orders.csv: not UTF-8 text"),
    (b"customer_id,amount,order_ts,amount\n1,5,2024-03-01,5\n", "orders.csv: column(s) amount appear twice"),
])
def test_unusable_files_are_reported(tmp_path, engine, content, expected):
    # Arrange
    path = tmp_path / "orders.csv"
    path.write_bytes(content)

    # Act / Assert
    with pytest.raises(byod.CsvImportError) as error:
        byod.import_csv(str(path), engine=engine)
    assert str(error.value).startswith(expected)


def test_missing_file_is_reported(tmp_path, engine):
    with pytest.raises(byod.CsvImportError, match=r"nope\.csv: file not found"):
        byod.import_csv(str(tmp_path / "nope.csv"), engine=engine)


def test_ids_already_in_the_db_fail_without_loading_anything(tmp_path, engine):
    # Arrange: a first import loads customer 1 and order 1001.
    byod.import_csv(write(tmp_path, "orders.csv", ORDERS), engine=engine)
    before = counts(engine)
    customers_csv = write(tmp_path, "customers.csv", CUSTOMERS)
    orders_csv = write(tmp_path, "more.csv", HEADER + "1001,1,2024-04-01,5,1,web\n77,9,2024-04-01,5,1,web\n")

    # Act
    with pytest.raises(byod.CsvImportError) as error:
        byod.import_csv(orders_csv, customers_csv, engine=engine)

    # Assert
    assert str(error.value).splitlines() == [
        "customers.csv line 2, column customer_id: '1' is already in the source DB "
        "(expected a customer id new to the DB)",
        "customers.csv line 3, column customer_id: '2' is already in the source DB "
        "(expected a customer id new to the DB)",
        "more.csv line 2, column order_id: '1001' is already in the source DB "
        "(expected an order id new to the DB)",
    ]
    assert counts(engine) == before


def test_a_failure_while_writing_leaves_the_db_empty(tmp_path, engine, monkeypatch):
    # Arrange: the last insert (order lines) fails.
    insert = source.bulk_insert

    def failing_insert(conn, tbl, frame):
        if tbl is source.order_lines:
            raise RuntimeError("disk full")
        return insert(conn, tbl, frame)

    monkeypatch.setattr(source, "bulk_insert", failing_insert)
    orders_csv = write(tmp_path, "orders.csv", ORDERS)

    # Act
    with pytest.raises(RuntimeError, match="disk full"):
        byod.import_csv(orders_csv, engine=engine)

    # Assert
    assert sum(counts(engine).values()) == 0


def test_a_second_import_reuses_the_unknown_product(tmp_path, engine):
    # Arrange
    header = "customer_id,order_ts,amount\n"
    byod.import_csv(write(tmp_path, "a.csv", header + "1,2024-03-01 09:00:00,5\n"), engine=engine)

    # Act
    result = byod.import_csv(write(tmp_path, "b.csv", header + "1,2024-03-02 09:00:00,6\n"), engine=engine)

    # Assert
    assert (result["placeholder_products"], result["placeholder_customers"]) == (0, 0)
    assert [line["product_id"] for line in rows(engine, source.order_lines)] == [1, 1]
    assert [o["order_id"] for o in rows(engine, source.orders)] == [1, 2]


def test_a_date_format_reads_day_first_dates_and_names_a_line_that_breaks_it(tmp_path, engine):
    orders_csv = write(tmp_path, "orders.csv", "customer_id,order_date,amount\n1,03/02/2024,12.00\n2,28/02/2024,5\n")
    customers_csv = write(tmp_path, "customers.csv", "customer_id,signup_date\n1,01/12/2023\n2,\n")

    byod.import_csv(orders_csv, customers_csv, engine=engine, date_format="%d/%m/%Y")

    assert pick(rows(engine, source.orders), "customer_id", "order_ts") == [
        (1, dt.datetime(2024, 2, 3)), (2, dt.datetime(2024, 2, 28))]
    assert pick(rows(engine, source.customers), "customer_id", "signup_date") == [
        (1, dt.date(2023, 12, 1)), (2, dt.date(2024, 2, 28))]

    other = write(tmp_path, "other.csv", "customer_id,order_date,amount\n5,2024-02-03,1\n")
    with pytest.raises(byod.CsvImportError, match=r"other\.csv line 2, column order_date: '2024-02-03' does not "
                                                  r"match --date-format %d/%m/%Y \(expected a date or time written "
                                                  r"as '%d/%m/%Y'"):
        byod.import_csv(other, engine=engine, date_format="%d/%m/%Y")


def test_text_ids_are_kept_as_external_ids_and_mapped_to_the_same_customer_on_every_import(tmp_path, engine):
    # Arrange: text ids, one with leading zeros; the customers file names one of them
    first = write(tmp_path, "orders.csv", "customer_id,order_date,amount\nC001,2024-03-01,5\n00042,2024-03-02,7\n"
                                          "C001,2024-03-03,9\n")
    people = write(tmp_path, "customers.csv", "customer_id,email,email_opt_in\nC001,a@example.com,yes\n")
    later = write(tmp_path, "later.csv", "customer_id,order_date,amount\nC001,2024-04-01,4\n7,2024-04-02,3\n")

    # Act
    byod.import_csv(first, people, engine=engine)
    byod.import_csv(later, engine=engine)

    # Assert: the DB's customer ids are its own; the retailer's ids are kept, and C001 is one customer throughout
    customers = {c["external_id"]: c for c in rows(engine, source.customers)}
    assert {k: v["customer_id"] for k, v in customers.items()} == {"C001": 1, "00042": 2, "7": 7}
    assert customers["C001"]["email"] == "a@example.com" and customers["7"]["first_name"] == "Unknown"
    assert pick(rows(engine, source.orders), "customer_id", "total") == [(1, 5), (2, 7), (1, 9), (1, 4), (7, 3)]

    with pytest.raises(byod.CsvImportError, match=r"customers\.csv line 2, column customer_id: 'C001' is already in"):
        byod.import_csv(write(tmp_path, "o2.csv", "customer_id,order_date,amount\nC001,2024-05-01,1\n"),
                        write(tmp_path, "customers.csv", "customer_id\nC001\n"), engine=engine)


def test_a_number_names_the_customer_it_spells_and_a_contact_is_never_an_id(tmp_path, engine):
    # Arrange: numeric ids first (customer ids), then a file mixing text and numbers
    byod.import_csv(write(tmp_path, "numbers.csv", "customer_id,order_date,amount\n1,2024-03-01,5\n2,2024-03-02,7\n"),
                    engine=engine)
    mixed = write(tmp_path, "mixed.csv", "customer_id,order_date,amount\nC1,2024-04-01,4\n2,2024-04-02,3\n")

    # Act
    byod.import_csv(mixed, engine=engine)

    # Assert: "2" is customer 2 still, not a new customer; "3" would now be ambiguous (customer 3 is C1)
    customers = pick(rows(engine, source.customers), "customer_id", "external_id")
    assert customers == [(1, None), (2, None), (3, "C1")]
    assert pick(rows(engine, source.orders), "customer_id", "total") == [(1, 5), (2, 7), (3, 4), (2, 3)]
    with pytest.raises(byod.CsvImportError, match=r"ambiguous\.csv line 3, column customer_id: '3' is the source DB's "
                                                  r"id of the customer whose own id is 'C1' \(expected"):
        byod.import_csv(write(tmp_path, "ambiguous.csv", "customer_id,order_date,amount\nC9,2024-05-01,1\n"
                                                           "3,2024-05-02,1\n"), engine=engine)
    contacts = write(tmp_path, "contacts.csv", "customer_id,order_date,amount\nann@example.com,2024-05-01,1\n"
                                               "+44 20 7946 0958,2024-05-02,1\n2024-001,2024-05-03,1\n"
                                               "(555) 123-4567,2024-05-03,1\n07700 900123,2024-05-03,1\n"
                                               "5550001111,2024-05-03,1\n00042,2024-05-03,1\n")
    people = write(tmp_path, "people.csv", "customer_id,phone\n00042,+1 555 000 1111\n")
    with pytest.raises(byod.CsvImportError) as refused:
        byod.import_csv(contacts, people, engine=engine)
    expected = ("expected the retailer's customer number: ids leave for Segment, Personalize and Customer Profiles "
                "whatever the customer's consent")
    assert str(refused.value).splitlines() == [
        *(f"contacts.csv line {n}, column customer_id: {v!r} looks like an email address or phone number ({expected})"
          for n, v in ((2, "ann@example.com"), (3, "+44 20 7946 0958"), (5, "(555) 123-4567"), (6, "07700 900123"))),
        f"contacts.csv line 7, column customer_id: '5550001111' is the email or phone of a customer in the customers "
        f"file ({expected})"]
    assert len(rows(engine, source.orders)) == 4


def test_a_whitespace_file_with_its_own_column_names_is_read_and_named_in_its_own_terms(tmp_path, engine):
    # Arrange: CDNOW's layout (public order log): fields aligned with spaces, its own names, dates as YYYYMMDD
    cdnow = write(tmp_path, "cdnow.txt", " customer_id date number_of_cds dollar_value\n 00001 19970101  1   11.77\n"
                                         " 00002 19970112  2   12.00\n\n 00002 1997011x  1   5.00\n")
    layout = {"date_format": "%Y%m%d", "delimiter": "whitespace",
              "columns": {"order_date": "date", "quantity": "number_of_cds", "amount": "dollar_value"}}

    # Act
    with pytest.raises(byod.CsvImportError) as refused:
        byod.import_csv(cdnow, engine=engine, **layout)
    cdnow = write(tmp_path, "cdnow.txt", (tmp_path / "cdnow.txt").read_text().replace("1997011x", "19970113"))
    result = byod.import_csv(cdnow, engine=engine, **layout)

    # Assert: the bad date is named by the file's own column and line (blank lines counted)
    assert str(refused.value).startswith("cdnow.txt line 5, column date: '1997011x' does not match --date-format")
    assert result["orders"] == 3 and result["sources_absent"] == ["events", "products", "stores", "contacts"]
    assert {c["external_id"] for c in rows(engine, source.customers)} == {"00001", "00002"}
    assert pick(rows(engine, source.order_lines), "quantity", "unit_price") == [(1, 11.77), (2, 6.0), (1, 5.0)]
    with pytest.raises(byod.CsvImportError, match=r"--columns amount=value: the file has no column 'value' \(found"):
        byod.import_csv(cdnow, engine=engine, **{**layout, "columns": {"amount": "value"}})


def test_before_loads_what_the_source_held_at_the_start_of_that_day(tmp_path, engine):
    # Arrange: A signed up early, B has no signup date and ordered before the day, C only after it, D signed up later
    orders = write(tmp_path, "orders.csv", "customer_id,order_date,amount\nA,2024-03-01,5\nB,2024-03-02,7\n"
                                           "B,2024-04-02,7\nC,2024-04-03,9\n")
    people = write(tmp_path, "customers.csv", "customer_id,signup_date\nA,2024-01-01\nB,\nC,\nD,2024-04-10\n")

    # Act
    result = byod.import_csv(orders, people, engine=engine, before=dt.date(2024, 4, 1))

    # Assert: nothing of April; C (no signup date, first order in April) is not a customer yet
    assert result["orders"] == 2 and result["customers"] == 2
    assert pick(rows(engine, source.customers), "external_id", "signup_date") == [
        ("A", dt.date(2024, 1, 1)), ("B", dt.date(2024, 3, 2))]


def test_an_imported_history_replays_day_by_day_as_the_source_was_on_each_day(tmp_path, engine, local_env):
    """The import is change history: with the clock set back, the local DMS full-loads what was committed by then,
    and each later row lands as a change of its own day; the trusted merge of a day is the source on that day."""
    from crosschannel.local import dms_task
    from crosschannel.stages.ingest import landing
    from crosschannel.stages.trusted import merge

    orders = write(tmp_path, "orders.csv", "customer_id,order_ts,amount\nA,2024-03-01 09:00,5\nB,2024-03-01 23:59,6\n"
                                           "A,2024-03-02 10:00,7\nC,2024-03-03 00:00,8\nB,2024-03-03 12:00,9\n")
    byod.import_csv(orders, engine=engine)
    task, held = dms_task.LocalReplicationTask(engine), rows(engine, source.orders)

    for day, start_type in ((dt.date(2024, 3, 1), "start-replication"), (dt.date(2024, 3, 2), "resume-processing"),
                            (dt.date(2024, 3, 3), "resume-processing")):
        end = dt.datetime.combine(day + dt.timedelta(days=1), dt.time())
        with engine.begin() as conn:
            source.set_clock(conn, end)  # the end of the day, as when DMS ran for it
        task.start(start_type, day)
        landing.check_landing(day, start_type)

        trusted = {name: merge.current_state(name, day).to_pylist() for name in ("orders", "customers")}
        assert sorted(o["order_id"] for o in trusted["orders"]) == [o["order_id"] for o in held
                                                                     if o["order_ts"] < end], day
        assert sorted(c["external_id"] for c in trusted["customers"]) == sorted(
            {c["external_id"] for c in rows(engine, source.customers) if c["signup_date"] < end.date()}), day
    assert len(trusted["orders"]) == 5 and landing_ops(day, "orders") == {"I": 2, "U": 0, "D": 0}


def landing_ops(day, table):
    from crosschannel.core import paths, storage

    manifest = storage.read_json(storage.resolve(paths.dms_manifest(day)) / "manifest.json")
    return manifest["tables"][table]["cdc_ops"]


def test_a_column_with_no_values_brings_no_source(tmp_path, engine):
    orders = write(tmp_path, "orders.csv", "customer_id,order_date,amount,product_id\nA,2024-03-01,5,\n"
                                           "B,2024-03-02,7,\n")
    people = write(tmp_path, "customers.csv", "customer_id,email,phone\nA,,\nB,b@example.com,\n")

    result = byod.import_csv(orders, people, engine=engine)

    assert result["sources_absent"] == ["events", "products", "stores"]  # contacts: B has an email


def test_a_replay_lands_each_customer_with_their_first_order_and_refuses_a_past_it_cannot_read(tmp_path, engine,
                                                                                              local_env):
    from crosschannel.core.errors import DataError
    from crosschannel.local import dms_task
    from crosschannel.stages.ingest import landing
    from crosschannel.stages.trusted import merge

    # Arrange: C2 signs up after the last order; C3's signup date is after their first order
    orders = write(tmp_path, "orders.csv", "customer_id,order_date,amount\nC1,2024-03-01,5\nC3,2024-03-05,7\n"
                                           "C1,2024-03-10,9\n")
    people = write(tmp_path, "customers.csv", "customer_id,signup_date\nC1,2024-02-01\nC2,2024-03-12\nC3,2024-03-20\n")
    byod.import_csv(orders, people, engine=engine)
    task = dms_task.LocalReplicationTask(engine)

    def run(day: dt.date, start_type: str, clock: dt.datetime | None = None) -> dict[str, list]:
        if clock:
            with engine.begin() as conn:
                source.set_clock(conn, clock)
        task.start(start_type, day)
        landing.check_landing(day, start_type)
        return {name: sorted(r[key] for r in merge.current_state(name, day).to_pylist())
                for name, key in (("customers", "external_id"), ("orders", "order_id"))}

    # Act / Assert: C3 arrives with their order, not at their later signup date; C2 once signed up
    with engine.connect() as conn:
        assert source.get_clock(conn) == dt.datetime(2024, 3, 13)  # after every row imported (C2 signed up last)
    assert run(dt.date(2024, 3, 1), "start-replication", dt.datetime(2024, 3, 2)) == {
        "customers": ["C1"], "orders": [1]}
    for day in range(2, 6):
        state = run(dt.date(2024, 3, day), "resume-processing", dt.datetime(2024, 3, day + 1))
    assert state == {"customers": ["C1", "C3"], "orders": [1, 2]}
    with engine.begin() as conn:  # an update after the clock: the tables no longer hold the earlier image
        conn.execute(sa.update(source.customers).where(source.customers.c.external_id == "C1").values(
            first_name="Ann", updated_at=dt.datetime(2024, 3, 25)))
    with pytest.raises(DataError, match=r"full load of 2024-03-06 as of 2024-03-07 00:00:00: the source DB holds "
                                        r"changes committed after that \(first: U on customers at 2024-03-25"):
        run(dt.date(2024, 3, 6), "reload-target", dt.datetime(2024, 3, 7))
    # a run for a later day reads the source as of that day's end at the earliest, whatever clock a replay left
    assert run(dt.date(2024, 3, 26), "reload-target", dt.datetime(2024, 3, 7)) == {
        "customers": ["C1", "C2", "C3"], "orders": [1, 2, 3]}


def test_backtest_outcomes_follow_each_models_spec(local_env, monkeypatch):
    """The outcomes after a cutoff come from `models.specs` (each label's window and what a 1 means), so a changed
    or added model is judged by its own definition, not by the two shipped ones."""
    import pandas as pd

    from crosschannel.core.config import get_config
    from crosschannel.sim import backtest

    cutoff = dt.date(2026, 3, 31)
    orders = pd.DataFrame({"customer_id": ["a", "b", "c", "a", "b"],
                           "order_ts": pd.to_datetime(["2026-01-05", "2026-02-01", "2026-03-30", "2026-04-20",
                                                       "2026-06-15"])})
    known, labels = backtest.outcomes(orders, cutoff)
    assert known == {"a", "b", "c"}
    assert labels == {"repurchase_30d": {"a": 1, "b": 0, "c": 0}, "churn_90d": {"a": 0, "b": 0, "c": 1}}
    assert backtest.outcome_days() == 90

    monkeypatch.setenv("CROSSCHANNEL__MODELS__SPECS", "{repurchase: {label: repurchase_30d, horizon_days: 30}, "
                                                       "lapse: {label: lapse_120d, horizon_days: 120, "
                                                       "positive: no_purchase}}")
    get_config.cache_clear()
    _, labels = backtest.outcomes(orders, cutoff)
    assert labels["lapse_120d"] == {"a": 0, "b": 0, "c": 1} and backtest.outcome_days() == 120
