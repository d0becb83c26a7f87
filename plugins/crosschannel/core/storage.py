"""One object-store abstraction for every zone: Airflow's ObjectStoragePath over file:// or s3://.

A partition is committed atomically: it is written under a staging prefix beside its final place and
published only when complete, with a `_SUCCESS` marker. On a local file system publishing is one rename, or, over
an existing partition, one atomic exchange of the two folders (Linux `renameat2(RENAME_EXCHANGE)`): a process
killed at any point leaves the old partition or the new one, never none; what it leaves behind (a staging folder)
is swept by a later commit of the same partition.
On S3 (no rename) the old partition's marker is removed first, the staged objects are copied over it, stale
ones deleted and the marker written last, so a reader that requires the marker never sees a mix of old and
new. A failure before publishing leaves the previous partition untouched and removes the staging prefix.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import functools
import json
import os
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from crosschannel.core.config import get_config
from crosschannel.core.errors import MissingPartition

if TYPE_CHECKING:
    from airflow.sdk import ObjectStoragePath

MARKER = "_SUCCESS"
LEFTOVER_SECONDS = 24 * 3600  # staging or trash older than this beside a partition is a killed run's leftover
_RENAME_EXCHANGE = 2
_AT_FDCWD = -100


def location(url: str, conn_id: str | None = None) -> ObjectStoragePath:
    """An ObjectStoragePath for a file:// or s3:// URL (the connection only matters for s3://)."""
    from airflow.sdk import ObjectStoragePath

    if url.startswith("s3://"):
        return ObjectStoragePath(url, conn_id=conn_id or get_config().storage.conn_id)
    return ObjectStoragePath(url)


def root() -> ObjectStoragePath:
    """The storage root of the configured deployment."""
    return location(get_config().storage.url)


def zone(*parts: str) -> ObjectStoragePath:
    """A path under the storage root, e.g. zone("landing", "segment")."""
    return root().joinpath(*parts)


def is_local(path: ObjectStoragePath) -> bool:
    return path.protocol in ("file", "local", "")


def is_committed(path: ObjectStoragePath) -> bool:
    """A partition is readable once its marker exists."""
    return (path / MARKER).exists()


def remove(path: ObjectStoragePath) -> None:
    """Delete a folder or file and everything below it, if it exists (it may vanish meanwhile)."""
    if path.exists():
        with contextlib.suppress(FileNotFoundError):
            path.fs.rm(path.path, recursive=True)


@contextmanager
def committing(final: ObjectStoragePath, *, marker: bool = True) -> Iterator[ObjectStoragePath]:
    """Yield a staging folder; on a clean exit replace `final` with it whole, else discard it."""
    token = uuid.uuid4().hex[:12]
    staging = final.parent / f"_staging_{final.name}_{token}"
    staging.mkdir(parents=True, exist_ok=True)
    try:
        yield staging
        if marker:
            (staging / MARKER).write_text("")
    except BaseException:
        remove(staging)
        raise
    if is_local(final):
        _publish_locally(staging, final)
        return
    _publish_to_object_store(staging, final)


@functools.cache
def _renameat2():
    """libc's renameat2, where the C library has it (glibc 2.28+); looked up once."""
    try:
        return ctypes.CDLL(None, use_errno=True).renameat2
    except (AttributeError, OSError):
        return None


def _exchange(a: str, b: str) -> bool:
    """Swap two folders in one step (Linux renameat2 RENAME_EXCHANGE); False where the system cannot."""
    renameat2 = _renameat2()
    if renameat2 is None:
        return False
    if renameat2(_AT_FDCWD, a.encode(), _AT_FDCWD, b.encode(), _RENAME_EXCHANGE) == 0:
        return True
    error = ctypes.get_errno()
    if error in (errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP):  # this file system or kernel cannot exchange
        return False
    raise OSError(error, os.strerror(error), b)


def _rename_new(source: str, target: str) -> bool:
    """Rename onto a partition that did not exist; False when a concurrent commit installed one meanwhile."""
    try:
        os.rename(source, target)
    except OSError as exc:
        if exc.errno in (errno.EEXIST, errno.ENOTEMPTY):
            return False
        raise
    return True


