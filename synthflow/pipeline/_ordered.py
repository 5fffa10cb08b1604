"""``ordered_map``: concurrent work on a stream, with results released in input order.

This is how a task keeps ``concurrency`` LLM calls in flight across input batches (no batch
barrier) while its output stays in source order, which joins and the final dataset rely on.

A fixed set of ``limit`` worker tasks pulls items from a hand-off channel. Per item that costs a
channel hand-off, not a task spawn (about 50 µs each through anyio, which at thousands of rows a
second is real CPU, and worse, latency added to every closed-loop wave of calls).
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Generic, TypeVar

import anyio
from anyio.streams.memory import MemoryObjectSendStream

from synthflow.pipeline._streams import Outlet
from synthflow.pipeline.stats import StepStats
from synthflow.steps.base import Row

_T = TypeVar("_T")
_U = TypeVar("_U")

FLUSH_ROWS = 1024


@dataclass(eq=False)
class _Slot(Generic[_T]):
    item: _T
    done: anyio.Event = field(default_factory=anyio.Event)
    result: list[Row] = field(default_factory=list)


class _BusyClock:
    """Accumulates the wall time during which at least one item is in flight."""

    def __init__(self, stats: StepStats) -> None:
        self._stats = stats
        self._active = 0
        self._since = 0.0

    def enter(self) -> None:
        if self._active == 0:
            self._since = time.perf_counter()
        self._active += 1

    def exit(self) -> None:
        self._active -= 1
        if self._active == 0:
            self._stats.busy_seconds += time.perf_counter() - self._since


async def _put(stream: MemoryObjectSendStream[_U], item: _U) -> None:
    """Send without a scheduling round-trip when the stream has room (or a waiting receiver).

    A wave of finished calls can then hand all its successors to idle workers at once, instead
    of one per event-loop iteration, which would add milliseconds to every wave of calls.
    """
    try:
        stream.send_nowait(item)
    except anyio.WouldBlock:
        await stream.send(item)


async def ordered_map(
    source: AsyncIterator[tuple[list[_T], int]],
    work: Callable[[_T], Awaitable[list[Row]]],
    outlet: Outlet,
    stats: StepStats,
    *,
    limit: int,
    window: int,
) -> None:
    """Run ``work`` on each item with at most ``limit`` in flight; emit results in order.

    ``source`` yields chunks of items, each with the watermark that holds once they are done.
    Finished results wait in a reorder window of ``window`` items: a slow item holds back the
    emission (not the work) of the items after it until the window fills, and then admission
    pauses, which keeps memory bounded. Watermarks travel through the order queue as plain ints,
    so each is released right after its chunk's rows.
    """
    order_send, order_receive = anyio.create_memory_object_stream[_Slot[_T] | int](window)
    work_send, work_receive = anyio.create_memory_object_stream[_Slot[_T]](0)
    busy = _BusyClock(stats)

    async def feed() -> None:
        async with order_send, work_send:
            async for items, upto in source:
                for item in items:
                    slot = _Slot(item)
                    await _put(order_send, slot)
                    await _put(work_send, slot)
                await _put(order_send, upto)

    async def worker() -> None:
        async for slot in work_receive:
            busy.enter()
            try:
                slot.result = await work(slot.item)
            finally:
                busy.exit()
                slot.done.set()

    async def emit() -> None:
        rows: list[Row] = []
        upto = -1
        async with order_receive:
            while True:
                try:
                    entry = order_receive.receive_nowait()
                except anyio.WouldBlock:
                    # Nothing more is ready: send what we have before waiting.
                    await outlet.send(rows, upto)
                    rows = []
                    try:
                        entry = await order_receive.receive()
                    except anyio.EndOfStream:
                        break
                except anyio.EndOfStream:
                    break
                if isinstance(entry, int):
                    upto = entry
                    continue
                if not entry.done.is_set():
                    await outlet.send(rows, upto)
                    rows = []
                    await entry.done.wait()
                rows.extend(entry.result)
                if len(rows) >= FLUSH_ROWS:
                    await outlet.send(rows, upto)
                    rows = []
            await outlet.send(rows, upto)

    try:
        async with anyio.create_task_group() as tg:
            tg.start_soon(feed)
            tg.start_soon(emit)
            for _ in range(limit):
                tg.start_soon(worker)
    finally:
        for stream in (order_send, order_receive, work_send, work_receive):
            stream.close()
