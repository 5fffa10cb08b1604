"""What flows on the edges of the DAG, and how a step puts its input back in order or joins it.

Every edge is a bounded anyio memory stream of ``Chunk``s. On every edge, ``chunk.upto`` is a
watermark: no later chunk on that edge holds a row with lineage id (``ROW_ID``) <= upto.

Rows themselves may arrive out of order: an LLM task sends each row as soon as its call
finishes, so one slow call holds back no other row. A producer whose chunks are sorted says so
(``chunk.ordered``). A consumer that needs source order (a batch step, a global step, a join, a
leaf's writer) restores it with ``Reorder``: it holds rows until the watermark has passed them,
then releases them sorted. An LLM task needs no order and reads its input as it comes.

The watermark is also what lets a join tell "this branch filtered row 7 out" from "row 7 hasn't
arrived yet" without waiting for the branch to finish. Steps that drop every row of a batch still
send an empty chunk to advance it; without that, a join waiting on the filtering branch could
deadlock against a fan-out blocked on the other branch's full queue.

Rows are sent in chunks (a batch at a time), not one by one: a stream operation costs a few
microseconds, which per row would dominate the engine's overhead.
"""

from __future__ import annotations

import heapq
import itertools
import sys
from collections import deque
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from typing import Any

import anyio
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

from synthflow.pipeline.routing import Router
from synthflow.pipeline.stats import StepStats
from synthflow.steps.base import ROW_ID, Row

END = sys.maxsize
"""The watermark of a finished edge: every id is settled."""


@dataclass(slots=True)
class Chunk:
    rows: list[Row]
    upto: int
    ordered: bool = True
    """The rows are sorted by id (some may still be above ``upto``)."""


class Reorder:
    """Holds rows until the watermark passes them; releases them in id order.

    Chunks from ordered producers whose rows are all at or below the watermark (the common case:
    generators and batch steps) pass straight through without touching the heap.
    """

    def __init__(self) -> None:
        self._heap: list[tuple[int, int, Row]] = []
        self._seq = 0

    def push(self, chunk: Chunk) -> list[Row]:
        rows, upto = chunk.rows, chunk.upto
        if not self._heap and chunk.ordered:
            keep = len(rows)
            while keep and rows[keep - 1][ROW_ID] > upto:
                keep -= 1
            if keep == len(rows):
                return rows
            self._hold(rows[keep:])
            return rows[:keep]
        self._hold(rows)
        released: list[Row] = []
        while self._heap and self._heap[0][0] <= upto:
            released.append(heapq.heappop(self._heap)[2])
        return released

    def drain(self) -> list[Row]:
        """Everything still held, sorted (the edge has ended)."""
        rows = [entry[2] for entry in sorted(self._heap)]
        self._heap = []
        return rows

    def _hold(self, rows: list[Row]) -> None:
        for row in rows:
            heapq.heappush(self._heap, (row[ROW_ID], self._seq, row))
            self._seq += 1


Joined = tuple[Row | None, ...]
"""A joined row: one dict per predecessor, all with the same lineage id; None for an optional
input (after routed branches) that the row didn't take."""


class Outlet:
    """A step's output: broadcasts each chunk to every successor.

    Every successor but the first gets shallow copies of the rows, so branches can change rows in
    place without seeing each other's changes. Rows are counted into ``stats.rows_out`` as they
    leave (once every successor has taken them), so live progress shows them as they come.
    """

    def __init__(
        self,
        streams: Sequence[MemoryObjectSendStream[Chunk]],
        stats: StepStats | None = None,
        router: Router | None = None,
    ) -> None:
        self._streams = list(streams)
        self._sent_upto = -1
        self.stats = stats if stats is not None else StepStats("")
        self._router = router
        """Which streams each row goes to (a routed step); None: all of them."""

    @property
    def rows_out(self) -> int:
        return self.stats.rows_out

    async def send(self, rows: list[Row], upto: int, *, ordered: bool = True) -> None:
        if not rows and upto <= self._sent_upto:
            return  # nothing new: no rows and no progress
        self._sent_upto = max(upto, self._sent_upto)
        # Every copy is made before the first send: a successor may change its rows in place
        # as soon as it has them, while this step still waits to send to the next one.
        if self._router is None:
            payloads = [rows] + [[row.copy() for row in rows] for _ in self._streams[1:]]
        else:
            payloads = self._routed(rows)
        for stream, payload in zip(self._streams, payloads, strict=True):
            await stream.send(Chunk(payload, self._sent_upto, ordered))
        self.stats.rows_out += len(rows)

    def _routed(self, rows: list[Row]) -> list[list[Row]]:
        """Each stream's rows: those the router sends it (a stream that gets none still gets
        the chunk, which carries the watermark past them)."""
        assert self._router is not None
        payloads: list[list[Row]] = [[] for _ in self._streams]
        streams_for = self._router.streams_for
        for row in rows:
            first = True
            for i in streams_for(row[ROW_ID]):
                payloads[i].append(row if first else row.copy())
                first = False
        return payloads

    async def aclose(self) -> None:
        for stream in self._streams:
            await stream.aclose()