def _publish_locally(staging: ObjectStoragePath, final: ObjectStoragePath) -> None:
    """Install the staging folder as the partition in one step; then drop the old one and stale leftovers."""
    if final.exists() or not _rename_new(staging.path, final.path):
        if _exchange(staging.path, final.path):
            remove(staging)  # it now holds the old partition
        else:  # no atomic exchange here: the old partition is moved aside first (a kill in between leaves none)
            trash = final.parent / f"_trash_{staging.name.removeprefix('_staging_')}"
            os.rename(final.path, trash.path)
            os.rename(staging.path, final.path)
            remove(trash)
    _sweep_leftovers(final)


def _sweep_leftovers(final: ObjectStoragePath) -> None:
    """Drop a killed commit's staging or trash beside the partition once it is a day old. A concurrent commit of
    the same partition removes its own folders meanwhile: one that vanishes under the sweep is skipped."""
    cutoff = time.time() - LEFTOVER_SECONDS
    for prefix in ("_staging_", "_trash_"):
        for leftover in final.parent.glob(f"{prefix}{final.name}_*"):
            try:
                stale = os.stat(leftover.path).st_mtime < cutoff
            except FileNotFoundError:
                continue
            if stale:
                remove(leftover)


def _publish_to_object_store(staging: ObjectStoragePath, final: ObjectStoragePath) -> None:
    """No rename on S3: unmark the old partition, copy the new files over it, drop stale ones, mark it.

    Readers that require the marker see the old partition or the new one, never a mix; a failure on the
    way leaves the partition unmarked (unreadable) until the task's retry publishes it again.
    """
    try:
        (final / MARKER).unlink(missing_ok=True)
        staged = sorted(p for p in staging.rglob("*") if p.is_file() and p.name != MARKER)
        keep = {relative(p, staging) for p in staged}
        for item in staged:
            item.fs.copy(item.path, (final / relative(item, staging)).path)
        for old in [p for p in final.rglob("*") if p.is_file()] if final.exists() else []:
            if relative(old, final) not in keep:
                old.unlink()
        if (staging / MARKER).exists():
            (final / MARKER).write_text("")
    finally:
        remove(staging)


def promote(candidate: ObjectStoragePath, final: ObjectStoragePath) -> None:
    """Publish a gated candidate partition as the final one (committed whole), then drop the candidate. A
    candidate that is not committed or holds no data file is refused: publishing it would empty the partition."""
    files = sorted(candidate.glob("*.parquet")) if is_committed(candidate) else []
    if not files:
        raise MissingPartition(f"{url_of(candidate)}: no committed candidate to publish as {url_of(final)} (another "
                               "run of the partition published or removed it?); the published partition is unchanged")
    with committing(final) as staging:
        for path in files:
            (staging / path.name).write_bytes(path.read_bytes())
    remove(candidate)


def url_of(path: ObjectStoragePath) -> str:
    """A plain URL for other systems (Glue, Spark, people): no connection id in it."""
    return f"{path.protocol}://{path.path}" if not is_local(path) else f"file://{path.path}"


def relative(path: ObjectStoragePath, base: ObjectStoragePath) -> str:
    """path's key below base ("a/b.csv"); works for object stores, where relative_to() does not."""
    return path.path[len(base.path) :].lstrip("/")


def write_json(path: ObjectStoragePath, payload: Any) -> None:
    """Write a JSON document whole: through a temporary file and a rename locally (an S3 PUT is atomic)."""
    text = json.dumps(payload, indent=2, sort_keys=True, default=str) + "\n"
    path.parent.mkdir(parents=True, exist_ok=True)
    if not is_local(path):
        path.write_text(text)
        return
    tmp = path.parent / f".{path.name}.{uuid.uuid4().hex[:8]}.tmp"
    tmp.write_text(text)
    tmp.fs.mv(tmp.path, path.path)


def read_json(path: ObjectStoragePath) -> Any:
    return json.loads(path.read_text())
