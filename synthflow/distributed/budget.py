"""One endpoint's rate budget, divided among the processes of a distributed run.

Each endpoint a pipeline calls has limits set on its LLM (``max_concurrency``,
``requests_per_minute``, ``tokens_per_minute``): in a run over many workers they are the
endpoint's limits, not each worker's. A ``BudgetLedger`` (held by one actor per endpoint, see
``synthflow.distributed.ray_backend``) hands each worker a *share* that its own limiter enforces
(``EndpointLimiter.set_share``), so a worker never makes a round trip per request.

Shares are leases. A worker renews its lease every fraction of a second, reporting what it has
in flight and how many 429s it has seen; a lease not renewed within ``lease_seconds`` expires
and its share goes to the others, so a dead worker's slots come back.

Concurrency never exceeds the budget, even while shares move: a worker is granted at most the
budget less what every other live worker *holds*, the larger of its share and what it still
has in flight. A worker whose share shrank keeps its requests in flight; the slots it gives up
reach the others only once it reports them finished.

A 429 anywhere cuts the limit for everyone: the limit drops to 0.9 x what was in flight across
the workers, once per burst, and grows back by one per renewal period without a 429, up to the
configured maximum (additive increase, multiplicative decrease, as the one-process limiter).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

__all__ = ["BudgetLedger", "EndpointBudget", "Share"]

_BACKOFF_FACTOR = 0.9
_BURST_SECONDS = 1.0  # 429s within this long of the one that cut the limit belong to its burst


@dataclass(frozen=True, slots=True)
class EndpointBudget:
    """The limits of one endpoint for the whole run (None: no limit of that kind)."""

    max_concurrency: int | None = None
    requests_per_minute: float | None = None
    tokens_per_minute: float | None = None

    @property
    def limited(self) -> bool:
        return any(
            v is not None
            for v in (self.max_concurrency, self.requests_per_minute, self.tokens_per_minute)
        )


@dataclass(frozen=True, slots=True)
class Share:
    """One worker's part of the budget until its next renewal."""

    concurrency: int | None
    requests_per_minute: float | None
    tokens_per_minute: float | None


@dataclass(slots=True)
class _Lease:
    granted: int = 0
    in_flight: int = 0
    rate_limited_total: int = 0
    renewed_at: float = 0.0
    expected: bool = field(default=False)  # announced by the driver, not yet heard from

    @property
    def held(self) -> int:
        return max(self.granted, self.in_flight)


class BudgetLedger:
    """The shares of one endpoint's budget. Not thread-safe: one actor owns it."""

    def __init__(
        self,
        budget: EndpointBudget,
        *,
        lease_seconds: float = 2.0,
        expected_workers: Iterable[str] = (),
        grace_seconds: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.budget = budget
        self.lease_seconds = lease_seconds
        self._clock = clock
        self.limit = budget.max_concurrency
        self._leases: dict[str, _Lease] = {}
        self._cut_at = -math.inf
        self._last_growth = clock()
        now = clock()
        # Workers the driver is starting count from the start, so that the first to arrive
        # doesn't take the whole budget and have to hand most of it back.
        for worker in expected_workers:
            self._leases[worker] = _Lease(renewed_at=now + grace_seconds, expected=True)
        self.rate_limited_total = 0
        self.peak_granted = 0

    def renew(self, worker: str, in_flight: int = 0, rate_limited_total: int = 0) -> Share:
        """Record ``worker``'s state and return its share until its next renewal."""
        now = self._clock()
        self._expire(now)
        lease = self._leases.get(worker)
        if lease is None:
            lease = self._leases[worker] = _Lease()
        new_429s = max(rate_limited_total - lease.rate_limited_total, 0)
        lease.in_flight, lease.rate_limited_total = in_flight, rate_limited_total
        lease.renewed_at, lease.expected = now, False
        if new_429s:
            self.rate_limited_total += new_429s
            self._cut(now)
        else:
            self._grow(now)
        return self._share_of(worker, lease)

    def release(self, worker: str) -> None:
        """``worker`` is done with the endpoint: its share goes to the others."""
        self._leases.pop(worker, None)

    @property
    def workers(self) -> list[str]:
        return sorted(self._leases)

    # -- internals --------------------------------------------------------------------------

    def _expire(self, now: float) -> None:
        expired = [w for w, le in self._leases.items() if now - le.renewed_at > self.lease_seconds]
        for worker in expired:
            del self._leases[worker]

    def _cut(self, now: float) -> None:
        if self.budget.max_concurrency is None or now - self._cut_at < _BURST_SECONDS:
            return
        in_flight = sum(lease.in_flight for lease in self._leases.values())
        current = min(self.limit or in_flight, max(in_flight, 1))
        self.limit = max(1, math.floor(current * _BACKOFF_FACTOR))
        self._cut_at = self._last_growth = now

    def _grow(self, now: float) -> None:
        ceiling = self.budget.max_concurrency
        if ceiling is None or self.limit is None or self.limit >= ceiling:
            return
        # One step per renewal period of the whole fleet, not per renewal call.
        if now - self._last_growth >= self.lease_seconds / 4:
            self.limit += 1
            self._last_growth = now

    def _share_of(self, worker: str, lease: _Lease) -> Share:
        workers = sorted(self._leases)
        n = len(workers)
        rpm = self.budget.requests_per_minute
        tpm = self.budget.tokens_per_minute
        concurrency: int | None = None
        if self.limit is not None:
            rank = workers.index(worker)
            fair = self.limit // n + (1 if rank < self.limit % n else 0)
            others = sum(lease.held for w, lease in self._leases.items() if w != worker)
            concurrency = max(0, min(fair, self.limit - others))
            lease.granted = concurrency
            self.peak_granted = max(
                self.peak_granted, sum(le.granted for le in self._leases.values())
            )
        return Share(
            concurrency=concurrency,
            requests_per_minute=rpm / n if rpm is not None else None,
            tokens_per_minute=tpm / n if tpm is not None else None,
        )
