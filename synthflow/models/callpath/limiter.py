"""One rate limiter per endpoint and API key, shared by every step that calls it.

A call goes through ``EndpointLimiter.acquire(estimated_tokens)``, which grants a permit once

- a concurrency slot is free (the limit adapts: lowered by a 429, +1 per window of successes),
- the endpoint is not paused (by a 429 of a rate window, or when headers say a quota is spent),
- the requests-per-minute bucket holds one request and the tokens-per-minute bucket holds the
  estimate. Both buckets are charged when the permit is granted; ``permit.reconcile(actual)``
  corrects the token bucket once the usage is known.

A 429 is reported through the permit its request was sent under (``permit.rate_limited``),
which reads what the refusal means and answers how long that request waits before its retry:

- a **rate window** (the headers say the requests or tokens remaining are spent, or the server
  refuses with nothing else in flight, or with fewer in flight than it accepted before): every
  request waits, the endpoint is paused until the reset or ``Retry-After``;
- a **concurrency limit** (the headers say requests remain, or the server refuses while it has
  others in flight): the in-flight ceiling drops to what the server admitted, and only the
  refused request waits its ``Retry-After``; the others go on. Above that ceiling the limiter
  probes one slot now and then, less often each time the probe is refused.

Permits are granted first come, first served. Waits are computed from the buckets and the pause,
never polled: only the head of the queue waits on time, the others wait their turn.

``get_limiter(key, **settings)`` hands out one limiter per key, process-wide; ``endpoint_key``
builds that key from the base URL and a hash of the API key.
"""

from __future__ import annotations

import hashlib
import math
import re
import threading
import time
from collections import deque
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

import anyio
import anyio.lowlevel

from synthflow.models.callpath._clock import Clock, MonotonicClock

__all__ = [
    "EndpointLimiter",
    "LimiterStats",
    "Permit",
    "endpoint_key",
    "get_limiter",
    "parse_reset_duration",
]

_BACKOFF_FACTOR = 0.9  # a rate window's 429 cuts the limit to 0.9 x the concurrency in flight
_PROBE_WINDOWS = 10  # at the ceiling, probe one slot above it only after this many windows...
_MAX_PROBE_WINDOWS = 320  # ...twice as many after each refused probe, up to this many
_LATENCY_BACKOFF_FACTOR = 0.75  # latency rose too much: shrink the limit by a quarter
_LATENCY_RISE = 1.5  # window latency above 1.5 x baseline: the server is queueing
_LATENCY_FLAT = 1.2  # window latency within 1.2 x baseline: room to grow
_BASELINE_DRIFT = 0.05  # the baseline follows lasting latency changes, slowly
_LATENCY_INITIAL_CONCURRENCY = 4
_DEFAULT_PAUSE = 1.0  # first 429 without Retry-After; doubles on each new one, up to the max
_MAX_DEFAULT_PAUSE = 60.0
_EPSILON = 1e-9


@dataclass(frozen=True, slots=True)
class LimiterStats:
    concurrency_limit: int | None  # None: no cap
    in_flight: int
    waiting: int
    rate_limited_total: int  # 429s reported (permit.rate_limited, on_rate_limited)
    paused_until: float | None  # clock time; None when not paused


class _TokenBucket:
    """``capacity`` units, refilled at ``rate`` per second. The level may go negative (debt)."""

    __slots__ = ("capacity", "level", "rate", "updated")

    def __init__(self, per_minute: float, now: float, level: float | None = None) -> None:
        self.capacity = per_minute
        self.rate = per_minute / 60.0
        self.level = per_minute if level is None else min(level, per_minute)
        self.updated = now

    def refill(self, now: float) -> None:
        if now > self.updated:
            self.level = min(self.capacity, self.level + (now - self.updated) * self.rate)
            self.updated = now

    def set_limit(self, per_minute: float) -> None:
        self.capacity = per_minute
        self.rate = per_minute / 60.0
        self.level = min(self.level, per_minute)

    def seconds_until(self, amount: float) -> float:
        """Seconds until ``amount`` fits; an amount over capacity fits a full bucket."""
        needed = min(amount, self.capacity)
        missing = needed - self.level
        return 0.0 if missing <= _EPSILON else missing / self.rate


