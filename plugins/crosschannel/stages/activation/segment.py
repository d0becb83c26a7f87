"""Twilio Segment: identify calls carrying each customer's scores, reasons and treatment audiences as traits.

Only customers whose traits changed since the last successful publish are sent. The messages of the day are
written first (<root>/activation/segment/dt=D/attempt=A/messages/messages.jsonl, deterministic messageIds from the
DAG, the partition, the customer and the traits) and checked, with every other destination's plan, before any is
sent; then they are sent through the official library (`segment.analytics.Client`,
which batches within Segment's 32 KB message and 500 KB batch limits and retries 429 and 5xx answers) to the
host of the `activation.segment.conn_id` connection, whose password is the write key. Without that connection
the local target's outbox is the delivery. A message the library drops (full queue) or a batch it gives up on
fails the task, and the published snapshot (<root>/activation/segment/state/published/) moves on only
after every message was accepted.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
import uuid
from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING

from crosschannel.core import paths, sqljobs, storage
from crosschannel.core.config import get_config
from crosschannel.stages.activation import consent, outbox
from crosschannel.stages.activation.outbox import SEGMENT, ActivationError

if TYPE_CHECKING:
    import pandas as pd

MAX_MESSAGE_BYTES = 32 * 1024  # Segment's limit per message
ENVELOPE_BYTES = 400  # what the library adds around the traits: type, ids, timestamp, context.library
DAG_ID = "audience_activation"
log = logging.getLogger(__name__)


class SegmentDeliveryError(RuntimeError):
    """Segment did not accept every message after the library's retries (429, 5xx, a full queue): the task's
    retries send the same messages again."""


def traits(profile: pd.DataFrame) -> list[dict]:
    """Per customer: each model's probability (rounded, so noise alone is not a change), decile and reasons, the
    audiences the customer is a treatment member of, and `recommended_products` ({"id", "name", "category",
    "price"}, best first) where consent lets them leave (consent.deliverable_recommendations), else []."""
    digits = get_config().activation.segment.probability_digits
    models = list(get_config().models.specs)
    column = {name: profile[name].tolist() for name in  # as Python values: no other column leaves
              ["user_id", "audiences", *[f"{model}_{part}" for model in models
                                         for part in ("probability", "decile", "reason_1", "reason_2", "reason_3")]]}
    per_model = [(model, column[f"{model}_probability"], column[f"{model}_decile"],
                  [column[f"{model}_reason_{n}"] for n in (1, 2, 3)]) for model in models]
    records = []
    for i, products in enumerate(consent.deliverable_recommendations(profile).to_list()):
        values = {}
        for model, probabilities, deciles, reasons in per_model:
            probability, decile = probabilities[i], deciles[i]
            values[f"{model}_probability"] = None if probability != probability else round(float(probability), digits)
            values[f"{model}_decile"] = None if decile != decile else int(decile)
            values[f"{model}_reasons"] = [r[i] for r in reasons if isinstance(r[i], str)]
        values["audiences"] = list(column["audiences"][i])
        values["recommended_products"] = list(products)
        records.append({"user_id": column["user_id"][i], "traits": values})
    return records


def _digest(text: str) -> str:
    """The digest of a customer's traits, from their JSON with sorted keys."""
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _line(record: dict, text: str, message: str, digest: str) -> str:
    """The messages file's line of a customer: json.dumps({**record, "message_id", "digest"}, sort_keys=True),
    written around the traits' JSON already made for the digest (one encoding per customer instead of three)."""
    return (f'{{"digest": {json.dumps(digest)}, "message_id": {json.dumps(message)}, "traits": {text}, '
            f'"user_id": {json.dumps(record["user_id"])}}}')


def message_id(day: dt.date, user_id: str, digest: str) -> str:
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"{DAG_ID}/{day.isoformat()}/{user_id}/{digest}"))


def published_path():
    """The snapshot of what was last published: user_id, digest (a partition, replaced whole)."""
    return paths.activation_state(SEGMENT, "published")


def published() -> dict[str, str]:
    """user id -> digest of the traits last published."""
    if not storage.is_committed(published_path()):
        return {}
    table = sqljobs.read_partition(published_path())
    return dict(zip(table.column("user_id").to_pylist(), table.column("digest").to_pylist(), strict=True))


def plan(day: dt.date, decision: dict, profile: pd.DataFrame) -> dict:
    """Write the attempt's identify messages for the customers whose traits changed since the last publish, check
    them (consent, size, a connection on aws) and record them in the outbox; the plan to send ({} when nothing)."""
    if not outbox.to_plan(SEGMENT, day, "identify", decision):
        return {}
    before = published()
    lines, digests = [], {}
    records = traits(profile)
    if records:  # `traits` gives every customer the same keys: one record says what every message carries
        consent.refuse_contacts(SEGMENT, records[0]["traits"], "the identify traits")
    for record in records:
        text = json.dumps(record["traits"], sort_keys=True)
        digest = _digest(text)
        digests[record["user_id"]] = digest
        if before.get(record["user_id"]) != digest:
            _check_size(day, record, text)
            lines.append(_line(record, text, message_id(day, record["user_id"], digest), digest))
    folder = paths.delivery(SEGMENT, day, decision["attempt"], "messages")
    with storage.committing(folder, marker=False) as staging:
        (staging / "messages.jsonl").write_text("".join(line + "\n" for line in lines))
    if decision["send"] and lines and _connection() is None and get_config().target == "aws":
        raise outbox.DestinationNotReady(
            f"segment: connection {get_config().activation.segment.conn_id!r} with the source's write key as its "
            "password is required on the aws target; nothing was sent")
    here = decision if lines or not decision["send"] else \
        {**decision, "send": False, "reason": "no customer's traits changed since the last publish"}
    built = {"customers": len(digests), "changed": len(lines), "previously_published": len(before)}
    made = outbox.plan_request(SEGMENT, day, "identify", [], here, [storage.url_of(folder / "messages.jsonl")],
                               messages=len(lines), **built)
    return made if here["send"] else {}


