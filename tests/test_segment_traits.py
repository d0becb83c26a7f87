"""Segment identify traits: only changed customers, within Segment's limits, retried, and never marked published
until every batch was accepted, against a scripted local HTTP server standing in for api.segment.io."""

from __future__ import annotations

import base64
import datetime as dt
import json
import logging

# Importing airflow configures logging (a dictConfig that replaces the root logger's handlers): done here, at
# collection, it cannot remove the handler `caplog` attaches to the root logger during a test.
import airflow.exceptions  # noqa: F401
import pandas as pd
import pytest

from crosschannel.core import paths, storage
from crosschannel.core.config import get_config
from crosschannel.stages.activation import outbox
from crosschannel.stages.activation import profiles as activation
from crosschannel.stages.activation import segment as segment_traits
from crosschannel.stages.activation.outbox import ActivationError
from tests.conftest import LoopbackServer, ReceivedRequest, configure

DAY1 = dt.date(2026, 11, 2)
DAY2 = dt.date(2026, 11, 3)
WRITE_KEY = "wk_test_9f3c2a7be81d4c55"
# Segment: 500 KB per batch request. The library closes a batch once its messages reach 475,000 bytes, so a
# request can carry up to one more message (~508 KB worst case): within 500 KiB, not within 500,000 bytes.
MAX_BATCH_BYTES = 500 * 1024
MAX_MESSAGE_BYTES = 32 * 1024  # Segment: 32 KB per call


def _send(**decision) -> dict:
    """A decision to send, with a new delivery attempt each time (a run)."""
    return {"send": True, "reason": "x", "force": False, "attempt": outbox.new_attempt("manual__test"), **decision}


# --------------------------------------------------------------------------------------------------------------
# The shared loopback server (conftest.http_server) as a scripted stand-in for the Segment HTTP tracking API


def batch(request: ReceivedRequest) -> list[dict]:
    return request.json().get("batch", [])


def basic_user(request: ReceivedRequest) -> str:
    scheme, _, token = (request.headers.get("Authorization") or "").partition(" ")
    assert scheme == "Basic", request.headers.get("Authorization")
    user, _, password = base64.b64decode(token).decode().partition(":")
    assert password == ""
    return user


def accepted_messages(server: LoopbackServer) -> list[dict]:
    return [m for r in server.received if r.status == 200 for m in batch(r)]


@pytest.fixture
def segment_api(http_server):
    """The shared loopback server as the tracking API: only /v1/batch answers from the script, anything else 404."""
    http_server.only_path = "/v1/batch"
    return http_server


@pytest.fixture
def env(tmp_path, monkeypatch):
    """Local target in tmp_path; quick retries and timeouts."""

    def setup(**overrides: str):
        return configure(monkeypatch, tmp_path, **{
            "CROSSCHANNEL__ACTIVATION__SEGMENT__MAX_RETRIES": "3",
            "CROSSCHANNEL__ACTIVATION__SEGMENT__TIMEOUT_SECONDS": "5",
            **{f"CROSSCHANNEL__ACTIVATION__SEGMENT__{k.upper()}": v for k, v in overrides.items()}})

    yield setup
    get_config.cache_clear()


@pytest.fixture
def connection(monkeypatch, segment_api):
    """A real Airflow connection (the Task SDK reads AIRFLOW_CONN_* outside a task too) to the local server."""
    monkeypatch.setenv("AIRFLOW_CONN_SEGMENT_DEFAULT", json.dumps(
        {"conn_type": "http", "host": segment_api.url, "password": WRITE_KEY}))
    return segment_api


# --------------------------------------------------------------------------------------------------------------
# Profiles


def _models() -> list[str]:

    return list(get_config().models.specs)


