from __future__ import annotations

import random
from datetime import UTC, datetime
from email.utils import format_datetime

import anyio
import anyio.lowlevel
import pytest

from synthflow.errors import (
    LLMConnectionError,
    LLMResponseError,
    LLMStatusError,
    LLMTimeoutError,
)
from synthflow.models.callpath._clock import FakeClock
from synthflow.models.callpath.limiter import EndpointLimiter
from synthflow.models.callpath.retry import call_with_retries, parse_retry_after

NOW = 1_700_000_000.0


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


class RecordingClock:
    """Sleeps return at once; the requested durations are recorded and added to ``now()``."""

    def __init__(self) -> None:
        self.time = 0.0
        self.sleeps: list[float] = []

    def now(self) -> float:
        return self.time

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.time += seconds
        await anyio.lowlevel.checkpoint()


class Script:
    """A call that raises the scripted errors in turn, then returns ``"ok"``."""

    def __init__(self, *errors: BaseException) -> None:
        self.errors = list(errors)
        self.attempts = 0

    async def __call__(self) -> str:
        self.attempts += 1
        await anyio.lowlevel.checkpoint()
        if self.errors:
            raise self.errors.pop(0)
        return "ok"


def status(code: int, **headers: str) -> LLMStatusError:
    return LLMStatusError(f"HTTP {code}", status_code=code, headers=dict(headers))


def http_date(unix_time: float) -> str:
    return format_datetime(datetime.fromtimestamp(unix_time, tz=UTC), usegmt=True)


@pytest.mark.anyio
@pytest.mark.parametrize(
    "error",
    [
        status(429),
        status(500),
        status(503),
        status(408),
        LLMTimeoutError("timed out"),
        LLMConnectionError("reset"),
        LLMResponseError("not JSON"),
    ],
    ids=lambda e: type(e).__name__ + str(getattr(e, "status_code", "")),
)
async def test_transient_errors_are_retried_with_exponential_backoff(
    error: BaseException,
) -> None:
    clock = RecordingClock()
    script = Script(error, error, error)

    result = await call_with_retries(script, clock=clock, base_delay=1.0, rng=random.Random(7))

    assert result == "ok"
    assert script.attempts == 4
    assert len(clock.sleeps) == 3
    for n, slept in enumerate(clock.sleeps):
        assert 0.5 * 2**n <= slept < 2**n  # jittered within [half, full) of 1, 2, 4 s


@pytest.mark.anyio
@pytest.mark.parametrize(
    "error",
    [status(400), status(401), status(404), status(422), ValueError("a bug")],
    ids=lambda e: type(e).__name__ + str(getattr(e, "status_code", "")),
)
async def test_other_errors_are_raised_at_once(error: BaseException) -> None:
    clock = RecordingClock()
    script = Script(error)
    retried: list[BaseException] = []

    with pytest.raises(type(error)) as raised:
        await call_with_retries(script, clock=clock, on_retry=retried.append)

    assert raised.value is error
    assert script.attempts == 1
    assert clock.sleeps == []
    assert retried == []


@pytest.mark.anyio
async def test_gives_up_after_max_attempts_and_reraises_the_last_error() -> None:
    clock = RecordingClock()
    errors = [status(500), status(502), status(503), status(504)]
    script = Script(*errors)
    retried: list[BaseException] = []

    with pytest.raises(LLMStatusError) as raised:
        await call_with_retries(script, max_attempts=3, clock=clock, on_retry=retried.append)

    assert raised.value is errors[2]
    assert script.attempts == 3
    assert len(clock.sleeps) == 2
    assert retried == errors[:2]


