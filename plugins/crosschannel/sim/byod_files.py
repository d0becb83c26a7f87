"""Reading and checking the CSV files of `import-csv` (the contract: crosschannel.sim.byod's docstring): every
cell of every line, each problem named by file, line and column, before anything is written."""

from __future__ import annotations

import csv
import hashlib
import io
from decimal import Decimal
from pathlib import Path

import numpy as np
import pandas as pd

from crosschannel.core import source
from crosschannel.stages.activation import consent

CHANNELS = ("store", "web", "app")
TIERS = ("none", "silver", "gold", "platinum")
BOOLEANS = ("true", "false", "1", "0", "yes", "no")
SHOWN = 10
BIG_ID, ID = 18, 9  # digits that fit the BIGINT and INTEGER id columns
DATE_EXPECTED = "an ISO date like 2024-03-01 or timestamp like 2024-03-01 14:05:00"
EPOCH = pd.Timestamp("1970-01-01")
MONEY = source.orders.c.total.type  # Numeric(precision, scale): line amounts and order totals must fit it
CENT = Decimal(1).scaleb(-MONEY.scale)
MAX_AMOUNT = Decimal(10) ** (MONEY.precision - MONEY.scale) - CENT  # 9999999999.99
QUANTITY = f"a whole number from 1 to {10 ** ID - 1}"
NOT_A_CONTACT = ("the retailer's customer number: ids leave for Segment, Personalize and Customer Profiles whatever "
                 "the customer's consent")
DELIMITERS = (",", ";", "\t", "|", "whitespace")


class CsvImportError(ValueError):
    """The CSV input is unreadable, invalid or clashes with the source DB; nothing was written."""


class CsvFile:
    """One CSV file as trimmed text cells indexed by line number, and the problems found in it."""

    def __init__(self, path: str, required: list[tuple[str, ...]], problems: list[tuple[str, int, str]],
                 date_format: str | None = None, delimiter: str = ",", columns: dict[str, str] | None = None):
        self.name, self.problems, self.date_format = Path(path).name, problems, date_format
        self.shown: dict[str, str] = {}  # our column name -> the file's, where --columns renames it
        if delimiter not in DELIMITERS:
            raise CsvImportError(f"--delimiter {delimiter!r}: expected one of {', '.join(map(repr, DELIMITERS))}")
        try:
            data = Path(path).read_bytes()
            self.digest = hashlib.sha256(data).digest()
            numbered = _rows(data.decode("utf-8-sig"), delimiter)
            header = [name.strip().lower() for name in next(numbered, (1, []))[1]]
            if not any(header):
                raise CsvImportError(f"{self.name}: the file is empty (expected a header line, then data lines)")
            header = self._rename(header, columns or {})
            rows, lines, broken = [], [], 0
            for line, row in numbered:  # blank lines are skipped but counted
                if any(cell.strip() for cell in row) and len(row) == len(header):
                    rows.append([cell.strip() for cell in row])
                    lines.append(line)
                elif any(cell.strip() for cell in row):
                    broken += 1
                    self.report(line, f": {len(row)} fields (expected {len(header)}, as in the header)")
        except FileNotFoundError:
            raise CsvImportError(f"{path}: file not found") from None
        except UnicodeDecodeError:
            raise CsvImportError(f"{self.name}: not UTF-8 text (save it as 'CSV UTF-8')") from None
        except OSError as exc:
            raise CsvImportError(f"{path}: cannot read it ({exc.strerror})") from None
        except csv.Error as exc:
            raise CsvImportError(f"{self.name} {exc}") from None
        twice = sorted({name for name in header if name and header.count(name) > 1})
        missing = [" or ".join(names) for names in required if not set(names) & set(header)]
        if twice:
            raise CsvImportError(f"{self.name}: column(s) {', '.join(twice)} appear twice in the header")
        if missing:
            raise CsvImportError(f"{self.name}: missing required column(s) {', '.join(missing)} "
                                 f"(found: {', '.join(header)})")
        if not rows and not broken:
            raise CsvImportError(f"{self.name}: no data lines after the header")
        self.frame = pd.DataFrame(rows, columns=header, index=lines, dtype="str")

    def _rename(self, header: list[str], columns: dict[str, str]) -> list[str]:
        """The header in our names: each `ours=theirs` of --columns renames the file's column `theirs`."""
        for ours, theirs in columns.items():
            if theirs.strip().lower() not in header:
                raise CsvImportError(f"{self.name}: --columns {ours}={theirs}: the file has no column {theirs!r} "
                                     f"(found: {', '.join(header)})")
            self.shown[ours] = theirs
            header = [ours if name == theirs.strip().lower() else name for name in header]
        return header

    def text(self, column: str) -> pd.Series:
        return self.frame[column] if column in self.frame else pd.Series("", index=self.frame.index)

    def report(self, line: int, text: str) -> None:
        self.problems.append((self.name, line, f"{self.name} line {line}{text}"))

    def flag(self, bad: pd.Series, column: str, what: str | pd.Series, expected: str) -> None:
        """Record a problem on each line where `bad` holds; `what` is a text or one per line."""
        values = self.text(column)
        for line in bad.index[bad.fillna(False).astype(bool)]:
            value, why = values[line], what if isinstance(what, str) else what[line]
            value = value if len(value) <= 40 else value[:40] + "..."
            said = "value is empty" if value == "" else f"{value!r} {why}"
            self.report(line, f", column {self.shown.get(column, column)}: {said} (expected {expected})")


