"""The store database that DMS replicates: schema, change capture and bulk loading.

The retail tables are plain OLTP tables. Beside them sit two replication tables that play the part of
the database's transaction log, which AWS DMS reads for CDC: every insert, update and delete on a retail
table is written to `cdc_log` by a trigger, with the full row image and its commit time. The commit time
is the row's `updated_at` (deletes: the source clock in `cdc_clock`), so a simulated retailer can run on a
simulated calendar. The local extract reads `cdc_log` exactly as DMS reads the WAL; on AWS, DMS reads the
real log and these tables are not needed (they are excluded from the table mappings).
"""

from __future__ import annotations

import csv
import datetime as dt
import io
from collections.abc import Iterable

import sqlalchemy as sa

metadata = sa.MetaData()

_money = sa.Numeric(12, 2, asdecimal=False)
_id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")

stores = sa.Table(
    "stores",
    metadata,
    sa.Column("store_id", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("name", sa.String(80), nullable=False),
    sa.Column("city", sa.String(80), nullable=False),
    sa.Column("region", sa.String(40), nullable=False),
    sa.Column("opened_date", sa.Date, nullable=False),
    sa.Column("updated_at", sa.DateTime, nullable=False),
)

products = sa.Table(
    "products",
    metadata,
    sa.Column("product_id", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("sku", sa.String(32), nullable=False, unique=True),
    sa.Column("name", sa.String(120), nullable=False),
    sa.Column("category", sa.String(40), nullable=False),
    sa.Column("brand", sa.String(40), nullable=False),
    sa.Column("price", _money, nullable=False),
    sa.Column("active", sa.Boolean, nullable=False),
    sa.Column("created_at", sa.DateTime, nullable=False),
    sa.Column("updated_at", sa.DateTime, nullable=False),
)

customers = sa.Table(
    "customers",
    metadata,
    sa.Column("customer_id", _id, primary_key=True, autoincrement=False),
    # the retailer's own id when it is not customer_id as a number (text ids, leading zeros: an import maps them
    # to customer ids): what leaves for Segment, Personalize, Customer Profiles and Pinpoint (crosschannel.core.ids)
    sa.Column("external_id", sa.String(64), unique=True),
    sa.Column("first_name", sa.String(60), nullable=False),
    sa.Column("last_name", sa.String(60), nullable=False),
    sa.Column("email", sa.String(120)),
    sa.Column("phone", sa.String(32)),
    sa.Column("email_opt_in", sa.Boolean, nullable=False),
    sa.Column("sms_opt_in", sa.Boolean, nullable=False),
    sa.Column("loyalty_tier", sa.String(16), nullable=False),
    sa.Column("home_store_id", sa.Integer),
    sa.Column("signup_date", sa.Date, nullable=False),
    sa.Column("updated_at", sa.DateTime, nullable=False),
)

inventory = sa.Table(
    "inventory",
    metadata,
    sa.Column("store_id", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("product_id", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("on_hand", sa.Integer, nullable=False),
    sa.Column("updated_at", sa.DateTime, nullable=False),
)

orders = sa.Table(
    "orders",
    metadata,
    sa.Column("order_id", _id, primary_key=True, autoincrement=False),
    sa.Column("customer_id", _id, nullable=False),
    sa.Column("store_id", sa.Integer),
    sa.Column("channel", sa.String(8), nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("order_ts", sa.DateTime, nullable=False),
    sa.Column("subtotal", _money, nullable=False),
    sa.Column("discount", _money, nullable=False),
    sa.Column("total", _money, nullable=False),
    sa.Column("updated_at", sa.DateTime, nullable=False),
    sa.Index("ix_orders_customer", "customer_id"),
)

order_lines = sa.Table(
    "order_lines",
    metadata,
    sa.Column("order_id", _id, primary_key=True, autoincrement=False),
    sa.Column("line_no", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("product_id", sa.Integer, nullable=False),
    sa.Column("quantity", sa.Integer, nullable=False),
    sa.Column("unit_price", _money, nullable=False),
    sa.Column("discount", _money, nullable=False),
    sa.Column("updated_at", sa.DateTime, nullable=False),
)

returns = sa.Table(
    "returns",
    metadata,
    sa.Column("return_id", _id, primary_key=True, autoincrement=False),
    sa.Column("order_id", _id, nullable=False),
    sa.Column("line_no", sa.Integer, nullable=False),
    sa.Column("product_id", sa.Integer, nullable=False),
    sa.Column("quantity", sa.Integer, nullable=False),
    sa.Column("refund_amount", _money, nullable=False),
    sa.Column("reason", sa.String(40), nullable=False),
    sa.Column("return_ts", sa.DateTime, nullable=False),
    sa.Column("updated_at", sa.DateTime, nullable=False),
)

RETAIL_TABLES: tuple[sa.Table, ...] = (stores, products, customers, inventory, orders, order_lines, returns)

cdc_log = sa.Table(
    "cdc_log",
    metadata,
    sa.Column("seq", _id, primary_key=True, autoincrement=True),
    sa.Column("table_name", sa.String(64), nullable=False),
    sa.Column("op", sa.String(1), nullable=False),
    sa.Column("commit_ts", sa.DateTime, nullable=False),
    sa.Column("row_data", sa.Text, nullable=False),
    sa.Index("ix_cdc_log_commit_ts", "commit_ts"),
)

cdc_clock = sa.Table(
    "cdc_clock",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("ts", sa.DateTime, nullable=False),
)

# The files `import-csv` loaded (digest: sha256 of their bytes), so the same files are refused the second time. Not a
# retail table: neither captured nor replicated; dropped with the rest when the generator rebuilds the DB.
byod_imports = sa.Table(
    "byod_imports",
    metadata,
    sa.Column("digest", sa.String(64), primary_key=True),
    sa.Column("orders_file", sa.String(255), nullable=False),
    sa.Column("customers_file", sa.String(255)),
    sa.Column("imported_at", sa.DateTime, nullable=False),
    sa.Column("orders", sa.Integer, nullable=False),
    sa.Column("lines", sa.Integer, nullable=False),
)

TS_FORMAT = "%Y-%m-%d %H:%M:%S.%f"


def table(name: str) -> sa.Table:
    """A retail table by name, with a clear error for unknown names."""
    for candidate in RETAIL_TABLES:
        if candidate.name == name:
            return candidate
    raise KeyError(f"unknown source table {name!r}; known: {', '.join(t.name for t in RETAIL_TABLES)}")


def connect(url: str, *, create: bool = False) -> sa.Engine:
    """An engine for the source DB; SQLite gets WAL mode and foreign-key-free bulk-friendly pragmas. A SQLite file
    that does not exist is created only when `create` is set (the generator, the CSV import): a reader such as
    the extract must not find an empty new database where the store's data should be."""
    if url.startswith("sqlite:///"):
        from pathlib import Path

        path = Path(url.removeprefix("sqlite:///"))
        if str(path) != ":memory:" and not path.exists():
            if not create:
                raise FileNotFoundError(
                    f"source DB {path} does not exist (source.url): build the synthetic retailer with "
                    "`make generate` or load your data with `python -m crosschannel import-csv`")
            path.parent.mkdir(parents=True, exist_ok=True)
        engine = sa.create_engine(url)

        @sa.event.listens_for(engine, "connect")
        def _pragmas(dbapi_connection, _record):
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.close()

        return engine
    return sa.create_engine(url, pool_pre_ping=True)


def create_schema(engine: sa.Engine) -> None:
    """Create every table (idempotent), and add the optional columns a DB made by an earlier version lacks (with
    their unique index; SQLite's change-capture triggers are made again to capture them). Change capture is
    switched on separately (`enable_cdc`)."""
    metadata.create_all(engine)
    with engine.begin() as conn:
        added, inspector = [], sa.inspect(conn)
        for tbl in metadata.sorted_tables:
            held = {c["name"] for c in inspector.get_columns(tbl.name)}
            for column in (c for c in tbl.columns if c.name not in held and c.nullable):
                conn.exec_driver_sql(f"ALTER TABLE {tbl.name} ADD COLUMN {column.name} "
                                     f"{column.type.compile(conn.dialect)}")
                if column.unique:
                    conn.exec_driver_sql(f"CREATE UNIQUE INDEX uq_{tbl.name}_{column.name} ON {tbl.name} "
                                         f"({column.name})")
                added.append(column)
        if added and conn.dialect.name == "sqlite" and cdc_enabled(conn):
            for name in conn.exec_driver_sql("SELECT name FROM sqlite_master WHERE type = 'trigger' AND name LIKE "
                                             "'cdc\\_%' ESCAPE '\\'").scalars().all():
                conn.exec_driver_sql(f"DROP TRIGGER {name}")
            for statement in _sqlite_triggers():
                conn.exec_driver_sql(statement)


def cdc_enabled(conn: sa.Connection) -> bool:
    if conn.dialect.name == "sqlite":
        query = "SELECT count(*) FROM sqlite_master WHERE type = 'trigger' AND name LIKE :pattern ESCAPE '\\'"
    else:
        query = "SELECT count(*) FROM information_schema.triggers WHERE trigger_name LIKE :pattern ESCAPE '\\'"
    return conn.execute(sa.text(query), {"pattern": "cdc\\_%"}).scalar_one() > 0


def enable_cdc(engine: sa.Engine) -> None:
    """Install the change-capture triggers on every retail table (idempotent)."""
    with engine.begin() as conn:
        if cdc_enabled(conn):
            return
        if conn.dialect.name == "sqlite":
            for statement in _sqlite_triggers():
                conn.exec_driver_sql(statement)
        elif conn.dialect.name == "postgresql":
            conn.exec_driver_sql(_PG_CAPTURE_FUNCTION)
            for tbl in RETAIL_TABLES:
                conn.exec_driver_sql(
                    f"CREATE TRIGGER cdc_{tbl.name} AFTER INSERT OR UPDATE OR DELETE ON {tbl.name} "
                    "FOR EACH ROW EXECUTE FUNCTION cdc_capture()"
                )
        else:
            raise NotImplementedError(f"change capture for {conn.dialect.name} is not implemented")


def _sqlite_triggers() -> Iterable[str]:
    clock = "(SELECT ts FROM cdc_clock WHERE id = 1)"
    for tbl in RETAIL_TABLES:
        for op, event, image in (("I", "INSERT", "NEW"), ("U", "UPDATE", "NEW"), ("D", "DELETE", "OLD")):
            pairs = ", ".join(f"'{c.name}', {image}.{c.name}" for c in tbl.columns)
            commit_ts = clock if op == "D" else f"COALESCE(NEW.updated_at, {clock})"
            yield (
                f"CREATE TRIGGER cdc_{tbl.name}_{op.lower()} AFTER {event} ON {tbl.name} BEGIN "
                f"INSERT INTO cdc_log (table_name, op, commit_ts, row_data) "
                f"VALUES ('{tbl.name}', '{op}', {commit_ts}, json_object({pairs})); END"
            )


_PG_CAPTURE_FUNCTION = """
CREATE OR REPLACE FUNCTION cdc_capture() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE clock timestamp := (SELECT ts FROM cdc_clock WHERE id = 1);
BEGIN
  IF TG_OP = 'DELETE' THEN
    INSERT INTO cdc_log (table_name, op, commit_ts, row_data)
    VALUES (TG_TABLE_NAME, 'D', clock, row_to_json(OLD)::text);
    RETURN OLD;
  END IF;
  INSERT INTO cdc_log (table_name, op, commit_ts, row_data)
  VALUES (TG_TABLE_NAME, substr(TG_OP, 1, 1), COALESCE(NEW.updated_at, clock), row_to_json(NEW)::text);
  RETURN NEW;
END $$;
"""


def set_clock(conn: sa.Connection, ts: dt.datetime) -> None:
    """Set the source DB's notion of now (commit time of deletes, transfer time of a full load)."""
    updated = conn.execute(sa.update(cdc_clock).where(cdc_clock.c.id == 1).values(ts=ts))
    if updated.rowcount == 0:
        conn.execute(sa.insert(cdc_clock).values(id=1, ts=ts))


def get_clock(conn: sa.Connection) -> dt.datetime | None:
    return conn.execute(sa.select(cdc_clock.c.ts).where(cdc_clock.c.id == 1)).scalar_one_or_none()


def _column_values(frame, column: sa.Column) -> list:
    """A frame column as Python values the DB-API accepts: text times, ints for booleans, None for nulls."""
    import pandas as pd

    if column.name not in frame and column.nullable:  # an optional column the writer leaves out
        return [None] * len(frame)
    values = frame[column.name]
    if isinstance(column.type, sa.DateTime):
        text = pd.to_datetime(values).dt.strftime(TS_FORMAT)
        return text.astype(object).where(values.notna(), None).tolist()
    if isinstance(column.type, sa.Date):
        text = pd.to_datetime(values).dt.strftime("%Y-%m-%d")
        return text.astype(object).where(values.notna(), None).tolist()
    if isinstance(column.type, sa.Boolean):
        return [None if v is None or v != v else int(bool(v)) for v in values.astype(object).tolist()]
    return values.astype(object).where(values.notna(), None).tolist()


def bulk_insert(conn: sa.Connection, tbl: sa.Table, frame, chunk_rows: int = 200_000) -> int:
    """Insert a DataFrame fast, in chunks to bound memory: COPY on PostgreSQL, executemany elsewhere."""
    names = [c.name for c in tbl.columns]
    for start in range(0, len(frame), chunk_rows):
        chunk = frame.iloc[start : start + chunk_rows]
        rows = list(zip(*(_column_values(chunk, c) for c in tbl.columns), strict=True))
        if conn.dialect.name == "postgresql":
            buffer = io.StringIO()
            writer = csv.writer(buffer, lineterminator="\n")
            for row in rows:
                writer.writerow(["\\N" if v is None else v for v in row])
            buffer.seek(0)
            cursor = conn.connection.driver_connection.cursor()
            cursor.copy_expert(f"COPY {tbl.name} ({', '.join(names)}) FROM STDIN WITH (FORMAT csv, NULL '\\N')", buffer)
        else:
            placeholders = ", ".join("?" for _ in names)
            conn.exec_driver_sql(f"INSERT INTO {tbl.name} ({', '.join(names)}) VALUES ({placeholders})", rows)
    return len(frame)