class Permit:
    """A granted call. ``reconcile(actual_tokens)`` charges or refunds the token estimate;
    ``rate_limited(...)`` reports that the server refused it with a 429."""

    __slots__ = (
        "_charged",
        "_limiter",
        "estimated_tokens",
        "granted_at",
        "in_flight_at_grant",
        "seq",
    )

    def __init__(
        self,
        limiter: EndpointLimiter,
        estimated_tokens: int,
        granted_at: float,
        *,
        seq: int = 0,
        in_flight_at_grant: int = 1,
    ) -> None:
        self._limiter = limiter
        self._charged = estimated_tokens
        self.estimated_tokens = estimated_tokens
        self.granted_at = granted_at
        self.seq = seq
        """Grants before this one, plus one: tells which 429s were sent before a burst began."""
        self.in_flight_at_grant = in_flight_at_grant
        """Permits in flight once this one was granted, itself included."""

    def reconcile(self, actual_tokens: int) -> None:
        delta = actual_tokens - self._charged
        self._charged = actual_tokens
        self._limiter._charge_tokens(delta)

    def rate_limited(
        self, retry_after: float | None = None, headers: Mapping[str, Any] | None = None
    ) -> float:
        """The server answered this permit's request with 429: adapt to what the refusal
        means (see the module docstring) and return the seconds to wait before retrying it.
        Call it while the permit is held."""
        return self._limiter._on_refused(self, retry_after, headers or {})


class _Waiter:
    __slots__ = ("event", "tokens")

    def __init__(self, tokens: int) -> None:
        self.tokens = tokens
        self.event: anyio.Event | None = None


