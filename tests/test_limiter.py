from __future__ import annotations

from contextlib import AsyncExitStack
from datetime import UTC, datetime

import anyio
import pytest

from synthflow.models.callpath._clock import FakeClock
from synthflow.models.callpath.limiter import (
    EndpointLimiter,
    endpoint_key,
    get_limiter,
    parse_reset_duration,
)


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


async def grant_times(
    limiter: EndpointLimiter,
    clock: FakeClock,
    count: int,
    *,
    tokens: int = 0,
    hold: float = 0.0,
) -> list[float]:
    """Start ``count`` calls at once; return the virtual time each was granted, in grant order."""
    times: list[float] = []

    async def call() -> None:
        async with limiter.acquire(tokens):
            times.append(clock.now())
            await clock.sleep(hold)

    with anyio.fail_after(5):
        async with clock.autojump(), anyio.create_task_group() as tg:
            for _ in range(count):
                tg.start_soon(call)
    return times


async def succeed_in_windows(limiter: EndpointLimiter, windows: int, latency: float) -> None:
    """Fill the concurrency limit, then report one success per permit, ``windows`` times."""
    for _ in range(windows):
        limit = limiter.concurrency_limit
        assert limit is not None
        async with AsyncExitStack() as stack:
            for _ in range(limit):
                await stack.enter_async_context(limiter.acquire())
            for _ in range(limit):
                limiter.on_success(latency)


@pytest.mark.anyio
async def test_concurrency_cap_is_honoured_in_arrival_order() -> None:
    clock = FakeClock()
    limiter = EndpointLimiter(max_concurrency=3, adaptive=False, clock=clock)
    in_flight = 0
    peak = 0
    order: list[int] = []

    async def call(i: int) -> None:
        nonlocal in_flight, peak
        async with limiter.acquire():
            order.append(i)
            in_flight += 1
            peak = max(peak, in_flight)
            await clock.sleep(1.0)
            in_flight -= 1

    with anyio.fail_after(5):
        async with clock.autojump(), anyio.create_task_group() as tg:
            for i in range(10):
                tg.start_soon(call, i)

    assert peak == 3
    assert order == list(range(10))
    assert clock.now() == 4.0
    assert limiter.stats().in_flight == 0


@pytest.mark.anyio
async def test_waiting_calls_are_counted_and_a_cancelled_one_leaves_the_queue() -> None:
    clock = FakeClock()
    limiter = EndpointLimiter(max_concurrency=1, clock=clock)
    granted: list[str] = []

    async def call(name: str) -> None:
        async with limiter.acquire():
            granted.append(name)
            await clock.sleep(1.0)

    with anyio.fail_after(5):
        async with anyio.create_task_group() as tg:
            tg.start_soon(call, "a")
            async with anyio.create_task_group() as doomed:
                doomed.start_soon(call, "b")
                tg.start_soon(call, "c")
                await clock.settle()
                assert limiter.stats().in_flight == 1
                assert limiter.stats().waiting == 2
                doomed.cancel_scope.cancel()
            await clock.settle()
            assert limiter.stats().waiting == 1
            clock.advance(1.0)
            await clock.settle()
            assert granted == ["a", "c"]
            clock.advance(1.0)


@pytest.mark.anyio
async def test_a_small_call_does_not_overtake_a_large_one_waiting_for_tokens() -> None:
    clock = FakeClock()
    limiter = EndpointLimiter(tokens_per_minute=600, clock=clock)  # 10 tokens/s
    granted: list[tuple[str, float]] = []

    async def call(name: str, tokens: int) -> None:
        async with limiter.acquire(tokens):
            granted.append((name, clock.now()))

    with anyio.fail_after(5):
        async with clock.autojump(), anyio.create_task_group() as tg:
            for name, tokens in [("all", 600), ("large", 600), ("small", 10)]:
                tg.start_soon(call, name, tokens)

    assert granted == [("all", 0.0), ("large", pytest.approx(60.0)), ("small", pytest.approx(61.0))]


