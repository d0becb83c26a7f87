"""Bring your own data: load a retailer's orders CSV (and optionally a customers CSV) into the source DB.

    python -m crosschannel import-csv --orders orders.csv [--customers customers.csv]

The files are checked completely before anything is written, then loaded in one transaction: either all
of it lands in the source DB or none of it does. From there DMS (or its local stand-in) replicates it like
any other source data. The import only adds rows; it never updates what the DB already holds.

Importing twice is refused: each import records a sha256 digest of its files' bytes in the source DB
table byod_imports (bookkeeping, not replicated), and the same file(s) again fail naming the earlier
import's date. A line without order_id fails when the DB holds an order line of that customer at that
time with the same product, quantity and amount (an overlapping file); an order_id in the DB fails too.

Both files: UTF-8 text (a byte-order mark is fine), comma-separated, quoted as Excel and most tools do,
with a header line. Column names are matched ignoring case and surrounding spaces; other columns are
ignored; blank lines are skipped; values are trimmed. An empty optional value takes its default.

Orders CSV, one line per order line:

    customer_id            required  the retailer's id, text of at most 64 characters (C00042, 00042, 42).
                                     When every id of the import is a whole number >= 1 without leading
                                     zeros (at most 18 digits) and the DB holds no text ids, it is the
                                     customer id. Otherwise each id is kept as the customer's external_id,
                                     the id that leaves for Segment (userId), Personalize (USER_ID),
                                     Customer Profiles (AccountNumber) and Pinpoint (User.UserId), and
                                     maps to a customer id: the one the DB holds for it, or the next free
                                     one
    order_ts or order_date required  an ISO date or timestamp: 2024-03-01, 2024-03-01 14:05:00 or
                                     2024-03-01T14:05:00+02:00 (times with an offset become UTC), or
                                     as --date-format F says (%d/%m/%Y, ...: every date column);
                                     order_ts is used when the file has both; from 1970-01-01 to a day
                                     from now (UTC)
    amount                 required  what the line cost, a number >= 0 such as 19.99: at most 2 decimals
                                     and 9999999999.99, as is the order's total (the DB's NUMERIC(12, 2))
    order_id               optional  a whole number >= 1; lines sharing one form one order, which must
                                     belong to one customer. Default: one order per customer and order
                                     time, numbered on from the highest order_id in the DB
    product_id             optional  a whole number >= 1 (at most 9 digits). An id unknown to the DB gets
                                     a placeholder product "Imported product <id>" priced at the median
                                     unit price seen; lines without one share a product "BYOD-UNKNOWN"
    quantity               optional  a whole number from 1 to 999999999, default 1 (unit price = amount /
                                     quantity)
    store_id               optional  as product_id; an unknown id gets a placeholder "Imported store <id>"
    channel                optional  store, web or app; default store when store_id is given, else web

Customers CSV, one line per customer new to the DB:

    customer_id            required  as above, once per file, not yet in the DB
    first_name, last_name  optional  default Unknown, Customer (at most 60 characters each)
    email, phone           optional  default none (at most 120 and 32 characters)
    email_opt_in           optional  true/false, 1/0 or yes/no; default false
    sms_opt_in             optional  as email_opt_in
    loyalty_tier           optional  none, silver, gold or platinum; default none
    home_store_id          optional  as store_id
    signup_date            optional  an ISO date, as order_date; default the customer's first order date
                                     (customers without orders: the first order date in the import)

A customer id that orders use but neither the customers CSV nor the DB knows gets a placeholder customer
("Unknown Customer", no email or phone, opted out, tier none, signed up on the first order date). Each
order is loaded as completed, without discount, its total the sum of its lines' amounts; its customer,
store and channel come from its first line and its time is its earliest line's. Afterwards the source DB
clock is moved on to the midnight after the last row it wrote, or to `before` (unless it is already later): the
transfer time of the next full load.

The import is also change history: with change capture on, every row is logged as committed at its own time
(`updated_at`: an order's time; a customer's signup date, or first order if earlier; the first imported day for
placeholder products and stores). With the source clock set back to a past day, the local DMS stand-in
full-loads what was committed by then and lands each later row as a change of the day it was committed
(crosschannel.local.dms_task), so `retail_ingest` and `retail_trusted` run day by day over the history see the
source as it was on each day.

Problems are reported as a CsvImportError naming file, line (the header is line 1), column and what was expected,
e.g. `orders.csv line 7, column amount: '-3.50' is negative (expected an amount >= 0)`; the first 10 are listed.
The result lists `sources_absent`: the sources (config `sources`, README "Declared sources") to declare false.
"""

from __future__ import annotations

import datetime as dt
import hashlib

import pandas as pd
import sqlalchemy as sa

from crosschannel.core import source
from crosschannel.core.config import get_config
from crosschannel.sim import byod_files as files
from crosschannel.sim.byod_files import MAX_AMOUNT, CsvFile, CsvImportError

