from __future__ import annotations

import boto3
import pytest

from crosschannel.core import storage
from crosschannel.core.config import get_config


def _tree(path):
    return sorted(storage.relative(p, path) for p in path.rglob("*") if p.is_file())


def _committed(path):
    """The committed files of a partition, as a reader resolving its marker sees them."""
    return _tree(storage.resolve(path)) if storage.is_committed(path) else None


def _exercise_commit(root):
    """Commit, fail mid-write, then replace: the partition is always whole, never half-written."""
    partition = root / "trusted" / "orders" / "dt=2026-11-01"

    with storage.committing(partition) as staging:
        (staging / "part-0.csv").write_text("a\n")
        (staging / "sub").mkdir()
        (staging / "sub" / "part-1.csv").write_text("b\n")
    assert _committed(partition) == ["part-0.csv", "sub/part-1.csv"]

    with pytest.raises(RuntimeError, match="disk full"), storage.committing(partition) as staging:
        (staging / "part-0.csv").write_text("half")
        raise RuntimeError("disk full")
    assert _committed(partition) == ["part-0.csv", "sub/part-1.csv"]
    assert (storage.resolve(partition) / "part-0.csv").read_text() == "a\n"

    first = storage.version_of(partition)
    with storage.committing(partition) as staging:
        (staging / "part-9.csv").write_text("z\n")
    assert _committed(partition) == ["part-9.csv"]
    version = storage.version_of(partition)
    # the replaced version is retired, kept a day for readers that resolved it before the switch
    assert _tree(partition) == sorted(["_SUCCESS", f"{version}/part-9.csv", f"{first}/part-0.csv",
                                       f"{first}/sub/part-1.csv"])
    assert list(storage.read_json(partition / storage.MARKER)["retired"]) == [first]
    assert sorted(p.name for p in partition.parent.iterdir()) == ["dt=2026-11-01"]
    return first


def test_local_partition_commit_is_atomic(local_env):
    _exercise_commit(storage.root())


def test_s3_partition_commit_against_a_moto_server(moto_server, local_env, monkeypatch):
    boto3.client("s3", endpoint_url=moto_server).create_bucket(Bucket="storage-test")
    monkeypatch.setenv("CROSSCHANNEL__STORAGE__ROOT", "s3://storage-test/data")

    get_config.cache_clear()
    root = storage.root()
    assert root.protocol == "s3"

    first = _exercise_commit(root)

    keys = sorted(o["Key"] for o in boto3.client("s3", endpoint_url=moto_server)
                  .list_objects_v2(Bucket="storage-test")["Contents"])
    version = storage.version_of(root / "trusted" / "orders" / "dt=2026-11-01")
    folder = "data/trusted/orders/dt=2026-11-01"
    assert keys == sorted([f"{folder}/_SUCCESS", f"{folder}/{version}/part-9.csv", f"{folder}/{first}/part-0.csv",
                           f"{folder}/{first}/sub/part-1.csv"])


def test_a_retired_version_is_deleted_by_a_later_commit_once_a_day_old(tmp_path):
    from airflow.sdk import ObjectStoragePath

    partition = ObjectStoragePath(f"file://{tmp_path}/trusted/orders/dt=2026-11-01")
    for n in range(2):
        with storage.committing(partition) as staging:
            (staging / "part.csv").write_text(f"{n}\n")
    pointer = storage.read_json(partition / storage.MARKER)
    (retired,) = pointer["retired"]
    storage.write_json(partition / storage.MARKER, {**pointer, "retired": {retired: 0}})  # retired long ago
    with storage.committing(partition) as staging:
        (staging / "part.csv").write_text("2\n")
    names = {p.name for p in partition.iterdir()}
    assert retired not in names and pointer["version"] in names and len(names) == 3  # marker, current, retired
    assert _committed(partition) == ["part.csv"]