@pytest.mark.anyio
async def test_requests_per_minute_bucket_spaces_calls() -> None:
    clock = FakeClock()
    limiter = EndpointLimiter(requests_per_minute=2, clock=clock)

    times = await grant_times(limiter, clock, 5)

    # A full bucket lets two through at once, then one every 30 s.
    assert times == pytest.approx([0.0, 0.0, 30.0, 60.0, 90.0])


@pytest.mark.anyio
async def test_tokens_per_minute_bucket_reserves_the_estimate() -> None:
    clock = FakeClock()
    limiter = EndpointLimiter(tokens_per_minute=600, clock=clock)  # 10 tokens/s

    times = await grant_times(limiter, clock, 3, tokens=500)

    # 600 - 500 leaves 100; each next 500 waits for 400 more tokens at 10/s.
    assert times == pytest.approx([0.0, 40.0, 90.0])


@pytest.mark.anyio
async def test_reconcile_refund_lets_the_next_call_through_at_once() -> None:
    clock = FakeClock()
    limiter = EndpointLimiter(tokens_per_minute=600, clock=clock)
    granted_at: list[float] = []

    async def second() -> None:
        async with limiter.acquire(500):
            granted_at.append(clock.now())

    with anyio.fail_after(5):
        async with limiter.acquire(500) as permit, anyio.create_task_group() as tg:
            tg.start_soon(second)
            await clock.settle()
            assert granted_at == []  # needs 400 more tokens: 40 s away
            permit.reconcile(100)  # the call used 100: 400 come back
            await clock.settle()
            assert granted_at == [0.0]


@pytest.mark.anyio
async def test_reconcile_charges_tokens_used_beyond_the_estimate() -> None:
    clock = FakeClock()
    limiter = EndpointLimiter(tokens_per_minute=600, clock=clock)

    async with limiter.acquire(100) as permit:
        permit.reconcile(700)  # 600 more than reserved: the 600-token bucket is 100 in debt

    times = await grant_times(limiter, clock, 1, tokens=100)

    assert times == pytest.approx([20.0])  # 200 tokens at 10/s


@pytest.mark.anyio
async def test_a_429_no_permit_reports_pauses_the_whole_endpoint_cuts_and_recovers() -> None:
    # Without the permit it was sent under, a 429 can't be told from a rate window: the whole
    # endpoint pauses (tests/test_concurrency_429.py has the permit's side).
    clock = FakeClock()
    limiter = EndpointLimiter(max_concurrency=20, clock=clock)

    async with AsyncExitStack() as stack:
        for _ in range(9):  # the server accepted 9 in flight and refused a tenth
            await stack.enter_async_context(limiter.acquire())
        assert limiter.on_rate_limited(retry_after=5.0) == 5.0
        stats = limiter.stats()
        assert stats.concurrency_limit == 9  # 0.9 x the 10 that met the 429
        assert stats.paused_until == 5.0
        assert stats.rate_limited_total == 1

        limiter.on_rate_limited(retry_after=5.0)  # same burst: counted, but no second cut
        assert limiter.stats().concurrency_limit == 9
        assert limiter.stats().rate_limited_total == 2

    times = await grant_times(limiter, clock, 10, hold=1.0)
    assert times == [5.0] * 9 + [6.0]  # nothing before the pause ends; then 9 at a time
    assert limiter.stats().paused_until is None

    # A rate window says nothing of concurrency: one slot per window back, up to the maximum.
    await succeed_in_windows(limiter, 4, latency=0.5)
    assert limiter.concurrency_limit == 13
    await succeed_in_windows(limiter, 12, latency=0.5)
    assert limiter.concurrency_limit == 20


@pytest.mark.anyio
async def test_successes_below_the_limit_do_not_raise_it() -> None:
    clock = FakeClock()
    limiter = EndpointLimiter(max_concurrency=8, clock=clock)
    async with AsyncExitStack() as stack:
        for _ in range(4):
            await stack.enter_async_context(limiter.acquire())
        limiter.on_rate_limited(retry_after=0.0)
    assert limiter.concurrency_limit == 4

    for _ in range(20):
        async with limiter.acquire():
            limiter.on_success(0.5)

    assert limiter.concurrency_limit == 4


