"""Segment's S3 destination format: where the files are, how they are written, and which messages it carries.

Segment writes gzip JSON lines, one message per line, under `<logs>/<source-id>/<received-day>/`, where
the received day is the epoch milliseconds of the UTC day's start. The simulator writes the same files; the
ingest stage (crosschannel.stages.ingest.segment) checks every line and lands them unchanged.
"""

from __future__ import annotations

import datetime as dt
import gzip
import json
from typing import TYPE_CHECKING

from crosschannel.core import storage

if TYPE_CHECKING:
    from airflow.sdk import ObjectStoragePath

MESSAGE_TYPES = frozenset({"track", "identify", "page", "screen", "group", "alias"})
ECOMMERCE_EVENTS = frozenset({
    "Products Searched", "Product List Viewed", "Product Viewed", "Product Added", "Product Removed",
    "Cart Viewed", "Checkout Started", "Order Completed", "Product Added to Wishlist",
})
EVENTS_PER_FILE = 20_000


def received_day_folder(day: dt.date) -> str:
    """Segment's folder name for a received day: epoch milliseconds of the day's UTC start."""
    return str(int(dt.datetime.combine(day, dt.time(0), tzinfo=dt.UTC).timestamp() * 1000))


def day_source_path(logs: ObjectStoragePath, source_id: str, day: dt.date) -> ObjectStoragePath:
    return logs / source_id / received_day_folder(day)


def write_day(logs: ObjectStoragePath, source_id: str, day: dt.date, events: list[dict]) -> list[str]:
    """Write a day's messages as Segment does (sorted by receivedAt, gzip, fixed mtime for equal bytes)."""
    folder = day_source_path(logs, source_id, day)
    storage.remove(folder)
    folder.mkdir(parents=True, exist_ok=True)
    ordered = sorted(events, key=lambda e: (e["receivedAt"], e["messageId"]))
    names = []
    for index, start in enumerate(range(0, len(ordered), EVENTS_PER_FILE)):
        chunk = ordered[start : start + EVENTS_PER_FILE]
        body = "".join(json.dumps(e, separators=(",", ":")) + "\n" for e in chunk).encode()
        name = f"{received_day_folder(day)}.{index:04d}.gz"
        (folder / name).write_bytes(gzip.compress(body, compresslevel=6, mtime=0))
        names.append(name)
    return names
