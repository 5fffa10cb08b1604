"""How the endpoint limiter reads a 429: a concurrency limit (lower the in-flight ceiling, only the
refused request waits) or a rate window (pause the endpoint). Virtual time, then a real server."""

from __future__ import annotations

import random
import threading
import time
from contextlib import AsyncExitStack
from typing import Any

import anyio
import pytest

from synthflow.models.callpath._clock import FakeClock
from synthflow.models.callpath.limiter import EndpointLimiter, Permit
from tests.helpers import run_texts
from tests.servers import Reply, Request, fake_api
from tests.test_openai import completion, llm


async def hold(stack: AsyncExitStack, limiter: EndpointLimiter, count: int) -> list[Permit]:
    return [await stack.enter_async_context(limiter.acquire()) for _ in range(count)]


async def fill_windows(limiter: EndpointLimiter, windows: int) -> None:
    """``windows`` windows of successes, each with the limit reached."""
    for _ in range(windows):
        limit = limiter.concurrency_limit
        assert limit is not None
        async with AsyncExitStack() as stack:
            await hold(stack, limiter, limit)
            for _ in range(limit):
                limiter.on_success(0.2)


class Held:
    """Permits held like requests in flight, each released on its own (its answer came)."""

    def __init__(self, limiter: EndpointLimiter) -> None:
        self.limiter = limiter
        self.held: list[tuple[Any, Permit]] = []

    async def take(self, count: int, tokens: int = 0) -> list[Permit]:
        for _ in range(count):
            context = self.limiter.acquire(tokens)
            self.held.append((context, await context.__aenter__()))
        return [permit for _, permit in self.held[-count:]]

    async def refuse(self, permit: Permit, retry_after: float | None, **headers: str) -> float:
        """The server answers ``permit``'s request 429; its slot is then released."""
        wait = permit.rate_limited(retry_after, headers)
        await self.release(permit)
        return wait

    async def release(self, permit: Permit) -> None:
        for i, (context, held) in enumerate(self.held):
            if held is permit:
                del self.held[i]
                await context.__aexit__(None, None, None)
                return

    async def release_all(self) -> None:
        while self.held:
            await self.release(self.held[-1][1])


@pytest.mark.anyio
async def test_a_concurrency_429_lowers_the_ceiling_and_only_the_refused_request_waits() -> None:
    limiter = EndpointLimiter(max_concurrency=64, clock=FakeClock())
    held = Held(limiter)
    permits = await held.take(10)
    # The server admits 6 and refuses 4, whatever the order their requests arrived in.
    waits = [await held.refuse(permits[i], 1.0) for i in (9, 2, 7, 5)]

    assert waits == [1.0] * 4  # each refused request waits its Retry-After...
    assert limiter.stats().paused_until is None  # ...and nobody else waits
    assert limiter.stats().rate_limited_total == 4
    assert limiter.concurrency_limit == 6  # what the server admitted
    await held.release_all()


@pytest.mark.anyio
async def test_the_refused_requests_release_their_slots_one_by_one() -> None:
    limiter = EndpointLimiter(clock=FakeClock())

    async def refused(permit_ready: anyio.Event, refuse: anyio.Event) -> None:
        async with limiter.acquire() as permit:
            permit_ready.set()
            await refuse.wait()
            assert permit.rate_limited(None, {}) == 0.0  # no Retry-After: just queue again

    async with AsyncExitStack() as stack:
        await hold(stack, limiter, 3)  # admitted by the server, still in flight
        async with anyio.create_task_group() as tg:
            refuse = anyio.Event()
            for _ in range(5):
                ready = anyio.Event()
                tg.start_soon(refused, ready, refuse)
                await ready.wait()
            refuse.set()
        assert limiter.concurrency_limit == 3
        assert limiter.stats().in_flight == 3
        assert limiter.stats().paused_until is None


@pytest.mark.anyio
async def test_probes_above_the_ceiling_come_rarer_after_each_refusal() -> None:
    limiter = EndpointLimiter(max_concurrency=64, clock=FakeClock())
    async with AsyncExitStack() as stack:
        permits = await hold(stack, limiter, 8)
        permits[-1].rate_limited(1.0, {})  # 7 admitted
    assert limiter.concurrency_limit == 7

    await fill_windows(limiter, 9)
    assert limiter.concurrency_limit == 7
    await fill_windows(limiter, 1)
    assert limiter.concurrency_limit == 8  # a probe, after 10 windows at the ceiling

    async with AsyncExitStack() as stack:
        permits = await hold(stack, limiter, 8)
        assert permits[-1].rate_limited(1.0, {}) == 1.0  # the probe is refused
    assert limiter.concurrency_limit == 7
    assert limiter.stats().paused_until is None
    await fill_windows(limiter, 19)
    assert limiter.concurrency_limit == 7
    await fill_windows(limiter, 1)
    assert limiter.concurrency_limit == 8  # the next probe waited 20 windows

    # A probe's window that passes lifts the ceiling: growth is one slot per window again.
    await fill_windows(limiter, 1)
    assert limiter.concurrency_limit == 9
    await fill_windows(limiter, 3)
    assert limiter.concurrency_limit == 12