def test_429_without_retry_after_pauses_about_one_latency_then_exponentially() -> None:
    clock = FakeClock()
    limiter = EndpointLimiter(max_concurrency=64, clock=clock)

    pauses = []
    for _ in range(3):
        limiter.on_rate_limited(None)
        pauses.append(limiter.pause_remaining())
        clock.advance(limiter.pause_remaining())
    assert pauses == [1.0, 2.0, 4.0]  # no latency seen yet: the base pause, doubling

    limiter.on_success(0.2)  # requests take about 0.2 s: that is how long to wait
    limiter.on_rate_limited(None)
    assert limiter.pause_remaining() == pytest.approx(0.2)
    assert limiter.concurrency_limit == 1  # nothing was in flight when the 429s came


def test_429_without_adaptation_only_pauses() -> None:
    limiter = EndpointLimiter(max_concurrency=8, adaptive=False, clock=FakeClock())
    limiter.on_rate_limited(3.0)
    assert limiter.concurrency_limit == 8
    assert limiter.pause_remaining() == 3.0


@pytest.mark.anyio
async def test_openai_headers_hold_requests_and_size_the_buckets() -> None:
    clock = FakeClock()
    limiter = EndpointLimiter(clock=clock)
    limiter.update_from_headers(
        {
            "x-ratelimit-limit-requests": "60",
            "x-ratelimit-remaining-requests": "0",
            "x-ratelimit-reset-requests": "2s",
            "X-RateLimit-Limit-Tokens": "1200",
            "x-ratelimit-remaining-tokens": "1200",
            "x-ratelimit-reset-tokens": "6m0s",
        }
    )
    assert limiter.stats().paused_until == 2.0

    times = await grant_times(limiter, clock, 3, tokens=1000)

    # Held until the reset at 2 s; then the 1200-token bucket (20/s) spaces the 1000-token calls.
    assert times == pytest.approx([2.0, 2.0 + 800 / 20, 2.0 + 800 / 20 + 1000 / 20])


@pytest.mark.anyio
async def test_limit_headers_do_not_override_configured_rates() -> None:
    clock = FakeClock()
    limiter = EndpointLimiter(requests_per_minute=6, clock=clock)
    limiter.update_from_headers({"x-ratelimit-limit-requests": "6000"})

    times = await grant_times(limiter, clock, 8)

    assert times == pytest.approx([0.0] * 6 + [10.0, 20.0])


@pytest.mark.anyio
async def test_remaining_header_lowers_a_configured_bucket() -> None:
    clock = FakeClock()
    limiter = EndpointLimiter(requests_per_minute=60, clock=clock)
    limiter.update_from_headers({"x-ratelimit-remaining-requests": "1"})

    times = await grant_times(limiter, clock, 3)

    assert times == pytest.approx([0.0, 1.0, 2.0])


@pytest.mark.anyio
async def test_anthropic_headers_hold_until_the_reset_timestamp() -> None:
    clock = FakeClock()
    limiter = EndpointLimiter(clock=clock, wallclock=clock.wall_time)

    def in_seconds(seconds: float) -> str:
        moment = datetime.fromtimestamp(clock.wall_time() + seconds, tz=UTC)
        return moment.isoformat().replace("+00:00", "Z")

    limiter.update_from_headers(
        {
            "anthropic-ratelimit-requests-limit": "50",
            "anthropic-ratelimit-requests-remaining": "0",
            "anthropic-ratelimit-requests-reset": in_seconds(3),
            "anthropic-ratelimit-tokens-limit": "6000",
            "anthropic-ratelimit-tokens-remaining": "600",
            "anthropic-ratelimit-tokens-reset": in_seconds(54),
        }
    )
    assert limiter.stats().paused_until == pytest.approx(3.0)

    times = await grant_times(limiter, clock, 2, tokens=900)

    # 600 tokens left, refilling at 100/s: 900 fit at 3 s; the next 900 at 3 + 9 s.
    assert times == pytest.approx([3.0, 12.0])


