"""Trusted zone, Segment side: the day's landed messages flattened to text columns for the SQL in
include/sql/trusted/ (identity_map.sql, events.sql), which types, deduplicates and stitches them.

`plan_identities` flattens the landed day in the worker on both targets (one implementation of the JSON
handling) into <root>/staging/segment_messages/dt=.../ and plans the identity map after the day (from the
previous day's published map); `plan_events` plans the day's typed events. Both are SQL jobs whose outputs
are gate candidates.
"""

from __future__ import annotations

import datetime as dt
import gzip
import json
from typing import TYPE_CHECKING

from crosschannel.core import engines, paths, sqljobs, storage
from crosschannel.core.errors import MissingPartition

if TYPE_CHECKING:
    import pyarrow as pa

COLUMNS = ("message_id", "message_type", "event", "user_id", "anonymous_id", "event_ts", "received_at", "channel",
           "product_id", "category", "price", "quantity", "order_id", "revenue", "search_query")


def _utc_text(value: str | None) -> str | None:
    """ISO-8601 with a zone (as Segment sends it) to 'YYYY-MM-DD HH:MM:SS.ffffff' UTC, which both engines cast."""
    if not value:
        return None
    moment = dt.datetime.fromisoformat(value.replace("Z", "+00:00")).astimezone(dt.UTC)
    return moment.strftime("%Y-%m-%d %H:%M:%S.%f")


def _text(value) -> str | None:
    return None if value is None else str(value)


def flatten(message: dict) -> dict:
    props = message.get("properties") or {}
    return {
        "message_id": message["messageId"],
        "message_type": message["type"],
        "event": message.get("event"),
        "user_id": _text(message.get("userId")),
        "anonymous_id": _text(message.get("anonymousId")),
        "event_ts": _utc_text(message.get("timestamp")),
        "received_at": _utc_text(message.get("receivedAt")),
        "channel": (message.get("context") or {}).get("channel"),
        "product_id": _text(props.get("product_id")),
        "category": _text(props.get("category")),
        "price": _text(props.get("price")),
        "quantity": _text(props.get("quantity")),
        "order_id": _text(props.get("order_id")),
        "revenue": _text(props.get("revenue", props.get("total"))),
        "search_query": _text(props.get("query")),
    }


def messages_table(records: list[dict]) -> pa.Table:
    """Flattened messages (with their file and row order) as an Arrow table of text columns."""
    import pyarrow as pa

    data = {name: pa.array([r[name] for r in records], pa.string()) for name in COLUMNS}
    data["_file_seq"] = pa.array([r["_file_seq"] for r in records], pa.int64())
    data["_row_seq"] = pa.array([r["_row_seq"] for r in records], pa.int64())
    return pa.table(data)


def read_day(day: dt.date) -> pa.Table:
    """The day's landed Segment messages (the committed partition), flattened."""
    folder = paths.segment_landing(day)
    if not storage.is_committed(folder):
        raise MissingPartition(f"{storage.url_of(folder)}: the Segment partition of {day} has not landed")
    records = []
    for file_seq, path in enumerate(sorted(storage.resolve(folder).glob("*.gz"))):
        for row_seq, line in enumerate(gzip.decompress(path.read_bytes()).splitlines()):
            if line.strip():
                records.append({**flatten(json.loads(line)), "_file_seq": file_seq, "_row_seq": row_seq})
    return messages_table(records)


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
    """Flatten the landed day (committed under staging/segment_messages/) and plan the identity map job."""
    sqljobs.write_partition(paths.segment_messages(day, run), read_day(day))
    return [sqljobs.job(day, "identity_map.sql", engines.render("trusted/identity_map.sql"), {
        "previous": sqljobs.parquet(previous_identities(day), IDENTITY_SCHEMA),
        "messages": sqljobs.parquet([paths.segment_messages(day, run)]), "customers": _customers(day, run)},
        paths.candidate("identity_map", day, run=run))]


def plan_events(day: dt.date, run: str = "") -> list[dict]:
    """Plan the typed events job over the flattened day and the day's identity map candidate."""
    return [sqljobs.job(day, "events.sql", engines.render("trusted/events.sql"), {
        "messages": sqljobs.parquet([paths.segment_messages(day, run)]), "customers": _customers(day, run),
        "identities": sqljobs.parquet([paths.candidate("identity_map", day, run=run)])},
        paths.candidate("events", day, run=run))]


def _customers(day: dt.date, run: str) -> dict:
    """The run's merged customers (its merge_table job ran first): whose userIds are external ids."""
    return sqljobs.parquet([paths.candidate("customers", day, run=run)])


def type_day(messages: pa.Table, previous: pa.Table, run=engines.run_duckdb,
             customers: pa.Table | None = None) -> tuple[pa.Table, pa.Table]:
    """(identity map after the day, the day's typed events) from the day's messages, the previous map and the
    customers (customer_id, external_id; none: every userId is a customer id)."""
    customers = sqljobs.empty_table(USER_SCHEMA) if customers is None else customers
    identities = run(engines.render("trusted/identity_map.sql"),
                     {"previous": previous, "messages": messages, "customers": customers})
    events = run(engines.render("trusted/events.sql"),
                 {"messages": messages, "identities": identities, "customers": customers})
    return identities, events
