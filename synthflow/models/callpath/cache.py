"""A persistent cache of LLM generations, one row per generation, in SQLite.

A row is keyed by the hash of everything that determines a generation (provider, model,
endpoint, messages, generation kwargs, output schema), of whom the sample belongs to (a task
and a row, unless the task shares answers between identical prompts), and of the generation's
index, so asking for more generations of a cached prompt later pays only for the new ones.
Only text is stored: a generation without text is never an answer
(``synthflow.models.callpath.answers``).

A write that fails for lack of space raises ``DiskFullError`` naming the database. Every write
goes through the ``connect`` callable the cache is opened with (``sqlite3.connect`` unless a
test passes one whose writes fail).

The database runs in WAL mode with ``synchronous=NORMAL``: readers don't block the writer, and
each ``put_many`` is one committed transaction, so a crash loses at most the calls in flight.
Statements take microseconds, so the cache is called directly from the event loop thread (the
only thread that may use it).
"""

from __future__ import annotations

import errno
import hashlib
import sqlite3
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any

import orjson

from synthflow.errors import DiskFullError

__all__ = ["CachedGeneration", "Entry", "ResponseCache", "is_disk_full"]

_SCHEMA_VERSION = 1
_KEY_FORMAT = b"synthflow-cache-v2"  # v2: endpoint and sample owner in the key
_MAX_VARIABLES = 500  # keys per SELECT; SQLite allows at least 999 bound parameters
_DUMPS_OPTIONS = orjson.OPT_SORT_KEYS | orjson.OPT_NON_STR_KEYS

_CREATE = """
CREATE TABLE IF NOT EXISTS generations (
    key TEXT PRIMARY KEY,
    text TEXT,
    logprobs TEXT,
    input_tokens INTEGER NOT NULL,
    output_tokens INTEGER NOT NULL,
    created_at REAL NOT NULL
)
"""
_UPSERT = (
    "INSERT OR REPLACE INTO generations"
    " (key, text, logprobs, input_tokens, output_tokens, created_at) VALUES (?, ?, ?, ?, ?, ?)"
)
_COLUMNS = "key, text, logprobs, input_tokens, output_tokens, created_at"
_SELECT = (
    "SELECT key, text, logprobs, input_tokens, output_tokens, created_at"
    " FROM generations WHERE key IN ({})"
)


Entry = tuple[str, str, "str | None", int, int, float]
"""A generation as the table stores it: key, text, logprobs (JSON), input and output tokens,
created_at. What cache checkpoints carry between machines."""


@dataclass(frozen=True, slots=True)
class CachedGeneration:
    """One cached generation. ``logprobs`` is anything JSON can hold; usage is this one's share."""

    text: str | None
    logprobs: Any = None
    input_tokens: int = 0
    output_tokens: int = 0
    created_at: float = field(default_factory=time.time)