class Inlet:
    """A step's input: one edge, or several joined by lineage id (see ``_joined``).

    With ``ordered`` (the default), rows come out in id order and at or below each yielded
    watermark; without it (LLM tasks), rows come as they arrive.
    """

    def __init__(
        self,
        streams: Sequence[MemoryObjectReceiveStream[Chunk]],
        *,
        ordered: bool = True,
        optional: Sequence[bool] | None = None,
    ) -> None:
        self._streams = list(streams)
        self.joins = len(self._streams) > 1
        self.ordered = ordered or self.joins
        self.optional = tuple(optional) if optional is not None and any(optional) else None
        """Per stream, whether a row may skip it (routed branches); None: none may."""

    def idle(self) -> bool:
        """True when reading on would wait: a batching step should flush what it holds."""
        return any(s.statistics().current_buffer_used == 0 for s in self._streams)

    def __aiter__(self) -> AsyncIterator[tuple[list[Any], int]]:
        if self.joins:
            return self._joined()
        return self._single()

    async def _single(self) -> AsyncIterator[tuple[list[Any], int]]:
        reorder = Reorder() if self.ordered else None
        upto = -1
        async with self._streams[0] as stream:
            async for chunk in stream:
                upto = chunk.upto
                yield (chunk.rows if reorder is None else reorder.push(chunk)), upto
        if reorder is not None:
            rest = reorder.drain()
            if rest:
                yield rest, max(upto, rest[-1][ROW_ID])

    async def _joined(self) -> AsyncIterator[tuple[list[Any], int]]:
        """Join several ordered edges by lineage id (a merge join; an inner join).

        An id present on every edge yields the product of its rows (a branch that expanded a
        row into several gives several joined rows). An id missing from any edge was filtered
        out on that branch and is dropped once every watermark has passed it. Optional edges
        (routed branches) act as one edge, the union of theirs: an id present on some of them
        and on every edge that isn't optional is joined, with None for the optional edges it
        is missing from.

        The join reads the edge with the lowest watermark, so an edge that runs ahead is left
        unread and its producer feels backpressure. But it never blocks on an empty edge while
        another holds chunks: a branch whose step holds rows back (a global step, a partial
        batch) would otherwise deadlock against a fan-out blocked on the other branch.
        """
        streams = self._streams
        n = len(streams)
        reorders = [Reorder() for _ in range(n)]
        buffers: list[deque[Row]] = [deque() for _ in range(n)]  # released: sorted, <= upto
        uptos = [-1] * n
        yielded = -1
        try:
            while True:
                settled = min(uptos)
                if settled > yielded:
                    yielded = settled
                    yield _merge(buffers, settled, self.optional), settled
                if settled == END:
                    return
                lagging = uptos.index(settled)
                index, chunk = await self._next_chunk(lagging, uptos)
                if chunk is None:
                    uptos[index] = END
                    buffers[index].extend(reorders[index].drain())
                else:
                    buffers[index].extend(reorders[index].push(chunk))
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


def _merge(
    buffers: list[deque[Row]], settled: int, optional: tuple[bool, ...] | None = None
) -> list[Joined]:
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
        if optional is None:
            if all(groups):
                out.extend(itertools.product(*groups))
        elif all(group or skip for group, skip in zip(groups, optional, strict=True)) and any(
            group for group, skip in zip(groups, optional, strict=True) if skip
        ):
            padded: list[list[Row | None]] = [list(group) or [None] for group in groups]
            out.extend(itertools.product(*padded))
