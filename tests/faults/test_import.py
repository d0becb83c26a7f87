"""Reported faults of the bring-your-own-data CSV import (crosschannel.sim.byod), one test per case."""

from __future__ import annotations

import datetime as dt

import pytest
import sqlalchemy as sa

from crosschannel.core import dms, source
from crosschannel.sim import byod
from tests.test_byod import CUSTOMERS, ORDERS, counts, engine, rows, seed_catalogue, write  # noqa: F401

NO_IDS = "customer_id,order_ts,amount\n"


def refused(orders_csv: str, customers_csv: str | None, engine) -> str:  # noqa: F811
    """The CsvImportError message of an import that must write nothing."""
    before = counts(engine)
    with pytest.raises(byod.CsvImportError) as error:
        byod.import_csv(orders_csv, customers_csv, engine=engine)
    assert counts(engine) == before
    return str(error.value)


def today() -> str:
    return f"{dt.datetime.now(dt.UTC):%Y-%m-%d}"


def test_importing_the_same_file_twice_is_refused(tmp_path, engine):  # noqa: F811
    """Fault: importing the same orders CSV (no order_id) twice duplicated its orders, both imports exiting 0."""
    # Arrange
    orders_csv = write(tmp_path, "orders.csv", NO_IDS + "1,2024-03-01 09:00:00,5\n2,2024-03-02 10:00:00,7.5\n")
    byod.import_csv(orders_csv, engine=engine)

    # Act
    message = refused(orders_csv, None, engine)

    # Assert
    assert message.startswith(f"orders.csv: already imported on {today()} ")
    assert "as orders.csv (2 order(s), 2 line(s)); nothing was written" in message
    assert len(rows(engine, source.orders)) == 2


def test_the_same_content_under_another_name_is_refused(tmp_path, engine):  # noqa: F811
    """Fault (duplicate import): the digest is of the files' bytes, orders and customers together, not of names."""
    # Arrange
    byod.import_csv(write(tmp_path, "orders.csv", ORDERS), write(tmp_path, "customers.csv", CUSTOMERS),
                    engine=engine)
    copy_orders, copy_customers = write(tmp_path, "copy.csv", ORDERS), write(tmp_path, "people.csv", CUSTOMERS)

    # Act
    message = refused(copy_orders, copy_customers, engine)

    # Assert
    assert message.startswith(f"copy.csv and people.csv: already imported on {today()} ")
    assert "as orders.csv with customers.csv (2 order(s), 3 line(s))" in message


def test_an_overlapping_file_without_order_ids_is_refused_naming_its_lines(tmp_path, engine):  # noqa: F811
    """Fault (duplicate import): a different file repeating order lines the DB holds (customer, time, product,
    quantity, amount) loaded them a second time."""
    # Arrange: the first file's lines without product (the unknown product) and with product 10 at quantity 3.
    seed_catalogue(engine)
    header = "customer_id,order_ts,amount,product_id,quantity\n"
    first = "1,2024-03-01 09:00:00,5,,\n1,2024-03-01 09:00:00,10.00,10,3\n2,2024-03-02,7,,\n"
    byod.import_csv(write(tmp_path, "march.csv", header + first), engine=engine)
    overlap = ("3,2024-03-05,4,,\n1,2024-03-01 09:00:00,10,10,3\n2,2024-03-02 00:00:00,7.00,,\n"
               "1,2024-03-01 09:00,5,10,\n")

    # Act
    message = refused(write(tmp_path, "march-and-more.csv", header + overlap), None, engine)

    # Assert: lines 3 and 4 repeat; line 5 differs in product, line 2 is new.
    assert message.splitlines() == [
        "march-and-more.csv line 3: customer 1 already has an order line at 2024-03-01 09:00:00 with this product, "
        "quantity and amount in the source DB (expected lines new to the DB: imported before?)",
        "march-and-more.csv line 4: customer 2 already has an order line at 2024-03-02 00:00:00 with this product, "
        "quantity and amount in the source DB (expected lines new to the DB: imported before?)",
    ]