def _check_size(day: dt.date, record: dict, text: str) -> None:
    """The library refuses an oversized message mid-send: refuse before sending any (`text`: the traits' JSON)."""
    size = len(text.encode()) + len(record["user_id"]) + ENVELOPE_BYTES
    if size > MAX_MESSAGE_BYTES:
        raise ActivationError(f"segment identify for {day}: user {record['user_id']}'s traits make a message of "
                              f"about {size:,} bytes, over Segment's {MAX_MESSAGE_BYTES:,}; nothing was sent")


def read_messages(plan: dict) -> Iterator[dict]:
    """The planned messages one at a time, read from the messages file as they are sent (never all in memory)."""
    with storage.location(plan["files"][0]).open("r", encoding="utf-8") as handle:
        for line in handle:
            if line.strip():
                yield json.loads(line)


def _connection():
    """The Segment connection, or None when it is not defined."""
    from airflow.exceptions import AirflowNotFoundException
    from airflow.sdk import BaseHook

    try:
        return BaseHook.get_connection(get_config().activation.segment.conn_id)
    except AirflowNotFoundException:
        return None


def host_of(connection) -> str:
    host = (connection.host or "").rstrip("/")
    if not host:
        return "https://api.segment.io"
    if "://" not in host:
        host = f"{connection.schema or 'https'}://{host}"
    return f"{host}:{connection.port}" if connection.port else host


def send(day: dt.date, messages: Iterable[dict], write_key: str, host: str) -> dict:
    """Send identify calls through the official library; raises if any message was dropped or any batch failed
    after the library's retries."""
    from segment.analytics import Client

    settings = get_config().activation.segment
    library_log = logging.getLogger("segment")
    if library_log.getEffectiveLevel() < logging.INFO:
        library_log.setLevel(logging.INFO)  # its DEBUG lines print whole request bodies, write key included
    errors: list[str] = []
    refused: list[int] = []

    def on_error(error, batch) -> None:
        errors.append(f"{len(batch)} message(s): {error}")
        status = getattr(error, "status", None)
        if isinstance(status, int) and 400 <= status < 500 and status != 429:
            refused.append(status)

    client = Client(write_key, host=host, on_error=on_error, upload_size=settings.upload_size,
                    max_queue_size=settings.max_queue_size, max_retries=settings.max_retries,
                    timeout=settings.timeout_seconds, gzip=False, sync_mode=False)
    dropped = sent = 0
    timestamp = dt.datetime(day.year, day.month, day.day, 23, 59, 59, tzinfo=dt.UTC)
    try:
        for message in messages:
            sent += 1
            accepted, _ = client.identify(message["user_id"], message["traits"], timestamp=timestamp,
                                          message_id=message["message_id"])
            if not accepted:  # the library's queue was full: this message would be silently lost
                dropped += 1
            if dropped:
                break
            if client.queue.qsize() >= settings.max_queue_size - settings.upload_size:
                client.flush()
        client.flush()
    finally:
        client.shutdown()
    if refused:  # the API refused the messages themselves (a bad write key, a malformed message): retrying cannot help
        raise ActivationError(f"segment identify for {day}: {len(refused)} batch(es) refused with HTTP "
                              f"{sorted(set(refused))} at {host}: {'; '.join(errors[:5])}. Nothing is marked published")
    if dropped or errors:
        raise SegmentDeliveryError(f"segment identify for {day}: {dropped} message(s) dropped by a full queue, "
                                   f"{len(errors)} failed batch(es) at {host}: {'; '.join(errors[:5])}. Nothing "
                                   "is marked published: the next attempt sends the same messages (same messageIds)")
    return {"sent": sent, "host": host}


def publish(plan: dict) -> dict:
    """Send the planned messages (the local target without a connection: the messages file is the delivery),
    record the delivery, then move the published snapshot on."""
    if not plan:
        return {"status": "nothing to send", "sent": False}
    day = dt.date.fromisoformat(plan["partition"])
    connection = _connection()
    if connection is not None and connection.password:
        receipt = {**send(day, read_messages(plan), connection.password, host_of(connection)), "status": "sent",
                   "sent": True}
    elif get_config().target == "aws":
        raise ActivationError(f"segment: connection {get_config().activation.segment.conn_id!r} with the source's "
                              "write key as its password is required on the aws target; nothing was sent")
    else:
        receipt = {"status": "outbox", "sent": False, "reason": f"no {get_config().activation.segment.conn_id!r} "
                                                                "connection: the messages file is the delivery"}
    outbox.record_delivery(plan, receipt)
    return {"partition": plan["partition"], "messages": _mark_published(plan), **receipt}


def _mark_published(plan: dict) -> int:
    """Move the published snapshot on by the plan's messages (as Arrow columns, not a dict of every user); the
    number of messages."""
    import pyarrow as pa
    import pyarrow.compute as pc

    latest = {message["user_id"]: message["digest"] for message in read_messages(plan)}
    sent = pa.table({"user_id": pa.array(list(latest), pa.string()), "digest": pa.array(list(latest.values()),
                                                                                         pa.string())})
    merged = sent
    if storage.is_committed(published_path()):
        before = sqljobs.read_partition(published_path()).select(["user_id", "digest"]).cast(sent.schema)
        merged = pa.concat_tables([before.filter(pc.invert(pc.is_in(before["user_id"], value_set=sent["user_id"]))),
                                   sent])
    sqljobs.write_partition(published_path(), merged.sort_by("user_id"))
    return len(latest)