def test_parse_reset_duration() -> None:
    assert parse_reset_duration("1s") == 1.0
    assert parse_reset_duration("6m0s") == 360.0
    assert parse_reset_duration("20ms") == pytest.approx(0.02)
    assert parse_reset_duration("1h2m3.5s") == pytest.approx(3723.5)
    assert parse_reset_duration("2.5") == 2.5
    assert parse_reset_duration("soon") is None
    assert parse_reset_duration(None) is None


@pytest.mark.anyio
async def test_latency_adaptive_grows_while_latency_is_flat_and_backs_off_when_it_rises() -> None:
    limiter = EndpointLimiter(max_concurrency=16, latency_adaptive=True, clock=FakeClock())
    assert limiter.concurrency_limit == 4

    await succeed_in_windows(limiter, 2, latency=1.0)
    assert limiter.concurrency_limit == 6
    await succeed_in_windows(limiter, 1, latency=1.1)  # within 1.2x the baseline: still flat
    assert limiter.concurrency_limit == 7
    await succeed_in_windows(limiter, 1, latency=1.4)  # rising: hold
    assert limiter.concurrency_limit == 7
    await succeed_in_windows(limiter, 1, latency=1.6)  # over 1.5x: back off by a quarter
    assert limiter.concurrency_limit == 5
    await succeed_in_windows(limiter, 1, latency=0.9)  # fast again (new baseline): grow
    assert limiter.concurrency_limit == 6


@pytest.mark.anyio
async def test_latency_adaptive_never_exceeds_the_configured_maximum() -> None:
    limiter = EndpointLimiter(max_concurrency=5, latency_adaptive=True, clock=FakeClock())
    await succeed_in_windows(limiter, 5, latency=1.0)
    assert limiter.concurrency_limit == 5


def test_registry_shares_one_limiter_per_endpoint_and_key() -> None:
    key = endpoint_key("https://api.example.com/v1/", "sk-secret")
    first = get_limiter(key, max_concurrency=2)

    assert get_limiter(key, max_concurrency=2) is first
    same = endpoint_key("https://api.example.com/v1", "sk-secret")
    assert get_limiter(same, max_concurrency=2) is first
    other_key = endpoint_key("https://api.example.com/v1", "sk-other")
    assert get_limiter(other_key, max_concurrency=2) is not first
    # Changed settings (a new runtime parameter value) get a limiter of their own.
    assert get_limiter(key, max_concurrency=4).concurrency_limit == 4
    assert first.concurrency_limit == 2
    assert "sk-secret" not in key


@pytest.mark.anyio
async def test_fake_clock_wakes_sleepers_in_deadline_order() -> None:
    clock = FakeClock()
    woke: list[tuple[str, float]] = []

    async def sleeper(name: str, seconds: float) -> None:
        await clock.sleep(seconds)
        woke.append((name, clock.now()))

    with anyio.fail_after(5):
        async with anyio.create_task_group() as tg:
            for name, seconds in [("c", 3.0), ("a", 1.0), ("b", 2.0), ("a2", 1.0)]:
                tg.start_soon(sleeper, name, seconds)
            async with anyio.create_task_group() as doomed:
                doomed.start_soon(sleeper, "cancelled", 0.5)
                await clock.settle()
                doomed.cancel_scope.cancel()
            await clock.settle()
            assert clock.next_deadline == 1.0
            clock.advance(1.5)
            await clock.settle()
            assert woke == [("a", 1.5), ("a2", 1.5)]
            clock.advance(10.0)

    assert [name for name, _ in woke] == ["a", "a2", "b", "c"]


@pytest.mark.anyio
async def test_fake_clock_autojump_moves_time_only_when_all_tasks_wait() -> None:
    clock = FakeClock()
    with anyio.fail_after(5):
        async with clock.autojump():
            await clock.sleep(2.0)
            assert clock.now() == 2.0
            await clock.sleep(0.5)
    assert clock.now() == 2.5