__all__ = ["CsvImportError", "import_csv"]

UNKNOWN_SKU = "BYOD-UNKNOWN"
imports = source.byod_imports

def _chunks(values: pd.Series) -> list[list[int]]:
    wanted = sorted({int(v) for v in values.dropna()})
    return [wanted[start:start + 500] for start in range(0, len(wanted), 500)]


def _existing(conn: sa.Connection, column: sa.Column, values: pd.Series) -> set[int]:
    """Which of the ids in `values` the DB already holds in `column` (queried in chunks)."""
    return {v for chunk in _chunks(values) for v in conn.execute(sa.select(column).where(column.in_(chunk))).scalars()}


def _next_id(conn: sa.Connection, column: sa.Column, values: pd.Series) -> int:
    return max(conn.execute(sa.select(sa.func.max(column))).scalar() or 0, int(values.fillna(0).max())) + 1


def _refuse_repeat(conn: sa.Connection, digest: str, names: str) -> None:
    earlier = conn.execute(sa.select(imports).where(imports.c.digest == digest)).first()
    if earlier:
        was = " with ".join(filter(None, (earlier.orders_file, earlier.customers_file)))
        raise CsvImportError(f"{names}: already imported on {earlier.imported_at:%Y-%m-%d %H:%M} UTC as {was} "
                             f"({earlier.orders} order(s), {earlier.lines} line(s)); nothing was written")


def _line_keys(frame: pd.DataFrame) -> pd.MultiIndex:
    cents = (pd.to_numeric(frame.unit_price) * 100).round()
    return pd.MultiIndex.from_arrays([frame.customer_id.astype("int64"), pd.to_datetime(frame.order_ts).astype(
        "datetime64[us]"), frame.product_id.astype("int64"), frame.quantity.astype("int64"), cents.astype("int64")])


def _flag_known_lines(conn: sa.Connection, f: CsvFile, lines: pd.DataFrame) -> None:
    """Lines without order_id whose customer, time, product, quantity and unit price the DB already holds."""
    o, ol = source.orders.c, source.order_lines.c
    query = sa.select(o.customer_id, o.order_ts, ol.product_id, ol.quantity, ol.unit_price).join_from(
        source.orders, source.order_lines, o.order_id == ol.order_id).where(o.order_ts.between(
            lines.order_ts.min().to_pydatetime(), lines.order_ts.max().to_pydatetime()))
    held = [row for chunk in _chunks(lines.customer_id) for row in conn.execute(query.where(o.customer_id.in_(chunk)))]
    held = pd.DataFrame(held, columns=["customer_id", "order_ts", "product_id", "quantity", "unit_price"])
    for line, row in lines[_line_keys(lines).isin(_line_keys(held))].iterrows():
        f.report(line, f": customer {row.customer_id} already has an order line at {row.order_ts} with this product, "
                       "quantity and amount in the source DB (expected lines new to the DB: imported before?)")


def _number_customers(conn: sa.Connection, order_file: CsvFile, orders: pd.DataFrame, customer_file: CsvFile | None,
                      people: pd.DataFrame) -> None:
    """Turn the retailer's ids (text so far) into customer ids, in place. Plain whole numbers are customer ids when
    every id of the import is one and the DB holds no external ids. Otherwise every id is kept as `external_id` and
    maps to the customer the DB holds under it; a plain number is the customer it spells (so a userId names one
    customer whichever way it is read: include/sql/trusted/user_customers.sql), refused when that customer has
    another id of the retailer; any other text is numbered on from the highest customer id."""
    c = source.customers.c
    texts = pd.Series(pd.concat([people.customer_id, orders.customer_id]).dropna().unique(), dtype="str")
    numbers = texts[texts.str.fullmatch(r"[1-9]\d{0,17}")]
    if len(numbers) == len(texts) and not conn.execute(
            sa.select(sa.func.count()).where(c.external_id.is_not(None))).scalar():
        for frame in (orders, people):
            frame["customer_id"], frame["external_id"] = frame.customer_id.astype("Int64"), None
        return
    held = {}
    for start in range(0, len(texts), 500):
        chunk = texts[start:start + 500].tolist()
        held.update(conn.execute(sa.select(c.external_id, c.customer_id).where(c.external_id.in_(chunk))).all())
    spelled = set(numbers[~numbers.isin(list(held))])
    owners = {str(number): owner for chunk in _chunks(pd.Series(list(spelled), dtype="str")) for number, owner in
              conn.execute(sa.select(c.customer_id, c.external_id).where(c.customer_id.in_(chunk),
                                                                          c.external_id.is_not(None)))}
    for f, frame in ((order_file, orders), (customer_file, people)):
        if f is not None:
            owner = frame.customer_id.map(owners)
            f.flag(owner.notna(), "customer_id", "is the source DB's id of the customer whose own id is "
                   + owner.map(repr), "the retailer's id of this customer: a number naming no other customer")
    files.raise_if_any(order_file.problems)  # the list both files report to
    first = _next_id(conn, c.customer_id, pd.Series([0, *map(int, spelled)], dtype="int64"))
    others = [text for text in texts if text not in held and text not in spelled]
    ids = {**{text: int(text) for text in spelled}, **{text: first + i for i, text in enumerate(others)}, **held}
    for frame in (orders, people):
        frame["external_id"], frame["customer_id"] = frame.customer_id, frame.customer_id.map(ids).astype("Int64")