def order_file(path: str, problems: list, date_format: str | None = None, delimiter: str = ",",
               columns: dict[str, str] | None = None) -> CsvFile:
    """The orders file read with its required columns."""
    return CsvFile(path, [("customer_id",), ("order_ts", "order_date"), ("amount",)], problems, date_format,
                   delimiter, columns)


def _rows(text: str, delimiter: str):
    """(line number, fields) of each row: CSV with its quoting (a quoted value may span lines), or fields split on
    runs of spaces and tabs (`whitespace`, as fixed-width exports are written)."""
    if delimiter == "whitespace":
        yield from ((n, line.split()) for n, line in enumerate(text.splitlines(), start=1))
        return
    reader, line = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter), 1
    try:
        for row in reader:
            yield line, row
            line = reader.line_num + 1
    except csv.Error as exc:
        raise csv.Error(f"line {reader.line_num}: not valid CSV ({exc})") from None


def raise_if_any(problems: list[tuple[str, int, str]]) -> None:
    if problems:
        shown = [text for _, _, text in sorted(problems, key=lambda p: p[:2])[:SHOWN]]
        more = [f"and {len(problems) - SHOWN} more"] if len(problems) > SHOWN else []
        raise CsvImportError("\n".join(shown + more))


def _ids(f: CsvFile, column: str, digits: int, required: bool = False) -> pd.Series:
    text, expected = f.text(column), f"a whole-number id >= 1 of at most {digits} digits"
    whole = text.str.fullmatch(r"0*[1-9]\d*")
    ok = whole & (text.str.lstrip("0").str.len() <= digits)
    f.flag(~whole & (required | (text != "")), column, "is not a whole number", expected)
    f.flag(whole & ~ok, column, f"has more than {digits} digits", expected)
    return text.where(ok).astype("Int64")


def _timestamps(f: CsvFile, column: str, required: bool = False) -> pd.Series:
    text = f.text(column)
    value = pd.to_datetime(text.where(text != ""), format=f.date_format or "ISO8601", errors="coerce",
                           utc=True).dt.tz_localize(None)
    what, expected = ((f"does not match --date-format {f.date_format}", f"a date or time written as "
                       f"{f.date_format!r} (strftime codes; times with %z become UTC)") if f.date_format
                      else ("is not an ISO date or timestamp", DATE_EXPECTED))
    f.flag(value.isna() & (required | (text != "")), column, what, expected)
    latest = pd.Timestamp.now("UTC").tz_localize(None).floor("s") + pd.Timedelta(days=1)
    expected = f"a time from 1970-01-01 to {latest:%Y-%m-%d %H:%M:%S} UTC, a day from now"
    f.flag(value < EPOCH, column, "is before 1970", expected)
    f.flag(value > latest, column, "is in the future", expected)
    return value


def _choice(f: CsvFile, column: str, allowed: tuple[str, ...], default: str) -> pd.Series:
    text = f.text(column).str.lower()
    f.flag((text != "") & ~text.isin(allowed), column, "is not allowed", "one of " + ", ".join(allowed))
    return text.where(text != "", default)