def make_profile(n: int, *, long_reasons: int = 0, first_id: int = 1000) -> pd.DataFrame:
    """n customers; the first `long_reasons` carry reasons long enough for 10-31 KB messages."""
    rows = []
    for i in range(n):
        row = {"customer_id": first_id + i, "user_id": str(first_id + i),
               "audiences": [a for a, k in (("lapsing", 2), ("vip", 3)) if i % k == 0]}
        for m, model in enumerate(_models()):
            row[f"{model}_probability"] = float("nan") if i % 97 == 5 else ((i * 37 + m * 11) % 1000) / 1000
            row[f"{model}_decile"] = float("nan") if i % 97 == 5 else float((i + m) % 10 + 1)
            for n_ in (1, 2, 3):
                if i < long_reasons:
                    # 6 reasons of 1.6-5.1 KB: messages from ~10 KB to ~31 KB, under the 32 KB limit
                    text = f"{model}-r{n_}-" + "x" * (1600 + (i * 53 + n_ * 17) % 3500)
                else:
                    text = None if (i + n_) % 7 == 0 else f"{model} reason {n_} for {i}"
                row[f"{model}_reason_{n_}"] = text
        rows.append(row)
    return pd.DataFrame(rows)


def _outbox(day: dt.date, attempt: str) -> dict:
    return storage.read_json(paths.delivery(segment_traits.SEGMENT, day, attempt, "outbox", "identify.json"))


def _built(plan: dict) -> dict:
    return {k: plan[k] for k in ("customers", "changed", "previously_published")}


# --------------------------------------------------------------------------------------------------------------
# Tests


def test_batches_respect_segment_limits_and_carry_the_files_message_ids(env, segment_api):
    env(upload_size="40")
    profile = make_profile(1500, long_reasons=500)

    plan = segment_traits.plan(DAY1, _send(), profile)
    messages = list(segment_traits.read_messages(plan))
    assert _built(plan) == {"customers": 1500, "changed": 1500, "previously_published": 0}
    # deterministic: rebuilding the same day gives the same messages and messageIds; another day does not
    assert list(segment_traits.read_messages(segment_traits.plan(DAY1, _send(), profile))) == messages
    day2 = list(segment_traits.read_messages(segment_traits.plan(DAY2, _send(), profile)))
    assert not {m["message_id"] for m in messages} & {m["message_id"] for m in day2}

    result = segment_traits.send(DAY1, messages, WRITE_KEY, segment_api.url)

    assert result == {"sent": 1500, "host": segment_api.url}
    received = segment_api.received
    assert received and all(r.status == 200 for r in received)
    assert {r.path for r in received} == {"/v1/batch"}
    assert {basic_user(r) for r in received} == {WRITE_KEY}
    for r in received:
        assert r.size <= MAX_BATCH_BYTES, f"a {r.size}-byte batch of {len(batch(r))} messages"
        assert 1 <= len(batch(r)) <= 40
        for m in batch(r):
            assert len(json.dumps(m).encode()) <= MAX_MESSAGE_BYTES
    # both limits were exercised: full-count batches of small messages, size-bound batches of large ones
    assert any(len(batch(r)) == 40 for r in received)
    assert any(len(batch(r)) < 40 and r.size > 400_000 for r in received)
    assert max(len(json.dumps(m).encode()) for m in accepted_messages(segment_api)) > 28 * 1024

    arrived = accepted_messages(segment_api)
    user_ids = [m["userId"] for m in arrived]
    assert sorted(user_ids) == sorted(str(c) for c in profile["customer_id"])  # each exactly once
    assert {m["userId"]: m["messageId"] for m in arrived} == {m["user_id"]: m["message_id"] for m in messages}
    by_user = {m["user_id"]: m for m in messages}
    for m in arrived:
        assert m["type"] == "identify"
        assert m["traits"] == by_user[m["userId"]]["traits"]
        assert m["timestamp"] == "2026-11-02T23:59:59.000+00:00"
    assert set(by_user["1000"]["traits"]) == {f"{model}_{k}" for model in _models()
                                             for k in ("probability", "decile", "reasons")} | {
                                                 "audiences", "recommended_products"}
    assert by_user["1005"]["traits"][f"{_models()[0]}_probability"] is None  # NaN scores are sent as null