def _check(conn: sa.Connection, order_file: CsvFile, orders: pd.DataFrame, customer_file: CsvFile | None,
           people: pd.DataFrame) -> tuple[set[int], int | None]:
    """Check the input against the DB and number the new orders; returns the known customers, unknown product."""
    known = _existing(conn, source.customers.c.customer_id, pd.concat([people.customer_id, orders.customer_id]))
    if customer_file is not None:
        customer_file.flag(people.customer_id.isin(known), "customer_id", "is already in the source DB",
                           "a customer id new to the DB")
    clash = orders.order_id.isin(_existing(conn, source.orders.c.order_id, orders.order_id))
    order_file.flag(clash & ~orders.order_id.duplicated(), "order_id", "is already in the source DB",
                    "an order id new to the DB")
    product = source.products.c
    unknown_id = conn.execute(sa.select(product.product_id).where(product.sku == UNKNOWN_SKU)).scalar()
    orders["quantity"] = orders.quantity.astype("int64")
    orders["unit_price"] = (orders.amount / orders.quantity).round(2)
    unnumbered = orders.order_id.isna()
    if unnumbered.any():
        _flag_known_lines(conn, order_file, orders[unnumbered].fillna({"product_id": unknown_id or 0}))
    groups = orders[unnumbered].groupby(["order_ts", "customer_id"]).ngroup()
    orders.loc[unnumbered, "order_id"] = groups + _next_id(conn, source.orders.c.order_id, orders.order_id)
    total, limit = orders.groupby("order_id").amount.cumsum(), float(MAX_AMOUNT)
    order_file.flag((total > limit) & (total - orders.amount <= limit), "amount", "takes its order's total to "
                    + total.map("{:.2f}".format), f"order totals of at most {MAX_AMOUNT}")
    files.raise_if_any(order_file.problems)  # the list both files report to
    return known, unknown_id


def _load(conn: sa.Connection, order_file: CsvFile, orders: pd.DataFrame, customer_file: CsvFile | None,
          people: pd.DataFrame | None, before: dt.date | None = None) -> dict:
    """Check the input against the DB, fill in the defaults, insert it all (in the caller's transaction)."""
    digest = hashlib.sha256(b"".join(f.digest for f in (order_file, customer_file) if f)).hexdigest()
    _refuse_repeat(conn, digest, " and ".join(f.name for f in (order_file, customer_file) if f))
    people = _placeholders([]) if people is None else people
    _number_customers(conn, order_file, orders, customer_file, people)
    known, unknown_id = _check(conn, order_file, orders, customer_file, people)
    start = orders.order_ts.min().normalize()

    product = source.products.c
    new = sorted(set(orders.product_id.dropna()) - _existing(conn, product.product_id, orders.product_id))
    median = orders.groupby("product_id").unit_price.median().round(2)
    catalogue = [(i, f"BYOD-{i}", f"Imported product {i}", median[i]) for i in new]
    if orders.product_id.isna().any():
        if unknown_id is None:
            unknown_id = _next_id(conn, product.product_id, orders.product_id)
            catalogue.append((unknown_id, UNKNOWN_SKU, "Unknown product", 0.0))
        orders["product_id"] = orders.product_id.fillna(unknown_id)
    products = pd.DataFrame(catalogue, columns=["product_id", "sku", "name", "price"]).assign(
        category="unknown", brand="unknown", active=True, created_at=start, updated_at=start)

    store_ids = pd.concat([orders.store_id, people.home_store_id])
    new = sorted(set(store_ids.dropna()) - _existing(conn, source.stores.c.store_id, store_ids))
    stores = pd.DataFrame({"store_id": new, "name": [f"Imported store {i}" for i in new], "city": "unknown",
                           "region": "unknown", "opened_date": start, "updated_at": start})

    first_order = orders.groupby("customer_id").order_ts.min().dt.normalize()
    people["signup_date"] = people.signup_date.fillna(people.customer_id.map(first_order)).fillna(start)
    orphans = sorted(set(orders.customer_id) - set(people.customer_id) - known)
    external = orders.drop_duplicates("customer_id").set_index("customer_id").external_id
    placeholders = _placeholders(orphans).assign(signup_date=first_order.reindex(orphans).to_numpy(),
                                                 external_id=external.reindex(orphans).to_numpy())
    customers = pd.concat([people, placeholders], ignore_index=True)
    # committed at signup, or by the first order at the latest: a replayed day never has orders of a customer
    # the source does not hold yet
    customers["updated_at"] = pd.concat([customers.signup_date, customers.customer_id.map(first_order)],
                                        axis=1).min(axis=1)

    orders["line_no"] = orders.groupby("order_id").cumcount() + 1
    head = orders.groupby("order_id").agg(
        customer_id=("customer_id", "first"), store_id=("store_id", "first"), channel=("channel", "first"),
        order_ts=("order_ts", "min"), subtotal=("amount", "sum")).reset_index()
    head = head.assign(status="completed", subtotal=head.subtotal.round(2), discount=0.0,
                       total=head.subtotal.round(2), updated_at=head.order_ts)
    lines = orders.assign(discount=0.0, updated_at=orders.order_id.map(head.set_index("order_id").order_ts))

    for tbl, frame in ((source.stores, stores), (source.products, products), (source.customers, customers),
                       (source.orders, head), (source.order_lines, lines)):
        source.bulk_insert(conn, tbl, frame)
    latest = max(frame.updated_at.max() for frame in (stores, products, customers, head) if not frame.empty)
    clock = pd.Timestamp(before) if before else latest.normalize() + pd.Timedelta(days=1)
    clock = clock.to_pydatetime()
    current = source.get_clock(conn)
    if current is None or current < clock:
        source.set_clock(conn, clock)
    conn.execute(imports.insert().values(
        digest=digest, orders_file=order_file.name, customers_file=customer_file and customer_file.name,
        imported_at=dt.datetime.now(dt.UTC).replace(tzinfo=None), orders=len(head), lines=len(lines)))
    return {"orders": len(head), "order_lines": len(lines), "customers": len(people),
            "placeholder_customers": len(placeholders), "placeholder_products": len(products),
            "placeholder_stores": len(stores)}