class ResponseCache:
    """Generations on disk, keyed by ``ResponseCache.key(...)``. Close it when done."""

    def __init__(
        self,
        path: Path | str,
        *,
        connect: Callable[..., sqlite3.Connection] = sqlite3.connect,
    ) -> None:
        self.path = Path(path)
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            # Autocommit mode: put_many opens and commits its own transaction.
            connection = connect(self.path, isolation_level=None)
        except (OSError, sqlite3.Error) as exc:
            if is_disk_full(exc):
                raise self._full() from exc
            raise
        try:
            connection.execute("PRAGMA journal_mode=WAL")
            connection.execute("PRAGMA synchronous=NORMAL")
            connection.execute("PRAGMA busy_timeout=5000")
            version = connection.execute("PRAGMA user_version").fetchone()[0]
            if version > _SCHEMA_VERSION:
                raise RuntimeError(
                    f"the cache at {self.path} was written by a newer synthflow; upgrade "
                    "synthflow or point the cache elsewhere"
                )
            connection.execute(_CREATE)
            connection.execute(f"PRAGMA user_version={_SCHEMA_VERSION}")
        except BaseException as exc:
            connection.close()
            if is_disk_full(exc):
                raise self._full() from exc
            raise
        self._connection: sqlite3.Connection | None = connection

    @staticmethod
    def key(
        provider: str,
        model: str,
        messages: list[dict[str, Any]],
        generation_kwargs: dict[str, Any],
        schema: dict[str, Any] | None,
        index: int,
        *,
        endpoint: str | None = None,
        owner: Sequence[Any] | None = None,
    ) -> str:
        """The cache key of generation ``index`` of one request: a stable hex digest.

        ``endpoint`` is where answers come from (an API's base URL); ``owner`` is whom the
        sample belongs to, ``(task name, row id)``, or None for answers shared by every
        identical request."""
        return ResponseCache.keys(
            provider,
            model,
            messages,
            generation_kwargs,
            schema,
            [index],
            endpoint=endpoint,
            owner=owner,
        )[0]

    @staticmethod
    def keys(
        provider: str,
        model: str,
        messages: list[dict[str, Any]],
        generation_kwargs: dict[str, Any],
        schema: dict[str, Any] | None,
        indices: Iterable[int],
        *,
        endpoint: str | None = None,
        owner: Sequence[Any] | None = None,
    ) -> list[str]:
        """``key(...)`` for several generation indices, serialising the request once."""
        request = orjson.dumps(
            [provider, model, endpoint, messages, generation_kwargs, schema, owner],
            option=_DUMPS_OPTIONS,
        )
        prefix = hashlib.sha256(_KEY_FORMAT)
        prefix.update(request)
        keys = []
        for index in indices:
            digest = prefix.copy()
            digest.update(b"\x00%d" % index)
            keys.append(digest.hexdigest())
        return keys

    def get_many(self, keys: Sequence[str]) -> dict[str, CachedGeneration]:
        """The cached generations among ``keys``; missing keys are absent from the result."""
        connection = self._open()
        found: dict[str, CachedGeneration] = {}
        for start in range(0, len(keys), _MAX_VARIABLES):
            chunk = keys[start : start + _MAX_VARIABLES]
            query = _SELECT.format(",".join("?" * len(chunk)))
            for key, text, logprobs, input_tokens, output_tokens, created_at in connection.execute(
                query, chunk
            ):
                if text is None:
                    continue  # an empty answer an older version stored: not an answer
                found[key] = CachedGeneration(
                    text=text,
                    logprobs=None if logprobs is None else orjson.loads(logprobs),
                    input_tokens=input_tokens,
                    output_tokens=output_tokens,
                    created_at=created_at,
                )
        return found

    def put_many(self, items: Sequence[tuple[str, CachedGeneration]]) -> None:
        """Store (or replace) ``items`` in one committed transaction: all of them, or (when it
        raises) none. Raises ``DiskFullError`` when the disk (or quota) is full, and
        ``ValueError`` for a generation without text."""
        self._open()  # closed: raises, even for no items
        if not items:
            return
        if any(item.text is None for _, item in items):
            raise ValueError("a generation without text is not an answer: it is never cached")
        rows = [
            (
                key,
                item.text,
                None if item.logprobs is None else orjson.dumps(item.logprobs).decode(),
                item.input_tokens,
                item.output_tokens,
                item.created_at,
            )
            for key, item in items
        ]
        self._write_all(_UPSERT, rows)

    def _write_all(self, statement: str, rows: Iterable[Sequence[Any]]) -> int:
        """Run ``statement`` for every row in one committed transaction; return how many rows
        it changed."""
        connection = self._open()
        before = connection.total_changes
        try:
            connection.execute("BEGIN")
            try:
                connection.executemany(statement, rows)
                connection.execute("COMMIT")
            except BaseException:
                if connection.in_transaction:  # SQLite may have rolled back already
                    connection.execute("ROLLBACK")
                raise
        except (OSError, sqlite3.Error) as exc:
            if is_disk_full(exc):
                raise self._full() from exc
            raise
        return connection.total_changes - before

    def _full(self) -> DiskFullError:
        return DiskFullError(
            f"no space left to write the response cache {self.path}: free space on its disk",
            path=str(self.path),
        )

    def merge_from(self, other: Path | str) -> int:
        """Copy in the generations of the cache at ``other`` that this one lacks (keys are
        content hashes, so merging is idempotent); return how many were added. Shards of a
        distributed run each keep a cache of their own, merged into the run's at its end."""
        if self._connection is None:
            raise RuntimeError("the response cache is closed")
        before = self._connection.total_changes
        self._connection.execute("ATTACH DATABASE ? AS other", (str(other),))
        try:
            self._connection.execute(
                "INSERT OR IGNORE INTO generations SELECT key, text, logprobs, input_tokens,"
                " output_tokens, created_at FROM other.generations"
            )
        finally:
            self._connection.execute("DETACH DATABASE other")
        return self._connection.total_changes - before

    def entries(self, after: int = 0) -> Iterator[tuple[int, Entry]]:
        """The stored generations added after the one numbered ``after`` (SQLite's rowid), in
        the order they were added, with their numbers: what a checkpoint adds to the last.
        A generation stored again gets a new number (and is in the next checkpoint again)."""
        connection = self._open()
        query = f"SELECT rowid, {_COLUMNS} FROM generations WHERE rowid > ? ORDER BY rowid"
        for rowid, *entry in connection.execute(query, (after,)):
            yield rowid, tuple(entry)  # the table's six columns

    def last_number(self) -> int:
        """The number of the generation added last (0 when none): ``entries``' watermark."""
        return int(
            self._open().execute("SELECT coalesce(max(rowid), 0) FROM generations").fetchone()[0]
        )

    def add_entries(self, entries: Iterable[Entry]) -> int:
        """Add the ``entries`` whose keys this cache lacks, in one transaction; return how many
        were added (keys are content hashes: adding the same entries again adds nothing)."""
        return self._write_all(
            f"INSERT OR IGNORE INTO generations ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?)",
            (entry for entry in entries if entry[1] is not None),
        )

    def close(self) -> None:
        """Close the database; further use raises. Closing twice is fine."""
        if self._connection is not None:
            self._connection.close()
            self._connection = None

    def _open(self) -> sqlite3.Connection:
        if self._connection is None:
            raise RuntimeError("the response cache is closed; open a new ResponseCache")
        return self._connection

    def __enter__(self) -> ResponseCache:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()


_FULL_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT})


def is_disk_full(exc: BaseException) -> bool:
    """Whether ``exc`` says a write found no space: SQLite's ``SQLITE_FULL`` ("database or disk
    is full"), or an OSError with ENOSPC (disk full) or EDQUOT (over quota)."""
    if isinstance(exc, OSError):
        return exc.errno in _FULL_ERRNOS
    if isinstance(exc, sqlite3.Error):
        code = getattr(exc, "sqlite_errorcode", None)
        if code is not None and code & 0xFF == sqlite3.SQLITE_FULL:
            return True
        return "database or disk is full" in str(exc)
    return False