def test_only_customers_whose_traits_changed_are_sent(env, connection):
    env()
    day1 = make_profile(30)
    outcome = segment_traits.publish(segment_traits.plan(DAY1, _send(), day1))

    assert outcome["status"] == "sent" and outcome["sent"] is True and outcome["host"] == connection.url
    assert sorted(m["userId"] for m in accepted_messages(connection)) == sorted(str(c) for c in day1.customer_id)
    published = segment_traits.published()
    assert len(published) == 30

    model = _models()[0]
    day2 = day1.copy()
    day2.at[3, f"{model}_decile"] = day2.at[3, f"{model}_decile"] % 10 + 1       # decile moved
    day2.at[11, "audiences"] = [*day2.at[11, "audiences"], "winback"]            # joined an audience
    day2.at[20, f"{model}_reason_1"] = "a brand new reason"                      # reasons changed
    day2.at[25, f"{model}_probability"] = day2.at[25, f"{model}_probability"] + 0.0004  # noise under rounding
    changed = {str(day2.at[i, "customer_id"]) for i in (3, 11, 20)}
    connection.reset()

    plan = segment_traits.plan(DAY2, _send(), day2)
    assert _built(plan) == {"customers": 30, "changed": 3, "previously_published": 30}
    outcome = segment_traits.publish(plan)

    arrived = accepted_messages(connection)
    assert sorted(m["userId"] for m in arrived) == sorted(changed)
    assert outcome["messages"] == 3 and outcome["sent"] is True
    assert {m["messageId"] for m in arrived} == {m["message_id"] for m in list(segment_traits.read_messages(plan))}
    after = segment_traits.published()
    assert {u for u in after if after[u] != published[u]} == changed
    assert set(after) == set(published)

    # a third day with nothing changed sends nothing
    connection.reset()
    decision = _send()
    assert segment_traits.plan(DAY2 + dt.timedelta(days=1), decision, day2) == {}
    receipt = _outbox(DAY2 + dt.timedelta(days=1), decision["attempt"])["receipt"]
    assert receipt["status"] == "not sent"
    assert receipt["reason"] == "no customer's traits changed since the last publish"
    assert segment_traits.publish({})["status"] == "nothing to send" and not connection.received


@pytest.mark.parametrize("retry_after", ["0", "1"])
def test_a_429_is_retried_and_every_message_arrives(env, connection, retry_after):
    env()
    profile = make_profile(25)
    plan = segment_traits.plan(DAY1, _send(), profile)
    connection.answer((429, {"Retry-After": retry_after}), then=200)

    outcome = segment_traits.publish(plan)

    assert outcome["status"] == "sent"
    first, *rest = connection.received
    assert first.status == 429 and rest and all(r.status == 200 for r in rest)
    arrived = accepted_messages(connection)
    assert sorted(m["userId"] for m in arrived) == sorted(str(c) for c in profile.customer_id)  # once each
    # the rejected batch went again with the same messageIds (Segment dedupes on them)
    assert {m["messageId"] for m in batch(first)} <= {m["messageId"] for m in arrived}
    assert {m["messageId"] for m in arrived} == {m["message_id"] for m in list(segment_traits.read_messages(plan))}
    assert len(segment_traits.published()) == 25


def test_a_batch_failing_every_retry_fails_the_publish_and_marks_nothing(env, connection):
    env(max_retries="1")
    profile = make_profile(12)
    plan = segment_traits.plan(DAY1, _send(), profile)
    messages = list(segment_traits.read_messages(plan))
    connection.answer(then=500)

    with pytest.raises(segment_traits.SegmentDeliveryError, match=r"[1-9]\d* failed batch\(es\)") as failure:
        segment_traits.publish(plan)

    assert connection.url in str(failure.value) and WRITE_KEY not in str(failure.value)
    assert connection.received and all(r.status == 500 for r in connection.received)
    attempts: dict[tuple, list[str | None]] = {}
    for r in connection.received:
        attempts.setdefault(tuple(m["messageId"] for m in batch(r)), []).append(r.headers.get("X-Retry-Count"))
    # every batch: the first attempt and max_retries=1 retry, then given up on
    assert list(attempts.values()) == [[None, "1"]] * len(attempts)
    assert f"{len(attempts)} failed batch(es)" in str(failure.value)
    assert sorted(i for ids in attempts for i in ids) == sorted(m["message_id"] for m in messages)
    assert segment_traits.published() == {}
    assert not segment_traits.published_path().exists()
    assert storage.read_json(storage.location(plan["outbox"]))["receipt"]["delivered"] is False

    # the rerun rebuilds the same messages, and delivers them once the API answers again
    rebuilt = segment_traits.plan(DAY1, _send(), profile)
    assert _built(rebuilt) == _built(plan)
    assert list(segment_traits.read_messages(rebuilt)) == messages
    connection.reset()
    connection.answer(then=200)
    assert segment_traits.publish(rebuilt)["status"] == "sent"
    assert {m["messageId"] for m in accepted_messages(connection)} == {m["message_id"] for m in messages}
    assert len(segment_traits.published()) == 12


