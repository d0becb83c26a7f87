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


KILLED_COMMIT = """
import os, signal, sys
from airflow.sdk import ObjectStoragePath
from crosschannel.core import storage

partition, point = ObjectStoragePath(sys.argv[1]), sys.argv[2]
exchange = storage._exchange


def killed(a, b):
    if point == "after the exchange":
        exchange(a, b)
    os.kill(os.getpid(), signal.SIGKILL)


storage._exchange = killed
with storage.committing(partition) as staging:
    (staging / "part-new.csv").write_text("new\\n")
    if point == "mid-write":
        os.kill(os.getpid(), signal.SIGKILL)
"""


@pytest.mark.parametrize("point", ["mid-write", "before the exchange", "after the exchange"])
def test_a_commit_killed_at_any_point_leaves_the_old_partition_or_the_new_one(point, tmp_path):
    """SIGKILL at each step of a local commit over an existing partition: readers find a whole partition, old or
    new, never none; the next commit succeeds and the partition holds exactly its files."""
    import os
    import subprocess
    import sys

    from airflow.sdk import ObjectStoragePath

    partition = ObjectStoragePath(f"file://{tmp_path}/trusted/orders/dt=2026-11-01")
    with storage.committing(partition) as staging:
        (staging / "part-old.csv").write_text("old\n")

    killed = subprocess.run([sys.executable, "-c", KILLED_COMMIT, str(partition), point],
                            env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}, timeout=120)

    assert killed.returncode == -9
    expected = ["_SUCCESS", "part-new.csv"] if point == "after the exchange" else ["_SUCCESS", "part-old.csv"]
    assert _tree(partition) == expected
    with storage.committing(partition) as staging:
        (staging / "part-next.csv").write_text("next\n")
    assert _tree(partition) == ["_SUCCESS", "part-next.csv"]
    leftovers = [p.name for p in partition.parent.iterdir() if p.name != partition.name]
    assert all(name.startswith("_staging_dt=2026-11-01_") for name in leftovers)  # a killed run's, swept after a day


def test_stale_leftovers_of_killed_commits_are_swept(tmp_path):
    import os
    import time

    from airflow.sdk import ObjectStoragePath

    partition = ObjectStoragePath(f"file://{tmp_path}/trusted/orders/dt=2026-11-01")
    stale, fresh = (partition.parent / "_staging_dt=2026-11-01_old", partition.parent / "_trash_dt=2026-11-01_new")
    for folder in (stale, fresh):
        folder.mkdir(parents=True)
    old = time.time() - storage.LEFTOVER_SECONDS - 60
    os.utime(stale.path, (old, old))

    with storage.committing(partition) as staging:
        (staging / "part.csv").write_text("x\n")

    assert not stale.exists() and fresh.exists()  # a fresh one may be a concurrent run's: left alone


def test_the_sweep_skips_a_leftover_that_a_concurrent_commit_removes_under_it(tmp_path, monkeypatch):
    """Two commits of one partition at once: one lists the other's staging folder, which is gone by the time it
    looks at its age (seen in CI as a FileNotFoundError failing the second run)."""
    from airflow.sdk import ObjectStoragePath

    partition = ObjectStoragePath(f"file://{tmp_path}/trusted/orders/dt=2026-11-01")
    (partition.parent / "_staging_dt=2026-11-01_other").mkdir(parents=True)
    real_stat = storage.os.stat

    def vanished(path, *args, **kwargs):
        if "_staging_dt=2026-11-01_other" in str(path):
            raise FileNotFoundError(path)
        return real_stat(path, *args, **kwargs)

    monkeypatch.setattr(storage.os, "stat", vanished)
    with storage.committing(partition) as staging:
        (staging / "part.csv").write_text("x\n")

    assert _tree(partition) == ["_SUCCESS", "part.csv"]