@pytest.mark.anyio
async def test_spent_request_quota_in_the_headers_is_a_rate_window() -> None:
    clock = FakeClock()
    limiter = EndpointLimiter(max_concurrency=64, clock=clock)
    headers = {"x-ratelimit-remaining-requests": "0", "x-ratelimit-reset-requests": "2s"}
    async with AsyncExitStack() as stack:
        permits = await hold(stack, limiter, 10)
        assert permits[-1].rate_limited(0.5, headers) == 2.0  # until the reset, for everyone
        assert limiter.stats().paused_until == 2.0
    assert limiter.concurrency_limit == 64  # concurrency was not the problem


@pytest.mark.anyio
async def test_spent_anthropic_token_quota_is_a_rate_window() -> None:
    clock = FakeClock()
    limiter = EndpointLimiter(max_concurrency=64, clock=clock)
    headers = {
        "anthropic-ratelimit-requests-remaining": "40",
        "anthropic-ratelimit-tokens-remaining": "100",  # less than the request's 500
    }
    async with AsyncExitStack() as stack:
        await hold(stack, limiter, 4)
        permit = await stack.enter_async_context(limiter.acquire(500))
        assert permit.rate_limited(3.0, headers) == 3.0
        assert limiter.stats().paused_until == 3.0
    assert limiter.concurrency_limit == 64


@pytest.mark.anyio
async def test_requests_remaining_in_the_headers_mark_a_concurrency_limit() -> None:
    limiter = EndpointLimiter(max_concurrency=64, clock=FakeClock())
    remaining = {"x-ratelimit-remaining-requests": "500", "x-ratelimit-remaining-tokens": "9000"}
    async with AsyncExitStack() as stack:
        permits = await hold(stack, limiter, 12)
        permits[-1].rate_limited(1.0, remaining)
    assert limiter.concurrency_limit == 11
    # Refused below that ceiling, with requests remaining: still a concurrency limit (the cap
    # is shared with someone else, say), so the ceiling drops instead of the endpoint pausing.
    async with AsyncExitStack() as stack:
        permits = await hold(stack, limiter, 5)
        assert permits[-1].rate_limited(1.0, remaining) == 1.0
    assert limiter.concurrency_limit == 4
    assert limiter.stats().paused_until is None


@pytest.mark.anyio
async def test_a_429_with_nothing_else_in_flight_pauses_the_endpoint() -> None:
    limiter = EndpointLimiter(max_concurrency=8, clock=FakeClock())
    async with limiter.acquire() as permit:
        assert permit.rate_limited(4.0, {}) == 4.0
    assert limiter.stats().paused_until == 4.0
    assert limiter.concurrency_limit == 1  # 0.9 x the one that met it, at least one


@pytest.mark.anyio
async def test_refused_below_a_ceiling_it_admitted_before_is_a_rate_window() -> None:
    limiter = EndpointLimiter(max_concurrency=64, clock=FakeClock())
    async with AsyncExitStack() as stack:
        permits = await hold(stack, limiter, 21)
        permits[-1].rate_limited(1.0, {})
    assert limiter.concurrency_limit == 20
    async with AsyncExitStack() as stack:
        permits = await hold(stack, limiter, 10)  # half what the server admitted before
        assert permits[-1].rate_limited(5.0, {}) == 5.0
        assert limiter.stats().paused_until == 5.0
    assert limiter.concurrency_limit == 9  # 0.9 x the 10 in flight


@pytest.mark.anyio
async def test_a_burst_the_server_refused_whole_is_a_rate_window() -> None:
    limiter = EndpointLimiter(max_concurrency=16, clock=FakeClock())
    held = Held(limiter)
    permits = await held.take(10)
    # All ten come back 429: until the last, each looks like a lower ceiling...
    for permit in permits[:-1]:
        assert await held.refuse(permit, 2.0) == 2.0
    assert limiter.concurrency_limit == 1
    assert limiter.stats().paused_until is None
    # ...and the last shows the server admitted none: a rate window after all.
    assert await held.refuse(permits[-1], 2.0) == 2.0
    assert limiter.stats().paused_until == 2.0
    assert limiter.concurrency_limit == 9  # 0.9 x the 10 that met it


