"""Bring your own data: load a retailer's orders CSV (and optionally a customers CSV) into the source DB.

    python -m crosschannel import-csv --orders orders.csv [--customers customers.csv]

The files are checked completely before anything is written, then loaded in one transaction: either all
of it lands in the source DB or none of it does. From there DMS (or its local stand-in) replicates it like
any other source data. The import only adds rows; it never updates what the DB already holds.

Both files: UTF-8 text (a byte-order mark is fine), comma-separated, quoted as Excel and most tools do,
with a header line. Column names are matched ignoring case and surrounding spaces; other columns are
ignored; blank lines are skipped; values are trimmed. An empty optional value takes its default.

Orders CSV, one line per order line:

    customer_id            required  a whole number >= 1 (at most 18 digits)
    order_ts or order_date required  an ISO date or timestamp: 2024-03-01, 2024-03-01 14:05:00 or
                                     2024-03-01T14:05:00+02:00 (times with an offset become UTC);
                                     order_ts is used when the file has both
    amount                 required  what the line cost, a number >= 0 such as 19.99
    order_id               optional  a whole number >= 1; lines sharing one form one order, which must
                                     belong to one customer. Default: one order per customer and order
                                     time, numbered on from the highest order_id in the DB
    product_id             optional  a whole number >= 1 (at most 9 digits). An id unknown to the DB gets
                                     a placeholder product "Imported product <id>" priced at the median
                                     unit price seen; lines without one share a product "BYOD-UNKNOWN"
    quantity               optional  a whole number >= 1, default 1 (unit price = amount / quantity)
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
    signup_date            optional  an ISO date; default the customer's first order date (customers
                                     without orders: the first order date in the import)

A customer id that orders use but neither the customers CSV nor the DB knows gets a placeholder customer
("Unknown Customer", no email or phone, opted out, tier none, signed up on the first order date). Each
order is loaded as completed, without discount, its total the sum of its lines' amounts; its customer,
store and channel come from its first line and its time is its earliest line's. Afterwards the source DB
clock is moved on to the midnight after the last order (unless it is already later): the transfer time
of the next full load.

Problems are reported as a CsvImportError naming file, line (the header is line 1), column and what was
expected, e.g. `orders.csv line 7, column amount: '-3.50' is negative (expected an amount >= 0)`; the
first 10 are listed, then how many more there are.
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pandas as pd
import sqlalchemy as sa

from crosschannel.core import source
from crosschannel.core.config import get_config

CHANNELS = ("store", "web", "app")
TIERS = ("none", "silver", "gold", "platinum")
BOOLEANS = ("true", "false", "1", "0", "yes", "no")
UNKNOWN_SKU = "BYOD-UNKNOWN"
SHOWN = 10
BIG_ID, ID = 18, 9  # digits that fit the BIGINT and INTEGER id columns
DATE_EXPECTED = "an ISO date like 2024-03-01 or timestamp like 2024-03-01 14:05:00"


class CsvImportError(ValueError):
    """The CSV input is unreadable, invalid or clashes with the source DB; nothing was written."""


class _Csv:
    """One CSV file as trimmed text cells indexed by line number, and the problems found in it."""

    def __init__(self, path: str, required: list[tuple[str, ...]], problems: list[tuple[str, int, str]]):
        self.name, self.problems = Path(path).name, problems
        try:
            with open(path, encoding="utf-8-sig", newline="") as handle:
                reader = csv.reader(handle)
                header = [name.strip().lower() for name in next(reader, [])]
                rows, lines, broken, line = [], [], 0, reader.line_num + 1
                for row in reader:  # blank lines are skipped but counted
                    if any(cell.strip() for cell in row) and len(row) == len(header):
                        rows.append([cell.strip() for cell in row])
                        lines.append(line)
                    elif any(cell.strip() for cell in row):
                        broken += 1
                        problems.append((self.name, line, f"{self.name} line {line}: {len(row)} fields "
                                                          f"(expected {len(header)}, as in the header)"))
                    line = reader.line_num + 1
        except FileNotFoundError:
            raise CsvImportError(f"{path}: file not found") from None
        except UnicodeDecodeError:
            raise CsvImportError(f"{self.name}: not UTF-8 text (save it as 'CSV UTF-8')") from None
        except OSError as exc:
            raise CsvImportError(f"{path}: cannot read it ({exc.strerror})") from None
        except csv.Error as exc:
            raise CsvImportError(f"{self.name} line {reader.line_num}: not valid CSV ({exc})") from None
        twice = sorted({name for name in header if name and header.count(name) > 1})
        missing = [" or ".join(names) for names in required if not set(names) & set(header)]
        if not any(header):
            raise CsvImportError(f"{self.name}: the file is empty (expected a header line, then data lines)")
        if twice:
            raise CsvImportError(f"{self.name}: column(s) {', '.join(twice)} appear twice in the header")
        if missing:
            raise CsvImportError(f"{self.name}: missing required column(s) {', '.join(missing)} "
                                 f"(found: {', '.join(header)})")
        if not rows and not broken:
            raise CsvImportError(f"{self.name}: no data lines after the header")
        self.frame = pd.DataFrame(rows, columns=header, index=lines, dtype="str")

    def text(self, column: str) -> pd.Series:
        return self.frame[column] if column in self.frame else pd.Series("", index=self.frame.index)

    def flag(self, bad: pd.Series, column: str, what: str | pd.Series, expected: str) -> None:
        """Record a problem on each line where `bad` holds; `what` is a text or one per line."""
        values = self.text(column)
        for line in bad.index[bad.fillna(False).astype(bool)]:
            value, why = values[line], what if isinstance(what, str) else what[line]
            said = "value is empty" if value == "" else f"{value!r} {why}"
            self.problems.append((self.name, line, f"{self.name} line {line}, column {column}: {said} "
                                                   f"(expected {expected})"))


def _raise_if_any(problems: list[tuple[str, int, str]]) -> None:
    if problems:
        shown = [text for _, _, text in sorted(problems, key=lambda p: p[:2])[:SHOWN]]
        more = [f"and {len(problems) - SHOWN} more"] if len(problems) > SHOWN else []
        raise CsvImportError("\n".join(shown + more))


def _ids(f: _Csv, column: str, digits: int, required: bool = False) -> pd.Series:
    text = f.text(column)
    ok = text.str.fullmatch(rf"0*[1-9]\d{{0,{digits - 1}}}")
    f.flag(~ok & (required | (text != "")), column, "is not a whole number",
           f"a whole-number id >= 1 of at most {digits} digits")
    return text.where(ok).astype("Int64")


def _timestamps(f: _Csv, column: str, required: bool = False) -> pd.Series:
    text = f.text(column)
    value = pd.to_datetime(text.where(text != ""), format="ISO8601", errors="coerce", utc=True)
    f.flag(value.isna() & (required | (text != "")), column, "is not an ISO date or timestamp", DATE_EXPECTED)
    return value.dt.tz_localize(None)


def _choice(f: _Csv, column: str, allowed: tuple[str, ...], default: str) -> pd.Series:
    text = f.text(column).str.lower()
    f.flag((text != "") & ~text.isin(allowed), column, "is not allowed", "one of " + ", ".join(allowed))
    return text.where(text != "", default)


def _text(f: _Csv, column: str, limit: int, default: str | None) -> pd.Series:
    text = f.text(column)
    f.flag(text.str.len() > limit, column, "is too long", f"at most {limit} characters")
    return text.where(text != "", default)


def _orders(f: _Csv) -> pd.DataFrame:
    amount = pd.to_numeric(f.text("amount"), errors="coerce").where(np.isfinite)
    f.flag(amount.isna(), "amount", "is not a number", "an amount >= 0")
    f.flag(amount < 0, "amount", "is negative", "an amount >= 0")
    text = f.text("quantity")
    quantity = pd.to_numeric(text, errors="coerce")
    whole = quantity % 1 == 0
    f.flag((text != "") & ~whole, "quantity", "is not a whole number", "a whole number >= 1")
    f.flag(whole & (quantity < 1), "quantity", "is less than 1", "a whole number >= 1")
    orders = pd.DataFrame({
        "order_id": _ids(f, "order_id", BIG_ID),
        "customer_id": _ids(f, "customer_id", BIG_ID, required=True),
        "order_ts": _timestamps(f, "order_ts" if "order_ts" in f.frame else "order_date", required=True),
        "amount": amount,
        "quantity": quantity.fillna(1),
        "product_id": _ids(f, "product_id", ID),
        "store_id": _ids(f, "store_id", ID),
        "channel": _choice(f, "channel", CHANNELS, ""),
    })
    default = np.where(orders.store_id.notna(), "store", "web")
    orders["channel"] = orders.channel.mask(orders.channel == "", default)
    known = orders.dropna(subset=["order_id", "customer_id"])
    owner = known.groupby("order_id").customer_id.transform("first")
    f.flag(known.customer_id != owner, "customer_id", "differs from customer " + owner.astype(str)
           + " on an earlier line of order_id " + known.order_id.astype(str), "one customer per order")
    return orders


def _customers(f: _Csv) -> pd.DataFrame:
    ids = _ids(f, "customer_id", BIG_ID, required=True)
    f.flag(ids.notna() & ids.duplicated(), "customer_id", "appears on an earlier line", "each customer once")
    return pd.DataFrame({
        "customer_id": ids,
        "first_name": _text(f, "first_name", 60, "Unknown"),
        "last_name": _text(f, "last_name", 60, "Customer"),
        "email": _text(f, "email", 120, None),
        "phone": _text(f, "phone", 32, None),
        "email_opt_in": _choice(f, "email_opt_in", BOOLEANS, "false").isin(("true", "1", "yes")),
        "sms_opt_in": _choice(f, "sms_opt_in", BOOLEANS, "false").isin(("true", "1", "yes")),
        "loyalty_tier": _choice(f, "loyalty_tier", TIERS, "none"),
        "home_store_id": _ids(f, "home_store_id", ID),
        "signup_date": _timestamps(f, "signup_date").dt.normalize(),
    })


def _existing(conn: sa.Connection, column: sa.Column, values: pd.Series) -> set[int]:
    """Which of the ids in `values` the DB already holds in `column` (queried in chunks)."""
    wanted = sorted({int(v) for v in values.dropna()})
    found: set[int] = set()
    for start in range(0, len(wanted), 500):
        found.update(conn.execute(sa.select(column).where(column.in_(wanted[start:start + 500]))).scalars())
    return found


def _next_id(conn: sa.Connection, column: sa.Column, values: pd.Series) -> int:
    return max(conn.execute(sa.select(sa.func.max(column))).scalar() or 0, int(values.fillna(0).max())) + 1


def _load(conn: sa.Connection, order_file: _Csv, orders: pd.DataFrame, customer_file: _Csv | None,
          people: pd.DataFrame | None) -> dict:
    """Check the input against the DB, fill in the defaults, insert it all (in the caller's transaction)."""
    people = _placeholders([]) if people is None else people
    all_ids = pd.concat([people.customer_id, orders.customer_id])
    known = _existing(conn, source.customers.c.customer_id, all_ids)
    if customer_file is not None:
        customer_file.flag(people.customer_id.isin(known), "customer_id", "is already in the source DB",
                           "a customer id new to the DB")
    clash = orders.order_id.isin(_existing(conn, source.orders.c.order_id, orders.order_id))
    order_file.flag(clash & ~orders.order_id.duplicated(), "order_id", "is already in the source DB",
                    "an order id new to the DB")
    _raise_if_any(order_file.problems)  # the list both files report to

    start = orders.order_ts.min().normalize()
    unnumbered = orders.order_id.isna()
    groups = orders[unnumbered].groupby(["order_ts", "customer_id"]).ngroup()
    orders.loc[unnumbered, "order_id"] = groups + _next_id(conn, source.orders.c.order_id, orders.order_id)
    orders["quantity"] = orders.quantity.astype("int64")
    orders["unit_price"] = (orders.amount / orders.quantity).round(2)

    product = source.products.c
    new = sorted(set(orders.product_id.dropna()) - _existing(conn, product.product_id, orders.product_id))
    median = orders.groupby("product_id").unit_price.median().round(2)
    catalogue = [(i, f"BYOD-{i}", f"Imported product {i}", median[i]) for i in new]
    if orders.product_id.isna().any():
        unknown_id = conn.execute(sa.select(product.product_id).where(product.sku == UNKNOWN_SKU)).scalar()
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
    placeholders = _placeholders(orphans).assign(signup_date=first_order.reindex(orphans).to_numpy())
    customers = pd.concat([people, placeholders], ignore_index=True)
    customers["updated_at"] = customers.signup_date

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
    clock = (orders.order_ts.max().normalize() + pd.Timedelta(days=1)).to_pydatetime()
    current = source.get_clock(conn)
    if current is None or current < clock:
        source.set_clock(conn, clock)
    return {"orders": len(head), "order_lines": len(lines), "customers": len(people),
            "placeholder_customers": len(placeholders), "placeholder_products": len(products),
            "placeholder_stores": len(stores)}


def _placeholders(ids: list[int]) -> pd.DataFrame:
    """Customers known only by id: no contact details, opted out, signup date still to fill in."""
    none = [None] * len(ids)
    return pd.DataFrame({
        "customer_id": pd.array(ids, dtype="Int64"), "first_name": "Unknown", "last_name": "Customer",
        "email": none, "phone": none, "email_opt_in": False, "sms_opt_in": False, "loyalty_tier": "none",
        "home_store_id": pd.array(none, dtype="Int64"), "signup_date": pd.to_datetime(pd.Series(none)),
    })


def import_csv(orders_csv: str, customers_csv: str | None = None, engine: sa.Engine | None = None) -> dict:
    """Validate the CSV file(s), then load them into the source DB in one transaction; returns row counts."""
    problems: list[tuple[str, int, str]] = []
    order_file = _Csv(orders_csv, [("customer_id",), ("order_ts", "order_date"), ("amount",)], problems)
    customer_file = _Csv(customers_csv, [("customer_id",)], problems) if customers_csv else None
    orders = _orders(order_file)
    people = _customers(customer_file) if customer_file else None
    _raise_if_any(problems)
    if engine is None:
        engine = source.connect(get_config().source.sqlalchemy_url, create=True)
    source.create_schema(engine)
    with engine.begin() as conn:
        return _load(conn, order_file, orders, customer_file, people)
