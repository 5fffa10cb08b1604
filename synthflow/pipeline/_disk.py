"""Files a run writes (leaf parts, the joined data, bookkeeping, a saved Distiset), and what a
full disk does to a run.

Every such file is opened by ``open_for_writing``: the one seam where a write reaches the
filesystem, so a test can make the disk full (``ENOSPC``) without mounting one. A write that
fails for lack of space becomes a ``DiskFullError`` naming the path (``when_full``); the engine
lets it end the run at once, and the run can be resumed once space is freed. The response cache
(SQLite) maps its own errors.
"""

from __future__ import annotations

import errno
import os
import secrets
import shutil
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from synthflow.errors import DiskFullError

NO_SPACE = frozenset({errno.ENOSPC, errno.EDQUOT})
"""errno values that mean the filesystem (or the user's quota) is full."""

MIN_FREE_ENV = "SYNTHFLOW_MIN_FREE_GB"
DEFAULT_MIN_FREE_GB = 1.0
"""A run warns at its start when less than this is free where it writes."""


def open_for_writing(path: Path) -> Any:
    """A new file at ``path``, open for writing: a pyarrow ``NativeFile``, which Arrow and
    Parquet writers take as they are and which also takes plain bytes."""
    import pyarrow as pa

    return pa.OSFile(str(path), "wb")


def new_directory(parent: Path, prefix: str) -> Path:
    """A new, empty directory in ``parent`` named ``prefix`` and a random suffix, with the
    permissions the user's umask gives (``tempfile.mkdtemp`` makes them 0700, and a saved
    result is renamed into place as it is)."""
    while True:
        path = parent / f"{prefix}{secrets.token_hex(4)}"
        try:
            path.mkdir()
        except FileExistsError:
            continue
        return path


def new_text_file(parent: Path, prefix: str) -> tuple[int, Path]:
    """A new file in ``parent`` (``prefix``, a random suffix, ``.tmp``) open for writing, with
    the permissions the user's umask gives (``tempfile.mkstemp`` makes them 0600)."""
    while True:
        path = parent / f"{prefix}{secrets.token_hex(4)}.tmp"
        try:
            return os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666), path
        except FileExistsError:
            continue


def write_bytes(path: Path, data: bytes) -> None:
    with open_for_writing(path) as sink:
        sink.write(data)


def is_disk_full(exc: BaseException) -> bool:
    return isinstance(exc, OSError) and exc.errno in NO_SPACE


@contextmanager
def when_full(path: Path, then: str) -> Iterator[None]:
    """Turn a write under it that fails for lack of space into a ``DiskFullError`` that names
    ``path`` and says ``then`` (what to do about it)."""
    try:
        yield
    except OSError as exc:
        if not is_disk_full(exc):
            raise
        reason = os.strerror(exc.errno or errno.ENOSPC)
        raise DiskFullError(
            f"disk full: writing {path} failed ({reason}); {then}", path=str(path)
        ) from exc


def free_bytes(path: Path) -> int:
    """Free space on the filesystem that holds ``path`` (or would, once created)."""
    existing = path
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    return shutil.disk_usage(existing).free


def min_free_bytes() -> int:
    """The free space below which a run warns: ``$SYNTHFLOW_MIN_FREE_GB`` (0 turns the
    warning off), 1 GB by default. An unreadable value keeps the default."""
    raw = os.environ.get(MIN_FREE_ENV, "")
    try:
        gigabytes = float(raw) if raw.strip() else DEFAULT_MIN_FREE_GB
    except ValueError:
        gigabytes = DEFAULT_MIN_FREE_GB
    return int(max(gigabytes, 0.0) * 1024**3)


def warn_if_low(path: Path, what: str) -> bool:
    """Print one line on stderr when the filesystem of ``path`` has less free space than
    ``min_free_bytes()``; return whether it did."""
    threshold = min_free_bytes()
    if threshold <= 0:
        return False
    try:
        free = free_bytes(path)
    except OSError:
        return False  # not knowing is no reason to stop a run
    if free >= threshold:
        return False
    print(
        f"[synthflow] warning: only {_size(free)} free for {what} ({path}); a full disk stops "
        f"the run (a re-run resumes it): free space, or set {MIN_FREE_ENV} to change this "
        f"threshold ({_size(threshold)})",
        file=sys.stderr,
        flush=True,
    )
    return True


def _size(n: int) -> str:
    for unit, scale in (("GiB", 1024**3), ("MiB", 1024**2), ("KiB", 1024)):
        if n >= scale:
            return f"{n / scale:.1f} {unit}"
    return f"{n} bytes"