class CappedServer:
    """A model of a server that admits ``cap`` requests in flight and refuses the rest with 429
    and ``retry_after``; each admitted request takes ``latency``. Time is virtual."""

    def __init__(self, cap: int, latency: float, retry_after: float | None) -> None:
        self.cap, self.latency, self.retry_after = cap, latency, retry_after
        self.in_flight = 0
        self.refused = 0
        self.refused_at: list[int] = []  # the admitted count that each 429 met
        self.admitted = 0


async def run_model(
    server: CappedServer, limiter: EndpointLimiter, clock: FakeClock, rows: int, tasks: int
) -> None:
    """``tasks`` workers send ``rows`` requests through ``limiter``, retrying each 429."""
    queue = list(range(rows))
    rng = random.Random(rows * 31 + tasks)

    async def send_one() -> None:
        while True:
            async with limiter.acquire() as permit:
                await clock.sleep(rng.random() * 0.001)  # arrival order differs from grant order
                if server.in_flight >= server.cap:
                    server.refused += 1
                    server.refused_at.append(server.admitted)
                    wait = permit.rate_limited(server.retry_after, {})
                else:
                    server.in_flight += 1
                    server.admitted += 1
                    await clock.sleep(server.latency)
                    server.in_flight -= 1
                    limiter.on_success(server.latency)
                    return
            await clock.sleep(wait)

    async def worker() -> None:
        while queue:
            queue.pop()
            await send_one()

    with anyio.fail_after(10):
        async with clock.autojump(), anyio.create_task_group() as tg:
            for _ in range(tasks):
                tg.start_soon(worker)


CASES = [
    (cap, tasks, retry_after)
    for cap, tasks in [(1, 4), (3, 8), (7, 64), (30, 64), (50, 51), (100, 256)]
    for retry_after in (None, 0.5, 1.0, 5.0)
]


@pytest.mark.anyio
@pytest.mark.parametrize(("cap", "tasks", "retry_after"), CASES)
async def test_against_a_capped_server_throughput_stays_near_the_cap(
    cap: int, tasks: int, retry_after: float | None
) -> None:
    clock = FakeClock()
    limiter = EndpointLimiter(max_concurrency=tasks, clock=clock)
    server = CappedServer(cap, latency=0.2, retry_after=retry_after)
    rows = 40 * cap

    await run_model(server, limiter, clock, rows, tasks)

    assert server.admitted == rows
    assert limiter.stats().paused_until is None  # never a pause for everyone
    assert limiter.concurrency_limit is not None and limiter.concurrency_limit <= cap + 1
    # After the first burst, only probes above the ceiling meet a 429: a handful per run.
    first_burst = tasks - cap
    assert server.refused <= first_burst + 3
    # Virtual time: the ideal is rows / cap waves of one latency each (plus the refused
    # requests' Retry-After once, at the start).
    ideal = rows / cap * 0.2
    assert clock.now() <= ideal / 0.85 + (retry_after or 0.0)


class CappedAPI:
    """A handler for the loopback server: admits ``cap`` chat requests in flight, answers 429
    with ``Retry-After`` beyond them, and records how many were in flight as each arrived."""

    def __init__(self, cap: int, latency: float, retry_after: str) -> None:
        self.cap, self.latency, self.retry_after = cap, latency, retry_after
        self._lock = threading.Lock()
        self._in_flight = 0
        self.arrivals: list[int] = []  # admitted requests in flight when each one arrived
        self.refused = 0

    def __call__(self, request: Request) -> Reply:
        with self._lock:
            self.arrivals.append(self._in_flight)
            if self._in_flight >= self.cap:
                self.refused += 1
                return Reply(429, {"error": "too many requests"}, {"retry-after": self.retry_after})
            self._in_flight += 1
        try:
            time.sleep(self.latency)  # here, so the count drops before the answer is sent
            return completion(request)
        finally:
            with self._lock:
                self._in_flight -= 1


def test_a_task_over_a_server_that_caps_concurrency_loses_no_row(transport: str) -> None:
    cap, concurrency, rows = 4, 16, 64
    # Answers take long enough that the first wave's 429s all come back before any answer.
    server = CappedAPI(cap, latency=0.08, retry_after="0.05")
    with fake_api(server) as api:
        distiset = run_texts(llm(api), [f"q{i}" for i in range(rows)], concurrency=concurrency)

    got = list(distiset["default"]["train"])
    assert len(got) == rows
    assert all(row["generation"] == f"answer 0 to {row['instruction']}" for row in got)
    assert distiset.stats["gen"].llm.failures == 0
    # The first wave meets the cap; after it the client keeps under the cap, probing one
    # above it now and then.
    assert server.refused <= concurrency - cap + 4
    later = server.arrivals[len(server.arrivals) // 2 :]
    assert max(later) <= cap
    assert later.count(cap) <= 3  # arrivals that found the cap full: probes
