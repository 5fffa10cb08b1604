"""The seam between offline batches and a provider's batch API.

``synthflow.models.callpath.batches`` decides what to send and when; a ``BatchWire`` (one per
API shape: ``synthflow.models.llms.openai_batch``, ``anthropic_batch``) says how, on the wire:
the input line of one request, submitting, looking, cancelling and reading the results.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, Protocol

import orjson

__all__ = ["BatchStatus", "BatchWire", "LineResult", "json_lines"]


@dataclass
class BatchStatus:
    """A batch as the provider last described it."""

    status: str
    ended: bool
    counts: dict[str, int] = field(default_factory=dict)
    files: dict[str, str] = field(default_factory=dict)
    problem: str = ""
    """Why the whole batch failed, when the provider said (OpenAI's ``errors``)."""


@dataclass
class LineResult:
    """One request's result: the response ``body`` of a success, or the ``error`` text."""

    custom_id: str
    body: Any
    error: str | None


class BatchWire(Protocol):
    """A provider's batch API (``openai_batch``, ``anthropic_batch``)."""

    max_requests: int
    max_bytes: int

    def line(self, custom_id: str, path: str, payload: dict[str, Any]) -> bytes:
        """One request as the batch input holds it."""
        ...

    async def submit(
        self, lines: list[bytes], metadata: dict[str, str]
    ) -> tuple[str, BatchStatus]: ...

    async def find(self, local_id: str, since: float, size: int) -> list[tuple[str, BatchStatus]]:
        """The provider's batches created since ``since`` (Unix time) that may be the one
        submitted with metadata ``{"synthflow_batch": local_id}`` and ``size`` requests, the
        likeliest first: how a run finds a batch whose submission an earlier run didn't live
        to record."""
        ...

    async def retrieve(self, batch_id: str) -> BatchStatus: ...

    async def cancel(self, batch_id: str) -> BatchStatus: ...

    async def results(self, status: BatchStatus) -> list[LineResult]:
        """Every result the ended batch has (successes and failures)."""
        ...


def json_lines(content: bytes) -> Iterator[dict[str, Any]]:
    for line in content.splitlines():
        if line.strip():
            yield orjson.loads(line)
