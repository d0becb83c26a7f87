"""Segment's S3 destination format: where the files are, how they are written, and how they are checked.

Segment writes gzip JSON lines, one message per line, under `<logs>/<source-id>/<received-day>/`, where
the received day is the epoch milliseconds of the UTC day's start. The ingest stage checks every line of
a day's files and lands them, unchanged, into `<root>/landing/segment/<source-id>/dt=YYYY-MM-DD/`.
"""

from __future__ import annotations

import datetime as dt
import gzip
import json
from collections import Counter
from collections.abc import Iterable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from airflow.sdk import ObjectStoragePath

MESSAGE_TYPES = frozenset({"track", "identify", "page", "screen", "group", "alias"})
ECOMMERCE_EVENTS = frozenset({
    "Products Searched", "Product List Viewed", "Product Viewed", "Product Added", "Product Removed",
    "Cart Viewed", "Checkout Started", "Order Completed", "Product Added to Wishlist",
})
EVENTS_PER_FILE = 20_000
MAX_ERRORS_SHOWN = 10


class SegmentFileError(ValueError):
    """A Segment file is unreadable or holds bad messages; the message names the file and lines."""


def received_day_folder(day: dt.date) -> str:
    """Segment's folder name for a received day: epoch milliseconds of the day's UTC start."""
    return str(int(dt.datetime.combine(day, dt.time(0), tzinfo=dt.UTC).timestamp() * 1000))


def day_source_path(logs: ObjectStoragePath, source_id: str, day: dt.date) -> ObjectStoragePath:
    return logs / source_id / received_day_folder(day)


def write_day(logs: ObjectStoragePath, source_id: str, day: dt.date, events: list[dict]) -> list[str]:
    """Write a day's messages as Segment does (sorted by receivedAt, gzip, fixed mtime for equal bytes)."""
    folder = day_source_path(logs, source_id, day)
    if folder.exists():
        folder.fs.rm(folder.path, recursive=True)
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


def _parse_time(value) -> dt.datetime | None:
    if not isinstance(value, str):
        return None
    try:
        parsed = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else None


def check_message(line: bytes, day: dt.date) -> tuple[str, str] | str:
    """(type, event name) of a good message, or the reason it is bad."""
    try:
        msg = json.loads(line)
    except ValueError as exc:
        return f"not valid JSON ({exc})"
    if not isinstance(msg, dict):
        return "not a JSON object"
    kind = msg.get("type")
    if kind not in MESSAGE_TYPES:
        return f"type {kind!r} is not one of {', '.join(sorted(MESSAGE_TYPES))}"
    if not isinstance(msg.get("messageId"), str) or not msg["messageId"]:
        return "missing messageId"
    if not (msg.get("userId") or msg.get("anonymousId")):
        return "neither userId nor anonymousId is set"
    if _parse_time(msg.get("timestamp")) is None:
        return f"timestamp {msg.get('timestamp')!r} is not an ISO-8601 time with a zone"
    received = _parse_time(msg.get("receivedAt"))
    if received is None:
        return f"receivedAt {msg.get('receivedAt')!r} is not an ISO-8601 time with a zone"
    if received.astimezone(dt.UTC).date() != day:
        return f"receivedAt {msg['receivedAt']} is not on the received day {day}"
    if kind == "track":
        event = msg.get("event")
        if not isinstance(event, str) or not event:
            return "track message without an event name"
        if not isinstance(msg.get("properties", {}), dict):
            return "properties is not an object"
        return kind, event
    if kind == "identify" and not isinstance(msg.get("traits", {}), dict):
        return "traits is not an object"
    return kind, ""


def check_file(name: str, data: bytes, day: dt.date) -> Counter:
    """Counts per (type, event) for a file whose every line is a good message; else SegmentFileError."""
    try:
        text = gzip.decompress(data)
    except (OSError, EOFError) as exc:
        raise SegmentFileError(f"Segment file {name}: not a readable gzip file ({exc})") from exc
    counts: Counter = Counter()
    errors = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        verdict = check_message(line, day)
        if isinstance(verdict, str):
            errors.append(f"line {number}: {verdict}")
        else:
            counts[verdict] += 1
    if errors:
        shown = "; ".join(errors[:MAX_ERRORS_SHOWN])
        more = f" (and {len(errors) - MAX_ERRORS_SHOWN} more)" if len(errors) > MAX_ERRORS_SHOWN else ""
        raise SegmentFileError(f"Segment file {name}: {len(errors)} bad message(s): {shown}{more}")
    return counts


def summarize(counts: Iterable[tuple[tuple[str, str], int]]) -> dict[str, int]:
    """{"identify": n, "track:Product Viewed": n, ...} for manifests and the demo summary."""
    out: dict[str, int] = {}
    for (kind, event), n in counts:
        key = f"{kind}:{event}" if event else kind
        out[key] = out.get(key, 0) + n
    return dict(sorted(out.items()))
