"""The ingest stage's check of Segment's S3-destination files: every line of the received day is checked, then the
files land unchanged into <root>/landing/segment/<source>/dt=YYYY-MM-DD/ with a manifest. The format is
crosschannel.core.segment_files.
"""

from __future__ import annotations

import datetime as dt
import gzip
import json
import logging
from collections import Counter
from collections.abc import Iterable

from crosschannel.core import paths, segment_files, storage
from crosschannel.core.config import get_config
from crosschannel.core.errors import DataError
from crosschannel.core.segment_files import MESSAGE_TYPES

log = logging.getLogger(__name__)
MAX_ERRORS_SHOWN = 10


class SegmentFileError(DataError, ValueError):
    """A Segment file is unreadable or holds bad messages; the message names the file and lines."""


def land_day(day: dt.date) -> dict:
    """Check every message of the day's Segment files and land them unchanged into the partition."""
    cfg = get_config()
    source_dir = segment_files.day_source_path(storage.location(cfg.segment.logs_url), cfg.segment.source_id, day)
    files = sorted(p for p in source_dir.glob("*.gz")) if source_dir.exists() else []
    skipped = cfg.sources.missing(["events"], "landing Segment's files")
    if skipped:
        if files:
            log.warning("%d Segment file(s) of %s left unread at %s: sources.events is false", len(files), day,
                        source_dir)
        files = []
    elif not files and not cfg.segment.allow_empty_day:
        raise FileNotFoundError(
            f"no Segment files for source {cfg.segment.source_id!r} on {day} at {source_dir} "
            "(set segment.allow_empty_day to accept a day without events, or sources.events to false when the "
            "retailer has no web or app events)"
        )
    target = paths.segment_landing(day)
    counts: dict = {}
    with storage.committing(target) as staging:
        for path in files:
            data = path.read_bytes()
            for key, n in check_file(str(path), data, day).items():
                counts[key] = counts.get(key, 0) + n
            (staging / path.name).write_bytes(data)
        manifest = {
            "partition": day.isoformat(),
            "source_id": cfg.segment.source_id,
            "source": storage.url_of(source_dir),
            "files": [p.name for p in files],
            "messages": sum(counts.values()),
            "by_type": summarize(counts.items()),
            **({"skipped": skipped} if skipped else {}),
        }
        storage.write_json(staging / "manifest.json", manifest)
    log.info("landed %d Segment messages for %s into %s", manifest["messages"], day, target)
    return manifest


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