def test_a_marker_without_a_pointer_means_the_files_in_the_folder(tmp_path):
    """What other writers leave (an empty _SUCCESS beside the files) reads as before, and the next commit
    replaces those files."""
    from airflow.sdk import ObjectStoragePath

    partition = ObjectStoragePath(f"file://{tmp_path}/trusted/orders/dt=2026-11-01")
    partition.mkdir(parents=True)
    (partition / "part-old.csv").write_text("old\n")
    (partition / storage.MARKER).write_text("")
    assert _committed(partition) == ["_SUCCESS", "part-old.csv"]
    with storage.committing(partition) as staging:
        (staging / "part-new.csv").write_text("new\n")
    assert _committed(partition) == ["part-new.csv"]
    assert [p.name for p in partition.iterdir() if p.name != storage.MARKER] == [storage.version_of(partition)]


KILLED_COMMIT = """
import os, signal, sys
from airflow.sdk import ObjectStoragePath
from crosschannel.core import storage

partition, point = ObjectStoragePath(sys.argv[1]), sys.argv[2]
write_json, remove = storage.write_json, storage.remove


def kill():
    os.kill(os.getpid(), signal.SIGKILL)


def killed_write(path, payload):
    if point == "after the pointer":
        write_json(path, payload)
    kill()


def killed_remove(path):
    if point == "after the pointer" and path.name.startswith(storage.VERSION_PREFIX):
        kill()
    remove(path)


storage.write_json, storage.remove = killed_write, killed_remove
with storage.committing(partition) as staging:
    (staging / "part-new.csv").write_text("new\\n")
    if point == "mid-write":
        kill()
"""


@pytest.mark.parametrize("point", ["mid-write", "before the pointer", "after the pointer"])
def test_a_commit_killed_at_any_point_leaves_the_old_partition_or_the_new_one(point, tmp_path):
    """SIGKILL at each step of a commit over an existing partition: readers find a whole partition, old or
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
    assert _committed(partition) == (["part-new.csv"] if point == "after the pointer" else ["part-old.csv"])
    with storage.committing(partition) as staging:
        (staging / "part-next.csv").write_text("next\n")
    assert _committed(partition) == ["part-next.csv"]
    leftovers = [p.name for p in partition.iterdir() if p.name not in (storage.MARKER, storage.version_of(partition))]
    assert len(leftovers) <= 2  # the retired version and a killed run's unpointed one, swept once a day old


def test_stale_leftovers_of_killed_commits_are_swept(tmp_path):
    """A killed run's version inside the partition (or staging beside a folder committed without a marker) is
    deleted by a later commit once a day old; a fresh one may be a concurrent run's and is left alone."""
    import os
    import time

    from airflow.sdk import ObjectStoragePath

    partition = ObjectStoragePath(f"file://{tmp_path}/trusted/orders/dt=2026-11-01")
    old = int(time.time()) - storage.LEFTOVER_SECONDS - 60
    stale, fresh = partition / f"_v{old}-killed", partition / f"_v{int(time.time())}-running"
    outbox = ObjectStoragePath(f"file://{tmp_path}/activation/pinpoint/dt=2026-11-01")
    stale_beside = outbox.parent / "_staging_dt=2026-11-01_old"
    fresh_beside = outbox.parent / "_trash_dt=2026-11-01_new"
    for folder in (stale, fresh, stale_beside, fresh_beside):
        folder.mkdir(parents=True)
    os.utime(stale_beside.path, (old, old))

    with storage.committing(partition) as staging:
        (staging / "part.csv").write_text("x\n")
    with storage.committing(outbox, marker=False) as staging:
        (staging / "part.csv").write_text("x\n")

    assert not stale.exists() and fresh.exists()
    assert not stale_beside.exists() and fresh_beside.exists()


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
    with storage.committing(partition, marker=False) as staging:
        (staging / "part.csv").write_text("x\n")

    assert _tree(partition) == ["part.csv"]