def test_a_backfill_sends_nothing_and_marks_nothing(env, connection):
    env()
    decision = activation.decide(DAY1, force=False, backfill=True, run="backfill__2026-11-02")
    assert decision["send"] is False
    assert segment_traits.plan(DAY1, decision, make_profile(10)) == {}

    outcome = segment_traits.publish({})

    assert connection.received == [] and outcome["sent"] is False
    receipt = _outbox(DAY1, decision["attempt"])["receipt"]
    assert receipt["status"] == "not sent" and receipt["sent"] is False and receipt["delivered"] is False
    assert receipt["reason"] == decision["reason"]
    assert segment_traits.published() == {}
    # the messages are still written for the attempt (a forced run can send them)
    messages = paths.delivery(segment_traits.SEGMENT, DAY1, decision["attempt"], "messages", "messages.jsonl")
    assert len(messages.read_text().splitlines()) == 10


def test_a_customer_over_the_32kb_message_limit_fails_the_publish_and_marks_nothing(env, connection):
    env()
    profile = make_profile(8)
    model = _models()[0]
    for n_ in (1, 2, 3):
        profile.at[6, f"{model}_reason_{n_}"] = "y" * 12_000
    decision = _send()

    with pytest.raises(ActivationError, match="over Segment's 32,768; nothing was sent"):
        segment_traits.plan(DAY1, decision, profile)

    assert connection.received == []
    assert segment_traits.published() == {}
    assert not paths.delivery(segment_traits.SEGMENT, DAY1, decision["attempt"], "outbox", "identify.json").exists()


@pytest.mark.parametrize("level", [
    logging.INFO,
    logging.DEBUG,  # the library prints request bodies (write key included) at DEBUG: send() keeps it at INFO
], ids=["info", "debug"])
def test_the_write_key_is_never_written_to_the_outbox_or_the_logs(env, connection, caplog, level):
    env()
    encoded = base64.b64encode(f"{WRITE_KEY}:".encode()).decode()
    plan = segment_traits.plan(DAY1, _send(), make_profile(10))
    # one answer the library logs as an error (a 503 without a JSON body), retried at once
    connection.answer((503, {}, b"upstream unavailable"), then=200)
    caplog.set_level(level)

    outcome = segment_traits.publish(plan)
    segment_traits.send(DAY2, list(segment_traits.read_messages(plan)), WRITE_KEY, connection.url)

    assert outcome["sent"] is True and len(accepted_messages(connection)) == 20
    assert {basic_user(r) for r in connection.received} == {WRITE_KEY}  # the key did reach the API...
    recorded = storage.location(plan["outbox"]).read_text()
    assert json.loads(recorded)["receipt"]["status"] == "sent"
    assert WRITE_KEY not in recorded and encoded not in recorded  # ...and nowhere else
    assert caplog.handler in logging.getLogger().handlers
    assert any(r.name == "segment" and r.levelno >= logging.ERROR for r in caplog.records)  # logs were captured
    logged = caplog.text + "".join(str(r.args) + r.getMessage() for r in caplog.records)
    assert WRITE_KEY not in logged and encoded not in logged


@pytest.mark.parametrize("user_id", ["C00001", 'quote " and \\ backslash', "naïve ünïcödé ✓", "tab\tnew\nline",
                                     "\u2028"])
def test_a_message_line_is_the_json_dumps_it_stands_for(user_id):
    """segment._line writes the messages file's line around the traits' JSON already made for the digest: it must
    be exactly json.dumps of the whole record with sorted keys, whatever the retailer's ids hold."""
    record = {"user_id": user_id, "traits": {"audiences": ["win_back"], "churn_reasons": ["é", '"x"'],
                                             "churn_probability": 0.25}}
    text = json.dumps(record["traits"], sort_keys=True)

    line = segment_traits._line(record, text, "m-1", "d1")

    assert line == json.dumps({**record, "message_id": "m-1", "digest": "d1"}, sort_keys=True)
    assert json.loads(line)["user_id"] == user_id