def test_the_import_bookkeeping_is_recorded_but_not_replicated(tmp_path, engine, local_env):  # noqa: F811
    """Fault (duplicate import): the import kept no record of what it loaded; the record must stay out of DMS."""
    # Arrange
    source.enable_cdc(engine)

    # Act
    byod.import_csv(write(tmp_path, "orders.csv", ORDERS), engine=engine)

    # Assert
    recorded = rows(engine, byod.imports)
    assert [(r["orders_file"], r["customers_file"], r["orders"], r["lines"]) for r in recorded] == [
        ("orders.csv", None, 2, 3)]
    assert len(recorded[0]["digest"]) == 64
    assert byod.imports.name not in dms.mapped_tables()
    assert byod.imports.name not in {t.name for t in source.RETAIL_TABLES}
    with engine.connect() as conn:
        logged = set(conn.execute(sa.select(source.cdc_log.c.table_name).distinct()).scalars())
    assert logged == {"stores", "products", "customers", "orders", "order_lines"}


def test_an_amount_too_large_for_the_column_is_refused(tmp_path, engine):  # noqa: F811
    """Fault (accepts what cannot be carried): an amount of 1e15 passed and failed only in the trusted merge."""
    message = refused(write(tmp_path, "orders.csv", NO_IDS + "1,2024-03-01,5\n1,2024-03-02,1e15\n"), None, engine)
    assert message == ("orders.csv line 3, column amount: '1e15' is too large "
                       "(expected an amount of at most 9999999999.99)")


def test_an_amount_with_more_than_two_decimals_is_refused(tmp_path, engine):  # noqa: F811
    """Fault (accepts what cannot be carried): amounts go to NUMERIC(12, 2); 1.005 was silently rounded."""
    orders_csv = write(tmp_path, "orders.csv", NO_IDS + "1,2024-03-01,1.005\n1,2024-03-02,1.250\n")
    message = refused(orders_csv, None, engine)
    assert message == "orders.csv line 2, column amount: '1.005' has more than 2 decimals (expected at most 2 decimals)"


def test_an_order_total_too_large_for_the_column_is_refused(tmp_path, engine):  # noqa: F811
    """Fault (accepts what cannot be carried): lines that fit could add up to an order total that does not."""
    body = "1,2024-03-01 09:00:00,5000000000\n1,2024-03-01 09:00:00,4999999999.99\n1,2024-03-01 09:00:00,1\n"
    message = refused(write(tmp_path, "orders.csv", NO_IDS + body), None, engine)
    assert message == ("orders.csv line 4, column amount: '1' takes its order's total to 10000000000.99 "
                       "(expected order totals of at most 9999999999.99)")


def test_a_date_in_year_9999_is_reported_with_line_and_column(tmp_path, engine):  # noqa: F811
    """Fault (accepts what cannot be carried): 9999-12-31 aborted with 'year 10000 is out of range', no line."""
    message = refused(write(tmp_path, "orders.csv", NO_IDS + "1,2024-03-01,5\n1,9999-12-31,5\n"), None, engine)
    assert message.startswith("orders.csv line 3, column order_ts: '9999-12-31' is in the future (expected a time "
                              "from 1970-01-01 to ")


def test_a_future_order_date_is_refused(tmp_path, engine):  # noqa: F811
    """Fault (accepts what cannot be carried): a 2030 order moved the source DB clock into the future."""
    later = f"{dt.datetime.now(dt.UTC) + dt.timedelta(days=2):%Y-%m-%d %H:%M:%S}"
    message = refused(write(tmp_path, "orders.csv", NO_IDS + f"1,2030-01-01,5\n1,{later},5\n"), None, engine)
    assert [text.split(" (")[0] for text in message.splitlines()] == [
        "orders.csv line 2, column order_ts: '2030-01-01' is in the future",
        f"orders.csv line 3, column order_ts: '{later}' is in the future"]
    with engine.connect() as conn:
        assert source.get_clock(conn) is None


def test_an_order_of_today_is_still_accepted(tmp_path, engine):  # noqa: F811
    """Fault (future dates), the other side of the bound: an order of today or tomorrow's date is loaded."""
    tomorrow = dt.datetime.now(dt.UTC).date() + dt.timedelta(days=1)
    result = byod.import_csv(write(tmp_path, "orders.csv", NO_IDS + f"1,{today()},5\n1,{tomorrow},5\n"),
                             engine=engine)
    assert result["orders"] == 2


