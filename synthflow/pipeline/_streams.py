"""What flows on the edges of the DAG, and how a step with several inputs joins them.

Every edge is a bounded anyio memory stream of ``Chunk``s. Two invariants hold on every edge:

1. rows arrive in non-decreasing lineage id (``ROW_ID``) order, and
2. ``chunk.upto`` is a watermark: no later chunk on that edge holds a row with id <= upto.

The watermark is what lets a join tell "this branch filtered row 7 out" from "row 7 hasn't
arrived yet" without waiting for the branch to finish. Steps that drop every row of a batch still
send an empty chunk to advance it; without that, a join waiting on the filtering branch could
deadlock against a fan-out blocked on the other branch's full queue.

Rows are sent in chunks (a batch at a time), not one by one: a stream operation costs a few
microseconds, which per row would dominate the engine's overhead.
"""

from __future__ import annotations

import itertools
import sys
from collections import deque
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from typing import Any

import anyio
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

from synthflow.steps.base import ROW_ID, Row

END = sys.maxsize
"""The watermark of a finished edge: every id is settled."""


@dataclass(slots=True)
class Chunk:
    rows: list[Row]
    upto: int


Joined = tuple[Row, ...]
"""A joined row: one dict per predecessor, all with the same lineage id."""


class Outlet:
    """A step's output: broadcasts each chunk to every successor.

    Every successor but the first gets shallow copies of the rows, so branches can change rows in
    place without seeing each other's changes.
    """

    def __init__(self, streams: Sequence[MemoryObjectSendStream[Chunk]]) -> None:
        self._streams = list(streams)
        self._sent_upto = -1
        self.rows_out = 0

    async def send(self, rows: list[Row], upto: int) -> None:
        if not rows and upto <= self._sent_upto:
            return  # nothing new: no rows and no progress
        self._sent_upto = max(upto, self._sent_upto)
        self.rows_out += len(rows)
        for i, stream in enumerate(self._streams):
            payload = rows if i == 0 else [row.copy() for row in rows]
            await stream.send(Chunk(payload, upto))

    async def aclose(self) -> None:
        for stream in self._streams:
            await stream.aclose()


class Inlet:
    """A step's input: one edge, or several joined by lineage id (see ``joined``)."""

    def __init__(self, streams: Sequence[MemoryObjectReceiveStream[Chunk]]) -> None:
        self._streams = list(streams)
        self.joins = len(self._streams) > 1

    def idle(self) -> bool:
        """True when reading on would wait: a batching step should flush what it holds."""
        return any(s.statistics().current_buffer_used == 0 for s in self._streams)

    def __aiter__(self) -> AsyncIterator[tuple[list[Any], int]]:
        if self.joins:
            return self._joined()
        return self._single()

    async def _single(self) -> AsyncIterator[tuple[list[Any], int]]:
        async with self._streams[0] as stream:
            async for chunk in stream:
                yield chunk.rows, chunk.upto

    async def _joined(self) -> AsyncIterator[tuple[list[Any], int]]:
        """Join several ordered edges by lineage id (a merge join; an inner join).

        An id present on every edge yields the product of its rows (a branch that expanded a
        row into several gives several joined rows). An id missing from any edge was filtered
        out on that branch and is dropped once every watermark has passed it.

        The join reads the edge with the lowest watermark, so an edge that runs ahead is left
        unread and its producer feels backpressure. But it never blocks on an empty edge while
        another holds chunks: a branch whose step holds rows back (a global step, a partial
        batch) would otherwise deadlock against a fan-out blocked on the other branch.
        """
        streams = self._streams
        n = len(streams)
        buffers: list[deque[Row]] = [deque() for _ in range(n)]
        uptos = [-1] * n
        yielded = -1
        try:
            while True:
                settled = min(uptos)
                if settled > yielded:
                    yielded = settled
                    yield _merge(buffers, settled), settled
                if settled == END:
                    return
                lagging = uptos.index(settled)
                index, chunk = await self._next_chunk(lagging, uptos)
                if chunk is None:
                    uptos[index] = END
                else:
                    buffers[index].extend(chunk.rows)
                    uptos[index] = max(uptos[index], chunk.upto)
        finally:
            for stream in streams:
                await stream.aclose()

    async def _next_chunk(self, lagging: int, uptos: list[int]) -> tuple[int, Chunk | None]:
        streams = self._streams
        if streams[lagging].statistics().current_buffer_used == 0:
            for i, stream in enumerate(streams):
                if uptos[i] != END and stream.statistics().current_buffer_used:
                    return i, stream.receive_nowait()
        try:
            return lagging, await streams[lagging].receive()
        except anyio.EndOfStream:
            return lagging, None


def _merge(buffers: list[deque[Row]], settled: int) -> list[Joined]:
    out: list[Joined] = []
    while True:
        heads = [buf[0][ROW_ID] if buf else END for buf in buffers]
        rid = min(heads)
        if rid > settled or rid == END:
            return out
        groups: list[list[Row]] = []
        for buf, head in zip(buffers, heads, strict=True):
            group: list[Row] = []
            if head == rid:
                while buf and buf[0][ROW_ID] == rid:
                    group.append(buf.popleft())
            groups.append(group)
        if all(groups):
            out.extend(itertools.product(*groups))