def _placeholders(ids: list[int]) -> pd.DataFrame:
    """Customers known only by id: no contact details, opted out, signup date still to fill in."""
    none = [None] * len(ids)
    return pd.DataFrame({"customer_id": pd.array(ids, dtype="Int64"), "first_name": "Unknown", "last_name": "Customer",
                         "email": none, "phone": none, "email_opt_in": False, "sms_opt_in": False,
                         "loyalty_tier": "none", "home_store_id": pd.array(none, dtype="Int64"),
                         "signup_date": pd.to_datetime(pd.Series(none))})


def import_csv(orders_csv: str, customers_csv: str | None = None, engine: sa.Engine | None = None,
               date_format: str | None = None, before: dt.date | None = None, delimiter: str = ",",
               columns: dict[str, str] | None = None) -> dict:
    """Validate the CSV file(s), then load them into the source DB in one transaction; returns row counts.
    `date_format` (strftime codes, e.g. %d/%m/%Y) reads the date and time columns instead of ISO 8601. `before`
    loads what the source held at the start of that day: order lines before it, customers who signed up before it
    (without a signup date: who ordered before it, or never did; every line is checked all the same). `delimiter`
    (`,` `;` tab `|`, or `whitespace`) separates the fields of both files; `columns` ({our name: the orders file's})
    renames the orders file's columns."""
    problems: list[tuple[str, int, str]] = []
    order_file = files.order_file(orders_csv, problems, date_format, delimiter, columns)
    customer_file = CsvFile(customers_csv, [("customer_id",)], problems, date_format, delimiter) if customers_csv \
        else None
    orders = files.orders(order_file)
    people = files.customers(customer_file) if customer_file else None
    if people is not None:
        files.refuse_contact_ids([order_file, customer_file], people)
    files.raise_if_any(problems)
    if before is not None:
        later = orders.order_ts >= pd.Timestamp(before)
        if people is not None:  # a customer without a signup date is known from their first order on
            unknown = people.customer_id.isin(set(orders.customer_id[later]) - set(orders.customer_id[~later]))
            late = (people.signup_date >= pd.Timestamp(before)) | people.signup_date.isna() & unknown
            people = people[~late].copy()
        orders = orders[~later].copy()
        if orders.empty:
            raise CsvImportError(f"{order_file.name}: no order before {before} (expected a day after the first order)")
    engine = engine or source.connect(get_config().source.sqlalchemy_url, create=True)
    source.create_schema(engine)
    source.enable_cdc(engine)  # every row is also a change, committed at its own time (its updated_at)
    imports.create(engine, checkfirst=True)
    with engine.begin() as conn:
        return {**_load(conn, order_file, orders, customer_file, people, before),
                "sources_absent": files.absent_sources(order_file, customer_file)}
