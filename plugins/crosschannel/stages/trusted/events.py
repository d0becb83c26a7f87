"""Trusted zone, Segment side: the day's landed messages, typed, deduplicated and stitched by the SQL in
include/sql/trusted/ (identity_map.sql, events.sql), which read the landed gzip files as lines and flatten them
(segment_messages.sql) on the engine that runs the job: no message passes through the worker.

`plan_identities` plans the identity map after the day (from the previous day's published map); `plan_events`
plans the day's typed events. Both are SQL jobs whose outputs are gate candidates.
"""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING

from crosschannel.core import engines, paths, sqljobs, storage
from crosschannel.core.errors import MissingPartition

if TYPE_CHECKING:
    import pyarrow as pa


def landed_day(day: dt.date) -> dict:
    """The day's landed Segment files (the committed partition) as the SQL jobs' `segment_lines` input."""
    folder = paths.segment_landing(day)
    if not storage.is_committed(folder):
        raise MissingPartition(f"{storage.url_of(folder)}: the Segment partition of {day} has not landed")
    return sqljobs.json_lines(sorted(storage.resolve(folder).glob("*.gz")))


IDENTITY_SCHEMA = "anonymous_id STRING, customer_id BIGINT, identified_at TIMESTAMP"
USER_SCHEMA = "customer_id BIGINT, external_id STRING"  # what user_customers.sql reads of the trusted customers
EVENTS_SCHEMA = ("message_id STRING, event_name STRING, event_ts TIMESTAMP, received_at TIMESTAMP, customer_id BIGINT, "
                 "stitched BOOLEAN, anonymous_id STRING, channel STRING, product_id BIGINT, category STRING, "
                 "price DECIMAL(12, 2), quantity BIGINT, order_id BIGINT, revenue DECIMAL(12, 2), search_query STRING")


def empty_identities() -> pa.Table:
    return sqljobs.empty_table(IDENTITY_SCHEMA)


def previous_identities(day: dt.date) -> list:
    """The published identity map of the day before (none on the first day; an error across a gap)."""
    previous = paths.trusted("identity_map", day - dt.timedelta(days=1))
    if storage.is_committed(previous):
        return [previous]
    earlier = [d for d in paths.partition_days(previous.parent)
               if d < day and storage.is_committed(paths.trusted("identity_map", d))]
    if earlier:
        raise MissingPartition(
            f"{storage.url_of(previous)}: the identity map of {day - dt.timedelta(days=1)} is missing, but earlier "
            f"days have one; run retail_trusted for that day first (the map carries every earlier identification)")
    return []


def plan_identities(day: dt.date, run: str = "") -> list[dict]:
    """Plan the identity map job over the landed day."""
    return [sqljobs.job(day, "identity_map.sql", engines.render("trusted/identity_map.sql"), {
        "previous": sqljobs.parquet(previous_identities(day), IDENTITY_SCHEMA),
        "segment_lines": landed_day(day), "customers": _customers(day, run)},
        paths.candidate("identity_map", day, run=run))]


def plan_events(day: dt.date, run: str = "") -> list[dict]:
    """Plan the typed events job over the landed day and the day's identity map candidate."""
    return [sqljobs.job(day, "events.sql", engines.render("trusted/events.sql"), {
        "segment_lines": landed_day(day), "customers": _customers(day, run),
        "identities": sqljobs.parquet([paths.candidate("identity_map", day, run=run)])},
        paths.candidate("events", day, run=run))]


def _customers(day: dt.date, run: str) -> dict:
    """The run's merged customers (its merge_table job ran first): whose userIds are external ids."""
    return sqljobs.parquet([paths.candidate("customers", day, run=run)])


def type_day(lines: pa.Table, previous: pa.Table, run=engines.run_duckdb,
             customers: pa.Table | None = None) -> tuple[pa.Table, pa.Table]:
    """(identity map after the day, the day's typed events) from the day's message lines (`segment_lines`), the
    previous map and the customers (customer_id, external_id; none: every userId is a customer id)."""
    customers = sqljobs.empty_table(USER_SCHEMA) if customers is None else customers
    identities = run(engines.render("trusted/identity_map.sql"),
                     {"previous": previous, "segment_lines": lines, "customers": customers})
    events = run(engines.render("trusted/events.sql"),
                 {"segment_lines": lines, "identities": identities, "customers": customers})
    return identities, events
