"""Global steps: steps that see the whole dataset."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator, Sequence

import orjson
from pydantic import Field

from synthflow.steps.base import GlobalStep, Row


class DropDuplicates(GlobalStep):
    """Drops rows whose ``columns`` (all columns when empty) equal those of an earlier row.

    Keeps one 16-byte hash per distinct row, so it handles inputs far larger than memory."""

    columns: list[str] = Field(
        default_factory=list, description="Columns that define a duplicate; empty: all."
    )

    @property
    def inputs(self) -> list[str]:
        return list(self.columns)

    def process(self, inputs: Sequence[Row]) -> Iterator[list[Row]]:
        from synthflow.steps.base import ROW_ID

        seen: set[bytes] = set()
        kept: list[Row] = []
        for row in inputs:
            key = (
                {c: row.get(c) for c in self.columns}
                if self.columns
                else {k: v for k, v in row.items() if k != ROW_ID}
            )
            digest = hashlib.blake2b(
                orjson.dumps(key, option=orjson.OPT_SORT_KEYS, default=str), digest_size=16
            ).digest()
            if digest in seen:
                continue
            seen.add(digest)
            kept.append(row)
            if len(kept) >= 1024:
                yield kept
                kept = []
        if kept:
            yield kept
