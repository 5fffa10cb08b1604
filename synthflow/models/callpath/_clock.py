"""Time as a dependency: the clock the rate limiter and the retry loop read and sleep on.

``MonotonicClock`` is the real one. ``FakeClock`` is the test double: virtual time that moves only
when a test says so (``advance``), or by itself when every task is waiting (``autojump``), so tests
of minutes of rate limiting run in milliseconds and always the same way.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Protocol

import anyio
import anyio.lowlevel


class Clock(Protocol):
    def now(self) -> float:
        """Monotonic seconds; only differences are meaningful."""
        ...

    async def sleep(self, seconds: float) -> None:
        """Suspend the calling task until ``now()`` has moved on by ``seconds``."""
        ...


class MonotonicClock:
    """The real clock: ``time.monotonic`` and ``anyio.sleep``."""

    def now(self) -> float:
        return time.monotonic()

    async def sleep(self, seconds: float) -> None:
        await anyio.sleep(max(seconds, 0.0))


async def wait_all_tasks_blocked() -> None:
    """Return once no other task on this asyncio event loop is ready to run.

    Every other task is then waiting on something: an event, a lock, a fake-clock sleep, I/O. Only
    the default asyncio loop exposes its ready queue, so other loops raise ``RuntimeError``.
    """
    loop = asyncio.get_running_loop()
    ready = getattr(loop, "_ready", None)
    if ready is None:
        raise RuntimeError("wait_all_tasks_blocked needs the default asyncio event loop")
    # Each pass lets every task that is ready run one step (a yield, not a timed poll). When we
    # are resumed and nothing is queued behind us, nothing else can run without an outside event.
    while True:
        await asyncio.sleep(0)
        if not ready:
            return


@dataclass(order=True, slots=True)
class _Sleeper:
    deadline: float
    seq: int
    event: anyio.Event = field(compare=False)
    active: bool = field(default=True, compare=False)


class FakeClock:
    """Virtual time for tests.

    ``sleep(d)`` suspends until virtual time reaches ``now() + d``. Time moves when the test calls
    ``advance(d)``, or, inside ``async with clock.autojump():``, by itself: whenever every task is
    blocked, it jumps to the earliest pending deadline and wakes the sleepers due then.
    """

    def __init__(self, start: float = 0.0, *, wall_start: float = 1_700_000_000.0) -> None:
        self._now = start
        self._wall_offset = wall_start - start
        self._sleepers: list[_Sleeper] = []
        self._seq = itertools.count()
        self._sleeper_added: anyio.Event | None = None

    def now(self) -> float:
        return self._now

    def wall_time(self) -> float:
        """Unix time that moves with virtual time; pass it where code wants ``time.time``."""
        return self._now + self._wall_offset

    async def sleep(self, seconds: float) -> None:
        if seconds <= 0:
            await anyio.lowlevel.checkpoint()
            return
        sleeper = _Sleeper(self._now + seconds, next(self._seq), anyio.Event())
        heapq.heappush(self._sleepers, sleeper)
        if self._sleeper_added is not None:
            self._sleeper_added.set()
            self._sleeper_added = None
        try:
            await sleeper.event.wait()
        finally:
            # A cancelled sleeper stays in the heap, inert, until its deadline comes up.
            sleeper.active = False

    @property
    def next_deadline(self) -> float | None:
        """The earliest deadline any task sleeps until, or ``None`` when no task sleeps."""
        while self._sleepers and not self._sleepers[0].active:
            heapq.heappop(self._sleepers)
        return self._sleepers[0].deadline if self._sleepers else None

    def advance(self, seconds: float) -> None:
        """Move time on by ``seconds`` and wake, in deadline order, every sleeper now due."""
        if seconds < 0:
            raise ValueError("a clock can't go back: advance() takes seconds >= 0")
        self._now += seconds
        while self._sleepers and self._sleepers[0].deadline <= self._now:
            sleeper = heapq.heappop(self._sleepers)
            if sleeper.active:
                sleeper.event.set()

    async def settle(self) -> None:
        """Let every task run until all of them wait (on this clock or anything else)."""
        await wait_all_tasks_blocked()

    @asynccontextmanager
    async def autojump(self) -> AsyncIterator[FakeClock]:
        """Within the block, jump to the next deadline whenever every task is blocked."""
        async with anyio.create_task_group() as tg:
            tg.start_soon(self._jump_when_idle)
            try:
                yield self
            finally:
                tg.cancel_scope.cancel()

    async def _jump_when_idle(self) -> None:
        while True:
            await wait_all_tasks_blocked()
            deadline = self.next_deadline
            if deadline is None:
                self._sleeper_added = added = anyio.Event()
                await added.wait()
                continue
            self.advance(max(deadline - self._now, 0.0))