def test_a_date_before_1970_is_refused(tmp_path, engine):  # noqa: F811
    """Fault (accepts what cannot be carried): dates before 1970-01-01 were loaded."""
    message = refused(write(tmp_path, "orders.csv", NO_IDS + "1,1969-12-31 23:59:59,5\n"), None, engine)
    assert message.startswith("orders.csv line 2, column order_ts: '1969-12-31 23:59:59' is before 1970 "
                              "(expected a time from 1970-01-01 to ")


def test_a_future_signup_date_is_refused(tmp_path, engine):  # noqa: F811
    """Fault (future dates): a customer's signup date is a commit time too; 2030 moved it into the future."""
    customers_csv = write(tmp_path, "customers.csv", "customer_id,signup_date\n1,2030-06-01\n")
    message = refused(write(tmp_path, "orders.csv", NO_IDS + "1,2024-03-01,5\n"), customers_csv, engine)
    assert message.startswith("customers.csv line 2, column signup_date: '2030-06-01' is in the future")


def test_an_id_longer_than_its_column_names_the_digit_limit(tmp_path, engine):  # noqa: F811
    """Fault (accepts what cannot be carried): an id too long for its column was called 'not a whole number'. A
    customer id is the retailer's text (a 19-digit one is kept as its external id), up to the column's size."""
    header = "customer_id,order_ts,amount,product_id\n"
    body = "C" * 65 + ",2024-03-01,5,1\n1,2024-03-01,5,0001234567890\n"
    message = refused(write(tmp_path, "orders.csv", header + body), None, engine)
    assert message.splitlines() == [
        f"orders.csv line 2, column customer_id: '{'C' * 40}...' is too long "
        "(expected an id of at most 64 characters)",
        "orders.csv line 3, column product_id: '0001234567890' has more than 9 digits "
        "(expected a whole-number id >= 1 of at most 9 digits)"]


def test_a_quantity_too_large_for_its_column_is_refused(tmp_path, engine):  # noqa: F811
    """Fault (accepts what cannot be carried): quantity is an INTEGER column; 99999999999 was accepted."""
    orders_csv = write(tmp_path, "orders.csv", "customer_id,order_ts,amount,quantity\n1,2024-03-01,5,99999999999\n")
    message = refused(orders_csv, None, engine)
    assert message == ("orders.csv line 2, column quantity: '99999999999' is too large "
                       "(expected a whole number from 1 to 999999999)")


def test_text_longer_than_its_column_names_the_limit(tmp_path, engine):  # noqa: F811
    """Fault (accepts what cannot be carried): text longer than its column (here email, 120) is refused naming the
    limit, the column's own length, and the message quotes only the value's start."""
    customers_csv = write(tmp_path, "customers.csv", "customer_id,email\n1," + "a" * 130 + "@example.com\n")
    message = refused(write(tmp_path, "orders.csv", NO_IDS + "1,2024-03-01,5\n"), customers_csv, engine)
    assert message == (f"customers.csv line 2, column email: '{'a' * 40}...' is too long "
                       f"(expected at most {source.customers.c.email.type.length} characters)")


@pytest.mark.postgres
def test_a_repeated_or_overlapping_import_is_refused_on_postgresql(tmp_path, pg_engine):
    """Fault (duplicate import), on the PostgreSQL source with change capture: the digest table and the order-line
    comparison work there too, and the bookkeeping row is not captured."""
    # Arrange
    source.create_schema(pg_engine)
    source.enable_cdc(pg_engine)
    orders_csv = write(tmp_path, "orders.csv", NO_IDS + "1,2024-03-01 09:00:00,5\n2,2024-03-02 10:00:00,7.5\n")
    byod.import_csv(orders_csv, engine=pg_engine)
    overlap_csv = write(tmp_path, "more.csv", NO_IDS + "3,2024-03-03,1\n2,2024-03-02 10:00:00,7.50\n")

    # Act
    repeated, overlapping = refused(orders_csv, None, pg_engine), refused(overlap_csv, None, pg_engine)

    # Assert
    assert repeated.startswith(f"orders.csv: already imported on {today()} ")
    assert overlapping.startswith("more.csv line 3: customer 2 already has an order line at 2024-03-02 10:00:00")
    with pg_engine.connect() as conn:
        logged = set(conn.execute(sa.select(source.cdc_log.c.table_name).distinct()).scalars())
    assert byod.imports.name not in logged and len(rows(pg_engine, byod.imports)) == 1
