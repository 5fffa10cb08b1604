"""Concurrent work on a stream of items, with bounded concurrency and correct watermarks.

- ``unordered_map``: how an LLM task runs. It keeps ``limit`` calls in flight across input
  batches (no batch barrier) and sends each row on as soon as its call finishes, so one slow
  call holds back no other row. Consumers that need source order restore it (``Reorder``).
- ``ordered_map``: batches on worker threads or processes, released in input order.

Both use worker tasks (``ordered_map`` a fixed set of ``limit``; ``unordered_map`` up to
``limit``, started as rows find none idle) pulling items from a hand-off channel. Per item
that costs a channel hand-off, not a task spawn (about 50 µs each through anyio, which at
thousands of rows a second is real CPU, and worse, latency added to every wave of calls).
"""

from __future__ import annotations

import heapq
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Generic, TypeVar

import anyio
import anyio.abc
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
    sent: bool = False


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


async def unordered_map(
    source: AsyncIterator[tuple[list[Row], int]],
    work: Callable[[Row], Awaitable[list[Row]]],
    outlet: Outlet,
    stats: StepStats,
    *,
    limit: int,
    window: int,
    key: Callable[[Row], int],
) -> None:
    """Run ``work`` on each row with at most ``limit`` in flight; send results as they finish.

    The watermark sent with each chunk is the smaller of the input's watermark and the lowest
    id still in flight, minus one: every row at or below it has been sent. One emitter task does
    all the sending, so a row always goes out before the watermark passes it.

    ``window`` bounds how far ahead of the oldest unfinished row admission may run (in ids), so
    the reorder buffers downstream stay bounded even when one call hangs.
    """
    events_send, events_receive = anyio.create_memory_object_stream[_Slot[Row] | int](limit)
    work_send, work_receive = anyio.create_memory_object_stream[_Slot[Row]](0)
    pending: list[tuple[int, int, _Slot[Row]]] = []  # (id, seq, slot): the oldest on top
    seq = 0
    moved = anyio.Event()  # set when the oldest pending row finishes: admission may resume
    busy = _BusyClock(stats)
    workers = 0

    async def hand_over(slot: _Slot[Row], tg: anyio.abc.TaskGroup) -> None:
        # Workers start when rows find none idle, not all ``limit`` up front: a task in
        # offline batch mode may hold 50,000 rows in flight, and a small input shouldn't pay
        # for that many tasks. They start in doubling waves (the first of up to 64), so a
        # task that needs many gets them in a few event-loop turns, not one turn per row.
        nonlocal workers
        try:
            work_send.send_nowait(slot)
            return
        except anyio.WouldBlock:
            pass
        wave = min(limit - workers, max(workers, 64))
        for _ in range(wave):
            tg.start_soon(worker, events_send.clone())
        workers += wave
        await work_send.send(slot)

    async def feed(tg: anyio.abc.TaskGroup) -> None:
        nonlocal seq, moved
        async with events_send, work_send:
            async for rows, upto in source:
                for row in rows:
                    rid = key(row)
                    while pending and rid - pending[0][0] > window:
                        await moved.wait()
                        moved = anyio.Event()
                    slot = _Slot(row)
                    heapq.heappush(pending, (rid, seq, slot))
                    seq += 1
                    await hand_over(slot, tg)
                await _put(events_send, upto)

    async def worker(done: MemoryObjectSendStream[_Slot[Row] | int]) -> None:
        async with done:
            async for slot in work_receive:
                busy.enter()
                try:
                    slot.result = await work(slot.item)
                finally:
                    busy.exit()
                    slot.done.set()
                await done.send(slot)

    async def emit() -> None:
        marker = -1
        async with events_receive:
            while True:
                rows: list[Row] = []
                try:
                    event = await events_receive.receive()
                except anyio.EndOfStream:
                    break
                while True:  # take everything already waiting: one chunk per wake-up
                    if isinstance(event, int):
                        marker = max(marker, event)
                    else:
                        rows.extend(event.result)
                        event.sent = True
                    try:
                        event = events_receive.receive_nowait()
                    except (anyio.WouldBlock, anyio.EndOfStream):
                        break
                oldest = pending[0][0] if pending else None
                while pending and pending[0][2].sent:
                    heapq.heappop(pending)
                if not pending or pending[0][0] != oldest:
                    moved.set()  # the oldest row finished: admission may move on
                upto = marker if not pending else min(marker, pending[0][0] - 1)
                await outlet.send(rows, upto, ordered=False)
            await outlet.send([], marker, ordered=False)

    try:
        async with anyio.create_task_group() as tg:
            tg.start_soon(feed, tg)
            tg.start_soon(emit)
    finally:
        for stream in (events_send, events_receive, work_send, work_receive):
            stream.close()
