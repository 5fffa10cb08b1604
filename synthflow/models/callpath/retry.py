"""The one retry boundary of an LLM call, built on tenacity.

Retried: ``LLMStatusError`` with status 408, 429 or 5xx, ``LLMTimeoutError``,
``LLMConnectionError``, ``LLMResponseError``, and an ``LLMEmptyAnswerError`` marked
``retryable`` (a missing choice, or null content while sampling), which gets at most
``EMPTY_ANSWER_ATTEMPTS`` attempts in all. Any other error (400, 401, 404, a refusal, a bug) is
raised at once. Between attempts the wait is exponential with jitter, or what ``Retry-After``
asks for. A 429 is reported to the endpoint's limiter, which answers how long that request
waits: ``fn`` reports it through the permit it was sent under (``permit.rate_limited``, setting
the error's ``retry_delay``), so the limiter can tell a concurrency limit (only that request
waits) from a rate window (the whole endpoint pauses); a 429 ``fn`` did not report is taken as a
rate window. When ``fn`` acquires its permit from the same limiter, the next attempt also queues
behind the calls already waiting.
"""

from __future__ import annotations

import math
import random
import time
from collections.abc import Awaitable, Callable, Mapping
from email.utils import parsedate_to_datetime
from typing import Any, TypeVar

from tenacity import AsyncRetrying, RetryCallState, retry_if_exception, stop_after_attempt

from synthflow.errors import (
    LLMConnectionError,
    LLMEmptyAnswerError,
    LLMResponseError,
    LLMStatusError,
    LLMTimeoutError,
)
from synthflow.models.callpath._clock import Clock, MonotonicClock
from synthflow.models.callpath.answers import EMPTY_ANSWER_ATTEMPTS
from synthflow.models.callpath.limiter import EndpointLimiter

__all__ = ["call_with_retries", "is_retryable", "parse_retry_after", "retry_after_from_headers"]

T = TypeVar("T")


def is_retryable(exc: BaseException) -> bool:
    if isinstance(exc, LLMEmptyAnswerError):
        return exc.retryable
    if isinstance(exc, LLMStatusError):
        return exc.status_code in (408, 429) or exc.status_code >= 500
    return isinstance(exc, LLMTimeoutError | LLMConnectionError | LLMResponseError)


def parse_retry_after(value: str, now_wallclock: float) -> float | None:
    """Seconds to wait from a ``Retry-After`` value: delay-seconds or an HTTP-date.

    ``now_wallclock`` is the current Unix time, to turn a date into a delay. Returns ``None``
    when the value is neither; a date in the past gives 0.
    """
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        pass
    else:
        return max(seconds, 0.0) if math.isfinite(seconds) else None
    try:
        moment = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if moment.tzinfo is None:  # RFC 9110 dates are GMT
        return None
    return max(moment.timestamp() - now_wallclock, 0.0)


def retry_after_from_headers(headers: Mapping[str, Any], now_wallclock: float) -> float | None:
    """The wait a response asks for: ``retry-after-ms`` (OpenAI) first, then ``retry-after``."""
    by_name = {name.lower(): str(value) for name, value in headers.items()}
    milliseconds = by_name.get("retry-after-ms")
    if milliseconds is not None:
        try:
            seconds = float(milliseconds) / 1000.0
        except ValueError:
            pass
        else:
            if math.isfinite(seconds):
                return max(seconds, 0.0)
    value = by_name.get("retry-after")
    return None if value is None else parse_retry_after(value, now_wallclock)


_JITTER = random.Random()


async def call_with_retries(
    fn: Callable[[], Awaitable[T]],
    *,
    max_attempts: int = 6,
    base_delay: float = 1.0,
    max_delay: float = 60.0,
    limiter: EndpointLimiter | None = None,
    clock: Clock | None = None,
    on_retry: Callable[[BaseException], None] | None = None,
    rng: random.Random | None = None,
    wallclock: Callable[[], float] = time.time,
) -> T:
    """Await ``fn()`` until it succeeds, retrying transient errors; re-raise the last error.

    The n-th wait is ``min(max_delay, base_delay * 2**(n-1))`` scaled by a random factor in
    [0.5, 1), unless the error carries a ``retry_delay`` set by the limiter, or ``Retry-After``
    (honoured as given, not capped), or is a 429 with a ``limiter`` (the wait is its pause).
    ``on_retry`` sees each error that will be retried, before the wait. Sleeps go through
    ``clock``; ``rng`` and ``wallclock`` make the jitter and HTTP-date arithmetic reproducible
    in tests.
    """
    if max_attempts < 1:
        raise ValueError("max_attempts must be at least 1")
    sleeper: Clock = clock if clock is not None else MonotonicClock()
    jitter = rng if rng is not None else _JITTER

    async def attempt() -> T:
        try:
            return await fn()
        except LLMStatusError as exc:
            if limiter is not None and exc.status_code == 429 and exc.retry_delay is None:
                retry_after = retry_after_from_headers(exc.headers, wallclock())
                exc.retry_delay = limiter.on_rate_limited(retry_after, exc.headers)
            raise

    def wait(state: RetryCallState) -> float:
        exc = state.outcome.exception() if state.outcome is not None else None
        if isinstance(exc, LLMStatusError):
            if exc.retry_delay is not None:
                return exc.retry_delay
            retry_after = retry_after_from_headers(exc.headers, wallclock())
            if retry_after is not None:
                return retry_after
        backoff = min(max_delay, base_delay * 2.0 ** (state.attempt_number - 1))
        return backoff * (0.5 + 0.5 * jitter.random())

    def before_sleep(state: RetryCallState) -> None:
        exc = state.outcome.exception() if state.outcome is not None else None
        if on_retry is not None and exc is not None:
            on_retry(exc)

    # The first attempt runs bare: tenacity's bookkeeping costs about 0.15 ms a call, and most
    # calls succeed at once. Only a retryable failure enters the retry loop, which then counts
    # that failure as its own first attempt.
    try:
        return await attempt()
    except Exception as exc:
        if max_attempts == 1 or not is_retryable(exc):
            raise
        first_failure = exc

    failed_once = [False]

    async def attempt_after_first() -> T:
        if not failed_once[0]:
            failed_once[0] = True
            raise first_failure
        return await attempt()

    def stop(state: RetryCallState) -> bool:
        exc = state.outcome.exception() if state.outcome is not None else None
        if isinstance(exc, LLMEmptyAnswerError) and state.attempt_number >= EMPTY_ANSWER_ATTEMPTS:
            return True  # an endpoint that keeps answering without text won't change soon
        return stop_after_attempt(max_attempts)(state)

    retrying = AsyncRetrying(
        sleep=sleeper.sleep,
        stop=stop,
        wait=wait,
        retry=retry_if_exception(is_retryable),
        before_sleep=before_sleep,
        reraise=True,
    )
    result: T = await retrying(attempt_after_first)
    return result