class EndpointLimiter:
    """Concurrency, request-rate and token-rate limits for one endpoint, adapted as it answers.

    ``adaptive``: a 429 lowers the concurrency limit (to what the server admitted, or to 0.9x
    what was in flight for a rate window; never below 1) and each window of successes (as many
    as the limit) while the limit was reached adds one back, up to ``max_concurrency``.
    ``latency_adaptive``, for servers that queue instead of answering 429: the limit starts
    small and grows only while the mean latency of a window stays within 1.2x the baseline (the
    lowest window mean seen, drifting slowly toward lasting changes); above 1.5x it shrinks by a
    quarter.

    Use it from one event-loop thread. It holds no event-loop objects between calls, so one
    limiter may serve successive runs.
    """

    def __init__(
        self,
        *,
        max_concurrency: int | None = None,
        requests_per_minute: float | None = None,
        tokens_per_minute: float | None = None,
        adaptive: bool = True,
        latency_adaptive: bool = False,
        base_pause: float = _DEFAULT_PAUSE,
        clock: Clock | None = None,
        wallclock: Callable[[], float] = time.time,
    ) -> None:
        if max_concurrency is not None and max_concurrency < 1:
            raise ValueError("max_concurrency must be at least 1, or None for no cap")
        for name, value in (
            ("requests_per_minute", requests_per_minute),
            ("tokens_per_minute", tokens_per_minute),
        ):
            if value is not None and not value > 0:
                raise ValueError(f"{name} must be positive, or None for no limit")
        self._clock: Clock = clock if clock is not None else MonotonicClock()
        self._wallclock = wallclock
        self._base_pause = base_pause
        self._max_concurrency = max_concurrency
        self._adaptive = adaptive
        self._latency_adaptive = latency_adaptive
        self._limit: int | None = max_concurrency
        if latency_adaptive:
            self._limit = min(
                max_concurrency or _LATENCY_INITIAL_CONCURRENCY, _LATENCY_INITIAL_CONCURRENCY
            )
        now = self._clock.now()
        self._rpm_configured = requests_per_minute is not None
        self._tpm_configured = tokens_per_minute is not None
        self._rpm = _TokenBucket(requests_per_minute, now) if requests_per_minute else None
        self._tpm = _TokenBucket(tokens_per_minute, now) if tokens_per_minute else None

        self.answered = False
        """Whether the endpoint has answered any request (an error status counts): until it
        has, a connection that can't be made means a wrong URL or a server that isn't up."""
        self.succeeded = False
        """Whether a request has succeeded: until one has, a refused key or an unknown model
        (401, 403, 404) is a configuration mistake rather than one row's bad luck."""
        self._in_flight = 0
        self._waiters: deque[_Waiter] = deque()
        self._paused_until = -math.inf
        self._congestion_until = -math.inf  # end of the pause of the last 429 that cut the limit
        self._consecutive_429 = 0
        self._rate_limited_total = 0
        self._window_successes = 0
        self._window_latency = 0.0
        self._window_peak = 0  # most permits in flight at once during the window
        self._baseline_latency: float | None = None
        self._recent_latency: float | None = None
        self._ceiling: int | None = None  # most in flight the server admitted when it refused one
        self._windows_at_ceiling = 0
        self._probe_windows = _PROBE_WINDOWS
        self._grants = 0
        # The burst of concurrency 429s: permits granted up to ``_burst_seq`` were sent before
        # its first 429 came back, so their 429s refine that burst's ceiling rather than
        # starting a new one. What the limit and ceiling were before it, in case the burst
        # turns out to be a rate window (the server admitted none of it).
        self._burst_seq = 0
        self._limit_before_burst: int | None = self._limit
        self._in_flight_at_burst = 0
        self._ceiling_before_burst: int | None = None

    @property
    def concurrency_limit(self) -> int | None:
        return self._limit

    def stats(self) -> LimiterStats:
        return LimiterStats(
            concurrency_limit=self._limit,
            in_flight=self._in_flight,
            waiting=len(self._waiters),
            rate_limited_total=self._rate_limited_total,
            paused_until=self._paused_until if self._paused_until > self._clock.now() else None,
        )

    def pause_remaining(self) -> float:
        """Seconds until the endpoint takes requests again (0 when not paused)."""
        return max(self._paused_until - self._clock.now(), 0.0)

    # --- acquiring -------------------------------------------------------------------------

    @asynccontextmanager
    async def acquire(self, estimated_tokens: int = 0) -> AsyncIterator[Permit]:
        """Wait for a slot, the end of any pause and room in both buckets; hold the slot inside."""
        permit = await self._wait_for_permit(estimated_tokens)
        try:
            yield permit
        finally:
            self._in_flight -= 1
            self._wake_head()

    async def _wait_for_permit(self, tokens: int) -> Permit:
        await anyio.lowlevel.checkpoint()
        waiter = _Waiter(tokens)
        self._waiters.append(waiter)
        try:
            while True:
                if self._waiters[0] is not waiter:
                    waiter.event = anyio.Event()
                    await waiter.event.wait()
                    continue
                now = self._clock.now()
                slot_free = self._limit is None or self._in_flight < self._limit
                delay = self._seconds_until_ready(tokens, now)
                if slot_free and delay <= 0.0:
                    return self._grant(tokens, now)
                waiter.event = anyio.Event()
                if slot_free:
                    await self._wait_event_or_delay(waiter.event, delay)
                else:
                    await waiter.event.wait()
        finally:
            was_head = self._waiters[0] is waiter
            self._waiters.remove(waiter)
            if was_head:
                self._wake_head()

    def _seconds_until_ready(self, tokens: int, now: float) -> float:
        delay = self._paused_until - now
        if self._rpm is not None:
            self._rpm.refill(now)
            delay = max(delay, self._rpm.seconds_until(1))
        if self._tpm is not None and tokens > 0:
            self._tpm.refill(now)
            delay = max(delay, self._tpm.seconds_until(tokens))
        return delay

    def _grant(self, tokens: int, now: float) -> Permit:
        if self._rpm is not None:
            self._rpm.level -= 1
        if self._tpm is not None:
            self._tpm.level -= tokens
        self._in_flight += 1
        self._grants += 1
        self._window_peak = max(self._window_peak, self._in_flight)
        return Permit(self, tokens, now, seq=self._grants, in_flight_at_grant=self._in_flight)

    async def _wait_event_or_delay(self, event: anyio.Event, delay: float) -> None:
        # The head of the queue waits for its time to come, unless the state changes first
        # (a refund, new headers, a freed slot), in which case it wakes up and recomputes.
        async with anyio.create_task_group() as tg:

            async def timer() -> None:
                await self._clock.sleep(delay)
                tg.cancel_scope.cancel()

            tg.start_soon(timer)
            await event.wait()
            tg.cancel_scope.cancel()

    def _wake_head(self) -> None:
        if self._waiters:
            event = self._waiters[0].event
            if event is not None:
                event.set()

    def _charge_tokens(self, delta: int) -> None:
        if self._tpm is None or delta == 0:
            return
        self._tpm.refill(self._clock.now())
        self._tpm.level = min(self._tpm.capacity, self._tpm.level - delta)
        if delta < 0:
            self._wake_head()

    # --- feedback from the endpoint -------------------------------------------------------

    def on_rate_limited(
        self, retry_after: float | None = None, headers: Mapping[str, Any] | None = None
    ) -> float:
        """A 429 that no permit is known for: taken as a rate window (see ``_pause``).

        Returns the seconds until the endpoint takes requests again. Prefer
        ``permit.rate_limited``, which can tell a concurrency limit from a rate window.
        """
        self._rate_limited_total += 1
        quota = self._read_headers(headers or {}, 0)
        self._pause(retry_after, cut_from=None if quota == "spent" else self._in_flight + 1)
        return self.pause_remaining()

    def _on_refused(
        self, permit: Permit, retry_after: float | None, headers: Mapping[str, Any]
    ) -> float:
        self._rate_limited_total += 1
        quota = self._read_headers(headers, permit.estimated_tokens)
        if quota == "spent":
            self._pause(retry_after, cut_from=None)  # the buckets hold what the headers said
            return self.pause_remaining()
        window: int | None = max(self._in_flight, permit.in_flight_at_grant)
        if self._adaptive:
            window = self._lower_ceiling(permit, quota == "open")
            if window is None:
                # A slot frees as soon as an admitted request ends, and the lowered limit keeps
                # this one out until then: only the server's Retry-After is waited on top.
                return 0.0 if retry_after is None else max(retry_after, 0.0)
        self._pause(retry_after, cut_from=window)
        return self.pause_remaining()

    def _lower_ceiling(self, permit: Permit, requests_remain: bool) -> int | None:
        """Take ``permit``'s 429 as a concurrency limit and lower the ceiling to what the server
        admitted; return None. When the refusal shows a rate window instead, return the
        concurrency in flight that met the window."""
        others_now = self._in_flight - 1  # this permit is still held
        if permit.seq <= self._burst_seq and self._ceiling is not None:
            # Sent before the burst's first 429 came back: those still in flight are admitted.
            if others_now < 1 and not requests_remain:
                # The server admitted none of the burst: a rate window, not a ceiling.
                self._limit, self._ceiling = self._limit_before_burst, self._ceiling_before_burst
                self._burst_seq = 0
                return self._in_flight_at_burst
            self._ceiling = min(self._ceiling, max(others_now, 1))
            self._limit = self._ceiling if self._limit is None else min(self._limit, self._ceiling)
            return None
        others_then = permit.in_flight_at_grant - 1
        others = max(others_then, others_now)
        if others < 1:
            return 1  # refused with nothing else in flight
        if not requests_remain and self._ceiling is not None and others < self._ceiling:
            return others + 1  # refused with fewer in flight than it admitted before
        refused_probe = self._ceiling is not None and others >= self._ceiling
        self._probe_windows = (
            min(self._probe_windows * 2, _MAX_PROBE_WINDOWS) if refused_probe else _PROBE_WINDOWS
        )
        self._burst_seq = self._grants
        self._in_flight_at_burst = others + 1
        self._limit_before_burst, self._ceiling_before_burst = self._limit, self._ceiling
        self._ceiling = others
        self._limit = others if self._limit is None else min(self._limit, others)
        self._windows_at_ceiling = 0
        self._reset_window(peak=0)  # those in flight now met the 429: they don't count
        return None

    def _pause(self, retry_after: float | None, *, cut_from: int | None) -> None:
        """A rate window's 429: pause every request, and (if adaptive and ``cut_from`` is set)
        cut the concurrency limit to 0.9 x ``cut_from``, the concurrency that met the window.

        429s that arrive while the pause of an earlier one is running belong to the same burst:
        they may lengthen the pause but don't cut the limit again.
        """
        now = self._clock.now()
        new_burst = now >= self._congestion_until
        if new_burst:
            self._consecutive_429 += 1
        if retry_after is None:
            # Without Retry-After, wait about one request's latency: by then requests in flight
            # have finished and freed room. Doubles while 429s keep coming with no success between.
            first = self._base_pause
            if self._recent_latency is not None:
                first = min(first, max(self._recent_latency, 0.05))
            exponent = max(self._consecutive_429 - 1, 0)
            pause = min(first * 2.0**exponent, _MAX_DEFAULT_PAUSE)
        else:
            pause = max(retry_after, 0.0)
        self._paused_until = max(self._paused_until, now + pause)
        if not new_burst:
            self._congestion_until = max(self._congestion_until, now + pause)
            return
        self._congestion_until = now + pause
        if self._adaptive and cut_from is not None:
            current = cut_from if self._limit is None else min(self._limit, cut_from)
            self._limit = max(1, math.floor(current * _BACKOFF_FACTOR))
            self._reset_window(peak=0)  # those in flight now met the 429: they don't count

    def on_success(self, latency: float) -> None:
        """A call succeeded after ``latency`` seconds: grow the limit back, window by window.

        Growth is one slot per window of successes, up to the ceiling a concurrency 429 set;
        above it the limiter probes one slot after ``_PROBE_WINDOWS`` windows there (twice as
        many after each refused probe), so a server with a fixed cap sees a 429 rarely. A whole
        window above the ceiling without a 429 lifts it.
        """
        self.succeeded = True
        self._consecutive_429 = 0
        self._recent_latency = (
            latency
            if self._recent_latency is None
            else self._recent_latency + 0.1 * (latency - self._recent_latency)
        )
        if self._limit is None or not (self._adaptive or self._latency_adaptive):
            return
        self._window_successes += 1
        self._window_latency += latency
        if self._window_successes < self._limit:
            return
        mean = self._window_latency / self._window_successes
        limit_reached = self._window_peak >= self._limit
        self._reset_window()
        if self._latency_adaptive:
            baseline = self._baseline_latency
            if baseline is None or mean < baseline:
                self._baseline_latency = mean
            else:
                self._baseline_latency = baseline + (mean - baseline) * _BASELINE_DRIFT
            ratio = 1.0 if baseline is None or baseline <= 0 else mean / baseline
            if ratio > _LATENCY_RISE:
                self._limit = max(1, math.floor(self._limit * _LATENCY_BACKOFF_FACTOR))
                return
            if ratio > _LATENCY_FLAT:
                return
        if limit_reached and (self._max_concurrency is None or self._limit < self._max_concurrency):
            if self._ceiling is not None:
                if self._limit > self._ceiling:  # a probe's window passed: the cap has moved
                    self._ceiling = None
                    self._probe_windows = _PROBE_WINDOWS
                elif self._limit == self._ceiling:
                    self._windows_at_ceiling += 1
                    if self._windows_at_ceiling < self._probe_windows:
                        return
                    self._windows_at_ceiling = 0
            self._limit += 1
            self._wake_head()

    def _reset_window(self, peak: int | None = None) -> None:
        self._window_successes = 0
        self._window_latency = 0.0
        self._window_peak = self._in_flight if peak is None else peak

    def update_from_headers(self, headers: Mapping[str, Any]) -> None:
        """Adapt to the rate-limit headers of a response (OpenAI or Anthropic style).

        A limit header sets the bucket's size when none was configured; a remaining count lowers
        the bucket to it; a spent quota (remaining 0) holds new requests until its reset.
        """
        self._read_headers(headers, 0)

    def _read_headers(
        self, headers: Mapping[str, Any], tokens: int
    ) -> Literal["spent", "open"] | None:
        """Apply ``headers`` (see ``update_from_headers``) and say what they tell of a request
        of ``tokens`` tokens: ``"spent"`` when the requests or tokens remaining can't hold it,
        ``"open"`` when requests remain (and tokens, if counted), None when they don't say."""
        found: dict[str, str] = {}
        for name, value in headers.items():
            lowered = name.lower()
            if lowered.startswith(("x-ratelimit-", "anthropic-ratelimit-")):
                found[lowered] = str(value)
        if not found:
            return None
        state: Literal["spent", "open"] | None = None
        now = self._clock.now()
        kinds: tuple[Literal["requests", "tokens"], ...] = ("requests", "tokens")
        for kind in kinds:
            limit = _parse_number(
                found.get(f"x-ratelimit-limit-{kind}")
                or found.get(f"anthropic-ratelimit-{kind}-limit")
            )
            remaining = _parse_number(
                found.get(f"x-ratelimit-remaining-{kind}")
                or found.get(f"anthropic-ratelimit-{kind}-remaining")
            )
            reset = parse_reset_duration(found.get(f"x-ratelimit-reset-{kind}"))
            if reset is None:
                reset = _seconds_until_timestamp(
                    found.get(f"anthropic-ratelimit-{kind}-reset"), self._wallclock()
                )
            self._apply_quota(kind, limit, remaining, reset, now)
            if remaining is not None:
                if remaining < (1 if kind == "requests" else max(tokens, 1)):
                    state = "spent"
                elif kind == "requests" and state is None:
                    state = "open"
        self._wake_head()
        return state

    def _apply_quota(
        self,
        kind: Literal["requests", "tokens"],
        limit: float | None,
        remaining: float | None,
        reset: float | None,
        now: float,
    ) -> None:
        bucket = self._rpm if kind == "requests" else self._tpm
        configured = self._rpm_configured if kind == "requests" else self._tpm_configured
        if limit is not None and limit > 0 and not configured:
            if bucket is None:
                bucket = _TokenBucket(limit, now, level=remaining)
                if kind == "requests":
                    self._rpm = bucket
                else:
                    self._tpm = bucket
            else:
                bucket.refill(now)
                bucket.set_limit(limit)
        if remaining is None:
            return
        if bucket is not None:
            bucket.refill(now)
            bucket.level = min(bucket.level, remaining)
        if remaining < 1 and reset is not None:
            self._paused_until = max(self._paused_until, now + reset)

    # --- a share of a budget held elsewhere ----------------------------------------------

    def set_share(
        self,
        concurrency: int | None,
        requests_per_minute: float | None = None,
        tokens_per_minute: float | None = None,
    ) -> None:
        """Hold this process to its share of an endpoint budget kept across processes (a
        distributed run's budget actor): at most ``concurrency`` in flight (0: wait for a
        larger share), and the given rates. The limiter's own adaptation works under the share;
        each new share replaces the last."""
        now = self._clock.now()
        if concurrency is not None:
            self._max_concurrency = max(concurrency, 1)  # the ceiling adaptation grows back to
            self._limit = concurrency
        for kind, share in (("requests", requests_per_minute), ("tokens", tokens_per_minute)):
            if share is None or share <= 0:
                continue
            bucket = self._rpm if kind == "requests" else self._tpm
            if bucket is None:
                bucket = _TokenBucket(share, now, level=share / 60.0)  # no burst on arrival
                if kind == "requests":
                    self._rpm = bucket
                else:
                    self._tpm = bucket
            else:
                bucket.refill(now)
                bucket.set_limit(share)
        self._wake_head()