def _customer_ids(f: CsvFile) -> pd.Series:
    """The retailer's customer ids as written: any text up to the external_id column's size (byod maps them)."""
    text, limit = f.text("customer_id"), source.customers.c.external_id.type.length
    f.flag(text == "", "customer_id", "", "the customer's id")
    f.flag(text.str.len() > limit, "customer_id", "is too long", f"an id of at most {limit} characters")
    contact = text.str.fullmatch(consent.CONTACT_LIKE.pattern)
    f.flag(contact, "customer_id", "looks like an email address or phone number", NOT_A_CONTACT)
    return text.where((text != "") & (text.str.len() <= limit) & ~contact)


def _text(f: CsvFile, column: str, default: str | None) -> pd.Series:
    text, limit = f.text(column), source.customers.c[column].type.length
    f.flag(text.str.len() > limit, column, "is too long", f"at most {limit} characters")
    return text.where(text != "", default)


def _amounts(f: CsvFile) -> pd.Series:
    text, limit = f.text("amount"), float(MAX_AMOUNT)
    amount = pd.to_numeric(text, errors="coerce").where(np.isfinite)
    f.flag(amount.isna(), "amount", "is not a number", "an amount >= 0")
    f.flag(amount < 0, "amount", "is negative", "an amount >= 0")
    f.flag(amount > limit, "amount", "is too large", f"an amount of at most {MAX_AMOUNT}")
    fits = amount.between(0, limit)
    cents = text.where(fits, "0").map(lambda number: Decimal(number) % CENT == 0)  # Decimal reads what to_numeric does
    f.flag(fits & ~cents, "amount", f"has more than {MONEY.scale} decimals", f"at most {MONEY.scale} decimals")
    return amount


def orders(f: CsvFile) -> pd.DataFrame:
    amount = _amounts(f)
    text = f.text("quantity")
    quantity = pd.to_numeric(text, errors="coerce")
    whole = quantity % 1 == 0
    f.flag((text != "") & ~whole, "quantity", "is not a whole number", QUANTITY)
    f.flag(whole & (quantity < 1), "quantity", "is less than 1", QUANTITY)
    f.flag(whole & (quantity >= 10 ** ID), "quantity", "is too large", QUANTITY)
    orders = pd.DataFrame({
        "order_id": _ids(f, "order_id", BIG_ID),
        "customer_id": _customer_ids(f),
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


def refuse_contact_ids(files: list[CsvFile], people: pd.DataFrame) -> None:
    """Flag every id that is an email address or phone number of a customer in the customers file, however it is
    written (ids leave for every destination, whatever the customer's consent)."""
    def number(text: pd.Series) -> pd.Series:  # a phone's last 9 digits (with or without its country code)
        digits = text.str.replace(r"[\s().+-]", "", regex=True)
        return digits.where(digits.str.fullmatch(r"\d{9,}")).str[-9:]

    emails, phones = set(people.email.dropna().str.lower()), set(number(people.phone.dropna()).dropna())
    for f in files:
        ids = f.text("customer_id")
        f.flag(ids.str.lower().isin(emails) | number(ids).isin(phones), "customer_id",
               "is the email or phone of a customer in the customers file", NOT_A_CONTACT)


def customers(f: CsvFile) -> pd.DataFrame:
    ids = _customer_ids(f)
    f.flag(ids.notna() & ids.duplicated(), "customer_id", "appears on an earlier line", "each customer once")
    return pd.DataFrame({
        "customer_id": ids,
        "first_name": _text(f, "first_name", "Unknown"),
        "last_name": _text(f, "last_name", "Customer"),
        "email": _text(f, "email", None),
        "phone": _text(f, "phone", None),
        "email_opt_in": _choice(f, "email_opt_in", BOOLEANS, "false").isin(("true", "1", "yes")),
        "sms_opt_in": _choice(f, "sms_opt_in", BOOLEANS, "false").isin(("true", "1", "yes")),
        "loyalty_tier": _choice(f, "loyalty_tier", TIERS, "none"),
        "home_store_id": _ids(f, "home_store_id", ID),
        "signup_date": _timestamps(f, "signup_date").dt.normalize(),
    })




def absent_sources(order_file: CsvFile, customer_file: CsvFile | None) -> list[str]:
    """The sources (config `sources`) these files do not bring (no column for them, or only empty values): declare
    them false. The import brings no events."""
    columns = {name for f in (order_file, customer_file) if f is not None for name in f.frame.columns
               if (f.frame[name] != "").any()}
    brought = {"products": {"product_id"}, "stores": {"store_id", "home_store_id"}, "contacts": {"email", "phone"}}
    return ["events", *(source for source, names in brought.items() if not names & columns)]
