from __future__ import annotations

import boto3
import pytest

from crosschannel.core import storage
from crosschannel.core.config import get_config


def _tree(path):
    return sorted(storage.relative(p, path) for p in path.rglob("*") if p.is_file())


def _exercise_commit(root):
    """Commit, fail mid-write, then replace: the partition is always whole, never half-written."""
    partition = root / "trusted" / "orders" / "dt=2026-11-01"

    with storage.committing(partition) as staging:
        (staging / "part-0.csv").write_text("a\n")
        (staging / "sub").mkdir()
        (staging / "sub" / "part-1.csv").write_text("b\n")
    assert _tree(partition) == ["_SUCCESS", "part-0.csv", "sub/part-1.csv"]
    assert storage.is_committed(partition)

    with pytest.raises(RuntimeError, match="disk full"), storage.committing(partition) as staging:
        (staging / "part-0.csv").write_text("half")
        raise RuntimeError("disk full")
    assert _tree(partition) == ["_SUCCESS", "part-0.csv", "sub/part-1.csv"]
    assert (partition / "part-0.csv").read_text() == "a\n"

    with storage.committing(partition) as staging:
        (staging / "part-9.csv").write_text("z\n")
    assert _tree(partition) == ["_SUCCESS", "part-9.csv"]
    assert sorted(p.name for p in partition.parent.iterdir()) == ["dt=2026-11-01"]


def test_local_partition_commit_is_atomic(local_env):
    _exercise_commit(storage.root())


def test_s3_partition_commit_against_a_moto_server(moto_server, local_env, monkeypatch):
    boto3.client("s3", endpoint_url=moto_server).create_bucket(Bucket="storage-test")
    monkeypatch.setenv("CROSSCHANNEL__STORAGE__ROOT", "s3://storage-test/data")

    get_config.cache_clear()
    root = storage.root()
    assert root.protocol == "s3"

    _exercise_commit(root)

    keys = sorted(o["Key"] for o in boto3.client("s3", endpoint_url=moto_server)
                  .list_objects_v2(Bucket="storage-test")["Contents"])
    assert keys == ["data/trusted/orders/dt=2026-11-01/_SUCCESS", "data/trusted/orders/dt=2026-11-01/part-9.csv"]
