"""What a recommender reads from the trusted zone of a day, as pandas frames (DuckDB does the joins).

Purchases are the order lines of the trusted orders (the current state at the end of the day: the whole history
of purchases); events are the identified Product Viewed and Product Added of the trusted event partitions of the
`event_days` days up to the day (one partition per received day; the first partitions of a deployment have
none before them). The same interactions Personalize's interactions dataset holds (personalize_interactions.sql).
The queries are include/sql/recommendations/*.sql, rendered like every other SQL file of the bundle.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from typing import TYPE_CHECKING

from crosschannel.core import engines, paths, sqljobs, storage
from crosschannel.core.errors import MissingPartition

if TYPE_CHECKING:
    import pandas as pd

TABLES = ("orders", "order_lines", "products", "customers", "inventory")


def _sql(name: str) -> str:
    return engines.render(f"recommendations/{name}.sql")  # include/sql/recommendations/


@dataclasses.dataclass(frozen=True)
class Trusted:
    """The trusted tables of `day` a recommender needs."""

    day: dt.date
    purchases: pd.DataFrame  # customer_id, product_id, ts, quantity: every order line of the history
    products: pd.DataFrame  # product_id, category, active, created_at
    customers: pd.DataFrame  # customer_id, home_store_id (-1: none), signup_date
    inventory: pd.DataFrame  # store_id, product_id, on_hand
    events: pd.DataFrame  # customer_id, product_id, ts, weight: identified product views and cart adds

    def until(self, end: dt.datetime) -> Trusted:
        """The interactions before `end` (a temporal holdout's training side); the tables as they are."""
        return dataclasses.replace(self, purchases=self.purchases[self.purchases["ts"] < end],
                                   events=self.events[self.events["ts"] < end])


def end_of(day: dt.date) -> dt.datetime:
    """The first moment after `day` (naive UTC, as the trusted timestamps are)."""
    return dt.datetime.combine(day + dt.timedelta(days=1), dt.time(0))


def _published(name: str, day: dt.date):
    folder = paths.trusted(name, day)
    if not storage.is_committed(folder):
        raise MissingPartition(f"{storage.url_of(folder)}: no published trusted {name} for {day}, which the "
                               "recommender reads; run retail_trusted for the partition first")
    return sqljobs.read_partition(folder)


def event_folders(day: dt.date, event_days: int) -> list:
    """The committed trusted event partitions of the `event_days` days up to `day`."""
    base = paths.trusted("events", day).parent
    first = day - dt.timedelta(days=event_days - 1)
    return [paths.trusted("events", d) for d in paths.partition_days(base)
            if first <= d <= day and storage.is_committed(paths.trusted("events", d))]


def read(day: dt.date, *, event_days: int = 90) -> Trusted:
    """The trusted tables of `day` (and the event partitions of the `event_days` days up to it)."""
    tables = {name: _published(name, day) for name in TABLES}
    run = engines.run_duckdb
    folders = event_folders(day, event_days) if event_days > 0 else []
    if folders:
        landed = sqljobs.read_parquet([storage.url_of(f) for f in folders])
        events = run(_sql("events"), {"events": landed}).to_pandas()
    else:
        import pandas as pd

        events = pd.DataFrame({"customer_id": pd.Series(dtype="int64"), "product_id": pd.Series(dtype="int64"),
                               "ts": pd.Series(dtype="datetime64[us]"), "weight": pd.Series(dtype="float64")})
    return Trusted(
        day=day,
        purchases=_typed(run(_sql("purchases"), {k: tables[k] for k in ("orders", "order_lines")}).to_pandas()),
        events=_typed(events),
        **_shop(tables),
    )


def _shop(tables: dict) -> dict:
    """The products, customers and inventory frames of the trusted tables (include/sql/recommendations/)."""
    return {name: engines.run_duckdb(_sql(name), {name: tables[name]}).to_pandas()
            for name in ("products", "customers", "inventory")}


def _typed(frame: pd.DataFrame) -> pd.DataFrame:
    """Ids as int64 and timestamps as naive datetime64[us], whatever the engine returned."""
    import pandas as pd

    frame = frame.astype({"customer_id": "int64", "product_id": "int64"})
    ts = pd.to_datetime(frame["ts"])
    if getattr(ts.dt, "tz", None) is not None:
        ts = ts.dt.tz_convert("UTC").dt.tz_localize(None)
    return frame.assign(ts=ts.astype("datetime64[us]"))


def recent_purchases(day: dt.date, since: dt.datetime, until: dt.datetime) -> pd.DataFrame:
    """customer_id, product_id, ts of the trusted purchases of `day` in [since, until)."""
    tables = {name: _published(name, day) for name in ("orders", "order_lines")}
    purchases = _typed(engines.run_duckdb(_sql("purchases"), tables).to_pandas())
    return purchases[(purchases["ts"] >= since) & (purchases["ts"] < until)]


def stock(day: dt.date) -> Trusted:
    """The trusted state of `day` a stock check needs (customers' home stores, inventory, products), with no
    interactions."""
    import pandas as pd

    none = pd.DataFrame({"customer_id": pd.Series(dtype="int64"), "product_id": pd.Series(dtype="int64"),
                         "ts": pd.Series(dtype="datetime64[us]")})
    return Trusted(day=day, purchases=none, events=none.assign(weight=pd.Series(dtype="float64")),
                   **_shop({name: _published(name, day) for name in ("products", "customers", "inventory")}))
