"""A persistent cache of LLM generations, one row per generation, in SQLite.

A row is keyed by the hash of everything that determines a generation (provider, model,
messages, generation kwargs, output schema) plus the generation's index, so asking for more
generations of a cached prompt later pays only for the new ones.

The database runs in WAL mode with ``synchronous=NORMAL``: readers don't block the writer, and
each ``put_many`` is one committed transaction, so a crash loses at most the calls in flight.
Statements take microseconds, so the cache is called directly from the event loop thread (the
only thread that may use it).
"""

from __future__ import annotations

import hashlib
import sqlite3
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any

import orjson

__all__ = ["CachedGeneration", "ResponseCache"]

_SCHEMA_VERSION = 1
_KEY_FORMAT = b"synthflow-cache-v1"
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
_SELECT = (
    "SELECT key, text, logprobs, input_tokens, output_tokens, created_at"
    " FROM generations WHERE key IN ({})"
)


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

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        # Autocommit mode: put_many opens and commits its own transaction.
        connection = sqlite3.connect(self.path, isolation_level=None)
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
        except BaseException:
            connection.close()
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
    ) -> str:
        """The cache key of generation ``index`` of one request: a stable hex digest."""
        return ResponseCache.keys(provider, model, messages, generation_kwargs, schema, [index])[0]

    @staticmethod
    def keys(
        provider: str,
        model: str,
        messages: list[dict[str, Any]],
        generation_kwargs: dict[str, Any],
        schema: dict[str, Any] | None,
        indices: Iterable[int],
    ) -> list[str]:
        """``key(...)`` for several generation indices, serialising the request once."""
        request = orjson.dumps(
            [provider, model, messages, generation_kwargs, schema], option=_DUMPS_OPTIONS
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
                found[key] = CachedGeneration(
                    text=text,
                    logprobs=None if logprobs is None else orjson.loads(logprobs),
                    input_tokens=input_tokens,
                    output_tokens=output_tokens,
                    created_at=created_at,
                )
        return found

    def put_many(self, items: Sequence[tuple[str, CachedGeneration]]) -> None:
        """Store (or replace) ``items`` in one committed transaction."""
        connection = self._open()
        if not items:
            return
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
        connection.execute("BEGIN")
        try:
            connection.executemany(_UPSERT, rows)
        except BaseException:
            connection.execute("ROLLBACK")
            raise
        connection.execute("COMMIT")

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
