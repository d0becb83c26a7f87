"""Landing the day's Segment files: every line checked, bad input named, the partition whole or untouched."""

from __future__ import annotations

import datetime as dt
import gzip
import json

import pytest

from crosschannel.core import paths, storage
from crosschannel.core import segment_files as segment_events
from crosschannel.core.config import get_config
from crosschannel.stages.ingest import segment as segment_check
from crosschannel.stages.ingest import tasks as ingest

DAY = dt.date(2026, 11, 1)


def _message(i: int, **overrides) -> dict:
    return {"type": "track", "event": "Product Viewed", "messageId": f"m{i}", "userId": None,
            "anonymousId": "anon-1", "timestamp": "2026-11-01T10:00:00.000Z",
            "receivedAt": "2026-11-01T10:00:01.000Z", "properties": {"product_id": 1}, **overrides}


def _write(cfg, name: str, lines: list[bytes], *, compress: bool = True):
    folder = segment_events.day_source_path(storage.location(cfg.segment.logs_url), cfg.segment.source_id, DAY)
    folder.mkdir(parents=True, exist_ok=True)
    body = b"\n".join(lines) + b"\n"
    (folder / name).write_bytes(gzip.compress(body, mtime=0) if compress else body)
    return folder / name


def _partition(cfg):
    return paths.segment_landing(DAY)


def _tree(folder) -> dict[str, bytes]:
    """Every file of a partition (its marker and versions), as a reader or a later commit could see them."""
    return {storage.relative(p, folder): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


def test_a_good_day_lands_unchanged_with_a_manifest(local_env):
    source = _write(local_env, "a.gz", [json.dumps(_message(i)).encode() for i in range(3)]
                    + [json.dumps({"type": "identify", "messageId": "m9", "userId": "7", "anonymousId": "anon-1",
                                   "timestamp": "2026-11-01T10:00:00Z", "receivedAt": "2026-11-01T10:00:02Z",
                                   "traits": {}}).encode()])

    manifest = ingest.land_segment_events(DAY)

    partition = _partition(local_env)
    assert storage.is_committed(partition)
    assert (storage.resolve(partition) / "a.gz").read_bytes() == source.read_bytes()
    assert manifest["messages"] == 4
    assert manifest["by_type"] == {"identify": 1, "track:Product Viewed": 3}


@pytest.mark.parametrize(
    ("line", "reason"),
    [
        (b"{not json", "not valid JSON"),
        (json.dumps(_message(1, messageId="")).encode(), "missing messageId"),
        (json.dumps(_message(1, type="bogus")).encode(), "type 'bogus' is not one of"),
        (json.dumps(_message(1, anonymousId=None)).encode(), "neither userId nor anonymousId"),
        (json.dumps(_message(1, timestamp="yesterday")).encode(), "timestamp 'yesterday' is not an ISO-8601"),
        (json.dumps(_message(1, receivedAt="2026-11-02T00:00:01Z")).encode(), "is not on the received day 2026-11-01"),
        (json.dumps(_message(1, event="")).encode(), "track message without an event name"),
    ],
)
def test_a_bad_line_fails_naming_file_and_line_and_keeps_the_previous_partition(local_env, line, reason):
    _write(local_env, "a.gz", [json.dumps(_message(0)).encode()])
    ingest.land_segment_events(DAY)
    committed = _tree(_partition(local_env))
    _write(local_env, "b.gz", [json.dumps(_message(2)).encode(), line])

    with pytest.raises(segment_check.SegmentFileError) as caught:
        ingest.land_segment_events(DAY)

    message = str(caught.value)
    assert "b.gz: 1 bad message(s): line 2: " in message and reason in message
    assert _tree(_partition(local_env)) == committed
    assert [p.name for p in _partition(local_env).parent.iterdir()] == [f"dt={DAY}"]


def test_a_file_that_is_not_gzip_is_named(local_env):
    _write(local_env, "c.gz", [b"{}"], compress=False)

    with pytest.raises(segment_check.SegmentFileError, match=r"c\.gz: not a readable gzip file"):
        ingest.land_segment_events(DAY)
    assert not _partition(local_env).exists()


def test_a_day_without_files_is_an_error_unless_allowed(local_env, monkeypatch):

    with pytest.raises(FileNotFoundError, match="no Segment files for source 'retail-web' on 2026-11-01"):
        ingest.land_segment_events(DAY)

    monkeypatch.setenv("CROSSCHANNEL__SEGMENT__ALLOW_EMPTY_DAY", "true")
    get_config.cache_clear()
    assert ingest.land_segment_events(DAY)["messages"] == 0
    assert storage.is_committed(_partition(get_config()))