def _parse_number(value: str | None) -> float | None:
    if value is None:
        return None
    try:
        number = float(value)
    except ValueError:
        return None
    return number if math.isfinite(number) else None


_DURATION_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ms|h|m|s)")
_DURATION = re.compile(rf"(?:{_DURATION_PART.pattern})+")
_UNIT_SECONDS = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 0.001}


def parse_reset_duration(value: str | None) -> float | None:
    """Seconds in an OpenAI reset header: ``"1s"``, ``"6m0s"``, ``"20ms"``, ``"1h2m3.5s"``."""
    if value is None:
        return None
    value = value.strip()
    number = _parse_number(value)
    if number is not None:
        return max(number, 0.0)
    if not _DURATION.fullmatch(value):
        return None
    return sum(float(n) * _UNIT_SECONDS[unit] for n, unit in _DURATION_PART.findall(value))


def _seconds_until_timestamp(value: str | None, now_wallclock: float) -> float | None:
    if value is None:
        return None
    try:
        moment = datetime.fromisoformat(value.strip())
    except ValueError:
        return None
    if moment.tzinfo is None:
        return None
    return max(moment.timestamp() - now_wallclock, 0.0)


_registry: dict[str, EndpointLimiter] = {}
_registry_lock = threading.Lock()


def endpoint_key(base_url: str, api_key: str | None) -> str:
    """The registry key of an endpoint: its URL and a hash of the key (never the key itself)."""
    digest = hashlib.sha256((api_key or "").encode()).hexdigest()[:16]
    return f"{base_url.rstrip('/')}#{digest}"


def get_limiter(key: str, **settings: Any) -> EndpointLimiter:
    """The process-wide limiter for ``key`` and ``settings``, created on first use.

    Every caller with the same endpoint key and the same settings shares one limiter. Settings
    are part of the identity so that a changed runtime parameter (say ``max_concurrency``) takes
    effect on the next run instead of being ignored.
    """
    identity = f"{key}|{sorted(settings.items())!r}"
    with _registry_lock:
        limiter = _registry.get(identity)
        if limiter is None:
            limiter = _registry[identity] = EndpointLimiter(**settings)
        return limiter
