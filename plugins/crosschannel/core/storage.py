"""One object-store abstraction for every zone: Airflow's ObjectStoragePath over file:// or s3://.

A partition is committed atomically, the same way on a local disk and on S3: its files are written into a new
version folder inside it, and the partition's marker, written last in one step (a rename locally, a PUT on S3),
points at that version:

    <partition>/_v<epoch>-<token>/part-00000.parquet    a version: never changed once written
    <partition>/_SUCCESS                                 {"version": "_v<epoch>-<token>", "retired": {...}}

Readers resolve a partition through its marker (`resolve`), so they see the old version or the new one, never a
mix, never none; a process killed at any point leaves the previous pointer in place. Two runs committing one
partition at once each write their own version; the last pointer wins and both versions are whole. The version a
new pointer replaces is retired (listed in the marker) and kept a day for readers still reading it, then deleted
by a later commit of the partition; so is a killed run's unpointed version once a day old.
A marker with no pointer (an empty `_SUCCESS`, as other writers leave it) means the files sit in the folder itself.

Folders that other systems read whole by prefix (an outbox Pinpoint imports, SageMaker's transform input, DMS's
layout) are committed with `marker=False`: written beside the folder and swapped in, one atomic exchange of the
two folders locally (Linux `renameat2(RENAME_EXCHANGE)`), copied over the old objects on S3.
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
VERSION_PREFIX = "_v"
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


def _pointer(path: ObjectStoragePath) -> dict | None:
    """The partition's marker: {"version": ..., "retired": {version: when}}; {} when it points nowhere (the files
    sit in the folder itself); None when the partition is not committed."""
    try:
        text = (path / MARKER).read_text()
    except (FileNotFoundError, NotADirectoryError):
        return None
    return json.loads(text) if text.strip() else {}


def version_of(path: ObjectStoragePath) -> str | None:
    """The version folder a committed partition's marker points at ("" for files in the folder itself; None when
    the partition is not committed)."""
    pointer = _pointer(path)
    return None if pointer is None else pointer.get("version", "")


def committed_at(path: ObjectStoragePath) -> int | None:
    """When a committed partition's current version was written (Unix seconds, from its name `_v<seconds>-...`),
    None when it is not committed or not versioned."""
    version = version_of(path) or ""
    stamp = version.removeprefix(VERSION_PREFIX).split("-", 1)[0]
    return int(stamp) if version.startswith(VERSION_PREFIX) and stamp.isdigit() else None


def resolve(path: ObjectStoragePath) -> ObjectStoragePath:
    """Where a partition's committed files are: its current version folder (the folder itself when not marked)."""
    version = version_of(path)
    return path / version if version else path


@contextmanager
def committing(final: ObjectStoragePath, *, marker: bool = True) -> Iterator[ObjectStoragePath]:
    """Yield an empty folder to write the partition into; on a clean exit make it the partition whole, else
    discard it."""
    token = f"{int(time.time())}-{uuid.uuid4().hex[:12]}"
    staging = final / f"{VERSION_PREFIX}{token}" if marker else final.parent / f"_staging_{final.name}_{token}"
    staging.mkdir(parents=True, exist_ok=True)
    try:
        yield staging
    except BaseException:
        remove(staging)
        if marker and is_local(final):  # a first commit that failed leaves no empty partition folder behind
            with contextlib.suppress(OSError):
                os.rmdir(final.path)
        raise
    if marker:
        _point(final, staging.name)
    elif is_local(final):
        _publish_locally(staging, final)
    else:
        _publish_to_object_store(staging, final)


def _point(final: ObjectStoragePath, version: str) -> None:
    """Make `version` the partition's committed files: the marker is replaced in one step. The version it pointed
    at before is retired, not deleted: a reader (or a job planned with its path) may still be reading it. Retired
    versions are deleted by a later commit once retired a day, and killed runs' versions once a day old."""
    pointer = _pointer(final) or {}
    now = int(time.time())
    retired = {name: at for name, at in pointer.get("retired", {}).items() if now - at < LEFTOVER_SECONDS}
    if pointer.get("version") and pointer["version"] != version:
        retired[pointer["version"]] = now
    write_json(final / MARKER, {"version": version, "retired": retired})
    if pointer == {} and final.exists():  # files a writer without versions left in the folder itself
        for old in final.iterdir():
            if old.name != MARKER and not old.name.startswith(VERSION_PREFIX):
                remove(old)
    for leftover in final.glob(f"{VERSION_PREFIX}*"):
        if leftover.name == version or leftover.name in retired:
            continue
        born = leftover.name.removeprefix(VERSION_PREFIX).split("-")[0]
        if leftover.name in pointer.get("retired", {}) or (born.isdigit() and int(born) < now - LEFTOVER_SECONDS):
            remove(leftover)  # retired over a day ago, or a killed run's version a day old


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
    """Install the staging folder as the folder in one step; then drop the old one and stale leftovers."""
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
    """No rename on S3: copy the new files over the old ones, then drop stale ones (a folder read whole by another
    system, which reads it once the task that wrote it has finished)."""
    try:
        staged = sorted(p for p in staging.rglob("*") if p.is_file())
        keep = {relative(p, staging) for p in staged}
        for item in staged:
            item.fs.copy(item.path, (final / relative(item, staging)).path)
        for old in [p for p in final.rglob("*") if p.is_file()] if final.exists() else []:
            if relative(old, final) not in keep:
                old.unlink()
    finally:
        remove(staging)


def promote(candidate: ObjectStoragePath, final: ObjectStoragePath) -> None:
    """Publish a gated candidate partition as the final one (committed whole). The candidate stays: the caller
    removes it once everything it publishes together is published, so a retry can publish it again. A candidate
    that is not committed or holds no data file is refused: publishing it would empty the partition."""
    files = sorted(resolve(candidate).glob("*.parquet")) if is_committed(candidate) else []
    if not files:
        raise MissingPartition(f"{url_of(candidate)}: no committed candidate to publish as {url_of(final)} (another "
                               "run of the partition published or removed it?); the published partition is unchanged")
    with committing(final) as staging:
        for path in files:
            path.fs.copy(path.path, (staging / path.name).path)  # on S3 a CopyObject: no byte passes the worker


def url_of(path: ObjectStoragePath) -> str:
    """A plain URL for other systems (Glue, Spark, people): no connection id in it."""
    return f"{path.protocol}://{path.path}" if not is_local(path) else f"file://{path.path}"


def relative(path: ObjectStoragePath, base: ObjectStoragePath) -> str:
    """path's key below base ("a/b.csv"); works for object stores, where relative_to() does not."""
    return path.path[len(base.path) :].lstrip("/")


def json_text(payload: Any) -> str:
    """A JSON document as every file of the bundle holds one: indented, keys sorted."""
    return json.dumps(payload, indent=2, sort_keys=True, default=str) + "\n"


def write_json(path: ObjectStoragePath, payload: Any) -> None:
    """Write a JSON document whole: through a temporary file and a rename locally (an S3 PUT is atomic)."""
    text = json_text(payload)
    path.parent.mkdir(parents=True, exist_ok=True)
    if not is_local(path):
        path.write_text(text)
        return
    tmp = path.parent / f".{path.name}.{uuid.uuid4().hex[:8]}.tmp"
    tmp.write_text(text)
    tmp.fs.mv(tmp.path, path.path)


def read_json(path: ObjectStoragePath) -> Any:
    return json.loads(path.read_text())