@pytest.mark.anyio
async def test_backoff_is_capped_at_max_delay_and_reproducible_with_a_seed() -> None:
    def run() -> tuple[Script, RecordingClock]:
        return Script(*[LLMTimeoutError("slow")] * 7), RecordingClock()

    script, clock = run()
    with pytest.raises(LLMTimeoutError):
        await call_with_retries(
            script, max_attempts=7, max_delay=4.0, clock=clock, rng=random.Random(3)
        )
    again, clock_again = run()
    with pytest.raises(LLMTimeoutError):
        await call_with_retries(
            again, max_attempts=7, max_delay=4.0, clock=clock_again, rng=random.Random(3)
        )

    assert max(clock.sleeps) < 4.0
    assert all(2.0 <= slept < 4.0 for slept in clock.sleeps[2:])
    assert clock.sleeps == clock_again.sleeps


@pytest.mark.anyio
@pytest.mark.parametrize("code", [429, 503])
async def test_retry_after_seconds_is_honoured(code: int) -> None:
    clock = RecordingClock()
    script = Script(status(code, **{"Retry-After": "7"}))

    assert await call_with_retries(script, clock=clock) == "ok"
    assert clock.sleeps == [7.0]


@pytest.mark.anyio
async def test_retry_after_http_date_is_honoured() -> None:
    clock = RecordingClock()
    script = Script(status(429, **{"retry-after": http_date(NOW + 12)}))

    assert await call_with_retries(script, clock=clock, wallclock=lambda: NOW) == "ok"
    assert clock.sleeps == [12.0]


@pytest.mark.anyio
async def test_retry_after_ms_is_honoured() -> None:
    clock = RecordingClock()
    script = Script(status(429, **{"retry-after-ms": "250", "retry-after": "1"}))

    assert await call_with_retries(script, clock=clock) == "ok"
    assert clock.sleeps == [0.25]


@pytest.mark.anyio
async def test_429_with_a_limiter_pauses_the_endpoint_and_waits_out_its_pause() -> None:
    clock = RecordingClock()
    limiter = EndpointLimiter(max_concurrency=8, clock=clock)
    script = Script(status(429, **{"Retry-After": "5"}))

    async def call() -> str:
        async with limiter.acquire():
            return await script()

    assert await call_with_retries(call, clock=clock, limiter=limiter) == "ok"
    assert clock.sleeps == [5.0]
    stats = limiter.stats()
    assert stats.rate_limited_total == 1
    assert stats.concurrency_limit == 1  # 0.9 x what the server accepted: this one call


@pytest.mark.anyio
async def test_429_without_retry_after_waits_the_limiter_default_pause() -> None:
    clock = RecordingClock()
    limiter = EndpointLimiter(clock=clock)
    script = Script(status(429), status(429))

    assert await call_with_retries(script, clock=clock, limiter=limiter) == "ok"
    assert clock.sleeps == [1.0, 2.0]


@pytest.mark.anyio
async def test_a_429_holds_back_other_calls_to_the_endpoint() -> None:
    clock = FakeClock()
    limiter = EndpointLimiter(max_concurrency=4, clock=clock)
    attempts_at: list[float] = []
    other_at: list[float] = []

    async def rate_limited_once() -> str:
        async with limiter.acquire():
            attempts_at.append(clock.now())
            if len(attempts_at) == 1:
                raise status(429, **{"Retry-After": "10"})
            return "ok"

    async def other() -> None:
        await clock.sleep(1.0)
        async with limiter.acquire():
            other_at.append(clock.now())

    async def first() -> None:
        assert await call_with_retries(rate_limited_once, clock=clock, limiter=limiter) == "ok"

    with anyio.fail_after(5):
        async with clock.autojump(), anyio.create_task_group() as tg:
            tg.start_soon(first)
            tg.start_soon(other)

    assert attempts_at == [0.0, 10.0]
    assert other_at == [10.0]


def test_parse_retry_after() -> None:
    assert parse_retry_after("120", NOW) == 120.0
    assert parse_retry_after(" 3.5 ", NOW) == 3.5
    assert parse_retry_after("-4", NOW) == 0.0
    assert parse_retry_after(http_date(NOW + 30), NOW) == 30.0
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT", NOW) == 0.0  # in the past
    assert parse_retry_after("soon", NOW) is None
    assert parse_retry_after("nan", NOW) is None
