"""Faults at the commit of a partition (crosschannel.core.storage), the one step every zone publishes through:
a process killed at every file-system step of a commit, a full disk, and two runs committing one partition at
once. Readers resolve a partition through its marker; after any fault they find the previous partition or the
new one whole, never a mix or nothing, and the next commit converges."""

from __future__ import annotations

import os
import subprocess
import sys
import threading

import pytest

from crosschannel.core import storage

# A child process that commits `new` over the partition, counting every mutating call on the local file system
# (fsspec's LocalFileSystem, under Airflow's ObjectStoragePath) and killing itself with SIGKILL before call `kill_at`
# (never, when it is -1); it prints the number of calls it made.
CHILD = """
import os, resource, signal, sys
from fsspec.implementations.local import LocalFileSystem
from airflow.sdk import ObjectStoragePath
from crosschannel.core import storage

partition, kill_at, content, limit = ObjectStoragePath(sys.argv[1]), int(sys.argv[2]), sys.argv[3], int(sys.argv[4])
calls = 0
for name in ("_open", "mv", "rm", "rm_file", "mkdir", "makedirs", "touch", "cp_file"):
    real = getattr(LocalFileSystem, name)

    def counted(self, *args, _real=real, _name=name, **kwargs):
        global calls
        if _name != "_open" or any(m in kwargs.get("mode", args[1] if len(args) > 1 else "rb") for m in "wax+"):
            if calls == kill_at:
                os.kill(os.getpid(), signal.SIGKILL)
            calls += 1
        return _real(self, *args, **kwargs)

    setattr(LocalFileSystem, name, counted)
if limit:
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
with storage.committing(partition) as staging:
    (staging / "part-0.csv").write_text(content)
    (staging / "part-1.csv").write_text(content)
print(calls)
"""


WRITER = """
import sys
from airflow.sdk import ObjectStoragePath
from crosschannel.core import storage

partition, name = ObjectStoragePath(sys.argv[1]), sys.argv[2]
for n in range(15):
    with storage.committing(partition) as staging:
        (staging / "part-0.csv").write_text(f"{name}{n}")
        (staging / "part-1.csv").write_text(f"{name}{n}")
"""


def _commit(partition, content: str, *, kill_at: int = -1, limit: int = 0) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", CHILD, str(partition), str(kill_at), content, str(limit)],
                          env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}, capture_output=True,
                          text=True, timeout=120)


def _read(partition) -> dict[str, str] | None:
    """What a reader sees: the committed files and their content, or None when nothing is committed."""
    if not storage.is_committed(partition):
        return None
    folder = storage.resolve(partition)
    return {storage.relative(p, folder): p.read_text() for p in folder.rglob("*") if p.is_file()}


def _whole(content: str) -> dict[str, str]:
    return {"part-0.csv": content, "part-1.csv": content}


@pytest.fixture
def partition(tmp_path):
    from airflow.sdk import ObjectStoragePath

    return ObjectStoragePath(f"file://{tmp_path}/trusted/orders/dt=2026-11-01")


@pytest.mark.parametrize("existing", [False, True], ids=["first commit", "replacing commit"])
def test_a_commit_killed_at_every_file_system_step_leaves_old_or_new_whole(partition, existing):
    """SIGKILL before each mutating file-system call of a commit (the steps found by counting them in a clean
    commit): a reader sees the previous partition (or none, on a first commit) or the new one, whole; a later
    commit always succeeds and leaves exactly its files."""
    probe = partition.parent / "dt=2026-11-02"  # the same kind of commit, run cleanly to count its steps
    if existing:
        assert _commit(partition, "old").returncode == 0 and _commit(probe, "old").returncode == 0
    clean = _commit(probe, "new")
    steps = int(clean.stdout.split()[-1])
    assert steps >= 4  # staging folder, two files, the pointer (temporary file and its rename)
    before = _whole("old") if existing else None
    seen = set()
    for kill_at in range(steps):
        killed = _commit(partition, "new", kill_at=kill_at)
        assert killed.returncode == -9, (kill_at, killed.stderr[-2000:])
        after = _read(partition)
        assert after in (before, _whole("new")), (kill_at, after)
        seen.add("new" if after == _whole("new") else "old")
        if after == _whole("new"):  # put the old one back for the next kill point
            assert _commit(partition, "old").returncode == 0 if existing else storage.remove(partition) is None
    # the switch (the pointer's rename) is the commit's last step: every kill before it leaves the old partition
    assert seen == {"old"}
    assert _commit(partition, "next").returncode == 0
    assert _read(partition) == _whole("next")


def test_a_full_disk_during_a_commit_keeps_the_previous_partition(partition):
    """The file-size limit (RLIMIT_FSIZE, as a full disk answers EFBIG/ENOSPC) stops the commit mid-write: the
    commit fails, the previous partition stays readable and whole, and its half-written version is removed."""
    assert _commit(partition, "old").returncode == 0
    failed = _commit(partition, "x" * 100_000, limit=50_000)
    assert failed.returncode != 0 and "File too large" in failed.stderr
    assert _read(partition) == _whole("old")
    assert sorted(p.name for p in partition.iterdir()) == sorted([storage.MARKER, storage.version_of(partition)])
    assert _commit(partition, "y" * 100_000).returncode == 0
    assert _read(partition) == _whole("y" * 100_000)


def test_two_runs_committing_one_partition_at_once_never_show_a_mix_or_nothing(partition):
    """Two processes commit the same partition 15 times each, at the same time, while this process reads it
    continuously: every read is one whole version (both files of one writer's commit), never a mix, never empty,
    and at the end the partition is the last pointer's version."""
    assert _commit(partition, "start").returncode == 0
    stop = threading.Event()
    reads: list[dict | None] = []

    def reader():
        while not stop.is_set():
            try:
                reads.append(_read(partition))
            except FileNotFoundError:  # the version it resolved was replaced while it read: a reader retries
                continue

    thread = threading.Thread(target=reader)
    thread.start()
    writers = [subprocess.Popen([sys.executable, "-c", WRITER, str(partition), name],
                                env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}) for name in ("a", "b")]
    assert [w.wait(timeout=300) for w in writers] == [0, 0]
    stop.set()
    thread.join()

    assert len(reads) > 10
    for seen in reads:
        assert seen is not None and set(seen) == {"part-0.csv", "part-1.csv"}, seen
        assert seen["part-0.csv"] == seen["part-1.csv"], seen  # one writer's one commit
    final = _read(partition)
    assert final["part-0.csv"] in ("a14", "b14") and final["part-0.csv"] == final["part-1.csv"]
