"""Offline batch generation: a task's requests sent as provider batches, at the batch price.

An API LLM with ``use_offline_batch_generation=True`` doesn't call its endpoint per row. Within a
run, ``LLMCalls`` hands each row's missing generations to ``OfflineBatches.answer``, which:

1. **gathers** the requests of one task in a queue, and submits them as one batch when the
   queue reaches the provider's limits (requests or bytes per batch), or when every row the task
   has in flight is waiting on the queue and no more can come soon: its input ended, it holds as
   many rows as it may (``BATCH_ROWS_IN_FLIGHT``), or nothing new arrived for
   ``LINGER_SECONDS``. That rule needs no timer for the usual case (the input ends) and makes
   no batch of one row while a task's rows are still arriving;
2. **checks the budget** before sending: a batch whose estimated cost (prompt characters / 4
   and the ``max_new_tokens`` asked for, at the batch price) would take the run past
   ``max_cost`` (or ``max_tokens``) is not sent; its rows end as a budget stop;
3. **records** the batch in the run directory (``batch_state``): an intent just before it is
   submitted, the batch's id as soon as the provider has given it. A run that finds an intent
   (its predecessor died while submitting) asks the provider for its recent batches before it
   sends any request of that LLM, and adopts the batch that carries the intent's local id
   (OpenAI's ``metadata``; for Anthropic, which has none, the batch created after the intent
   with as many requests). Only when there is none is the intent dropped and its requests sent.
   Submissions are made one at a time, so a run leaves at most one intent;
4. **polls** it (one poller per batch, chosen among the rows waiting on it) every
   ``offline_batch_generation_block_until_done`` seconds until it ends, then downloads its
   results and wakes the rows it answers, which go downstream at once, while other batches
   still run. With ``None``, once everything the task could send is sent, the poller raises
   ``BatchesInProgress``: the run ends, saying so, and the same command run later picks the
   batches up from the run directory (no request is sent twice);
5. hands back each answer as an ordinary call's: ``LLMCalls`` caches it, counts its tokens at the
   batch price, and a request that errored or expired fails its row (``LLMBatchRequestError``).

Request ids (``custom_id``) are response-cache keys: the same request in a later run has the
same id, which is how a resumed run finds the batch that holds it.
"""

from __future__ import annotations

import functools
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio

from synthflow.errors import (
    BatchesInProgress,
    BudgetExceeded,
    LLMBatchRequestError,
    LLMConnectionError,
    LLMError,
    LLMResponseError,
    LLMTimeoutError,
)
from synthflow.models.callpath.batch_state import (
    BatchRecord,
    drop_record,
    load_records,
    save_record,
)
from synthflow.models.callpath.batch_wire import BatchStatus, BatchWire, LineResult
from synthflow.models.callpath.retry import call_with_retries
from synthflow.models.llms.base import LLM, ChatType, GenerateOutput, Usage

__all__ = [
    "BATCH_ROWS_IN_FLIGHT",
    "LINGER_SECONDS",
    "OfflineBatches",
    "cancel_batches",
    "uses_offline_batches",
]

BATCH_ROWS_IN_FLIGHT = 50_000
"""Rows a task in batch mode holds while their batches run (OpenAI's requests per batch)."""
LINGER_SECONDS = 2.0
"""How long a queue whose rows all wait on it waits for more before it submits anyway."""
DEFAULT_MAX_NEW_TOKENS = 256
"""The answer length assumed for a request that sets no ``max_new_tokens``, to estimate cost."""
CLOCK_SLACK_SECONDS = 600.0
"""How far before an intent's time the provider's list is searched (its clock may differ)."""


def uses_offline_batches(llm: LLM) -> bool:
    return bool(getattr(llm, "use_offline_batch_generation", False))


# -- requests, batches and queues ------------------------------------------------------------


@dataclass(eq=False)
class _Request:
    custom_id: str
    keys: list[str]
    line: bytes
    estimated_tokens: int
    estimated_cost: float | None
    done: anyio.Event = field(default_factory=anyio.Event)
    outcome: GenerateOutput | BaseException | None = None
    batch: _OpenBatch | None = None
    queue: BatchQueue | None = None
    """The queue it waits in until sent (another task's, for a prompt two tasks share)."""

    def settle(self, outcome: GenerateOutput | BaseException) -> None:
        if not self.done.is_set():
            self.outcome = outcome
            self.done.set()


@dataclass(eq=False)
class _OpenBatch:
    record: BatchRecord
    wire: BatchWire
    llm: Any
    waiting: dict[str, _Request] = field(default_factory=dict)
    polling: bool = False
    changed: anyio.Event = field(default_factory=anyio.Event)


@dataclass(eq=False)
class BatchQueue:
    """One task's requests not yet sent, and what its runner tells about its rows."""

    task: str
    limit: int = BATCH_ROWS_IN_FLIGHT
    pending: dict[str, _Request] = field(default_factory=dict)
    pending_bytes: int = 0
    counted: bool = False
    """A runner counts the task's rows in flight (``active``); generator tasks have none."""
    active: int = 0
    """Rows the task's runner has in flight."""
    waiting: int = 0
    """Calls waiting on batches (sent or not)."""
    input_ended: bool = False
    sending: int = 0
    """Batches of this queue being submitted (waiting their turn, or on the wire)."""
    arrivals: int = 0
    flushed: anyio.Event = field(default_factory=anyio.Event)
    """Set (and replaced) when the queue submits a batch or its input ends."""
    llm: Any = None

    def wake(self) -> None:
        self.flushed.set()
        self.flushed = anyio.Event()

    def blocked(self) -> bool:
        """Every row in flight waits on this queue: nothing else will add to it soon."""
        return self.waiting >= self.active

    def final(self) -> bool:
        """Nothing more can arrive until some batch answers."""
        return self.blocked() and (self.input_ended or self.active >= self.limit)

    def settled(self) -> bool:
        """Nothing is left to send, and nothing more will come soon: a run that doesn't wait
        may end. (Without a runner counting rows, what was sent after lingering is all.)"""
        return not self.pending and not self.sending and (self.final() or not self.counted)


# -- the manager ------------------------------------------------------------------------------


class OfflineBatches:
    """A run's offline batches. Owned by the run's ``LLMCalls``; see the module docstring.

    ``price`` gives an LLM's batch price (or None), ``budget_refusal`` says why an estimated
    (cost, tokens) would break the budget (or None when it fits), ``on_exhausted`` stops
    the run's sources, and ``store`` files a batch's answers in the response cache (all of
    them, in one transaction, before the batch is marked collected: a run that ends before its
    rows are saved finds them there, and pays for nothing twice).
    """

    def __init__(
        self,
        run_dir: Path,
        *,
        price: Callable[[LLM], tuple[float, float] | None],
        budget_refusal: Callable[[float | None, int], str | None],
        on_exhausted: Callable[[str], None] | None,
        store: Callable[[list[tuple[list[str], GenerateOutput]]], None],
    ) -> None:
        self.run_dir = run_dir
        self._price = price
        self._budget_refusal = budget_refusal
        self._on_exhausted = on_exhausted
        self._store = store
        self._queues: dict[str, BatchQueue] = {}
        self._requests: dict[str, _Request] = {}  # this run's, by custom id
        self._open: dict[str, _OpenBatch] = {}  # by batch id
        self._resumable: dict[str, BatchRecord] = {}  # custom id -> a batch not yet collected
        self._intents: list[BatchRecord] = []  # submissions an earlier run didn't see answered
        self._known_ids: set[str] = set()
        self._unchecked: dict[str, LLMError] = {}
        """Custom id -> why an intent holding it couldn't be looked up: not sent this run."""
        for record in load_records(run_dir):
            if not record.batch_id:
                self._intents.append(record)
                continue
            self._known_ids.add(record.batch_id)
            if not record.collected:
                for custom_id in record.requests:
                    self._resumable[custom_id] = record
        self._submitting = anyio.Lock()
        self._busy = 0  # pollers looking at a batch or collecting it
        self._idle = anyio.Event()
        self.reserved_cost = 0.0
        self.reserved_tokens = 0
        """Estimates of the batches in flight, which the budget must still have room for."""

    def queue(self, task: str, limit: int | None = None) -> BatchQueue:
        """The queue of ``task``'s requests; a runner that counts its rows passes its
        ``limit`` of rows in flight."""
        if task not in self._queues:
            self._queues[task] = BatchQueue(task)
        queue = self._queues[task]
        if limit is not None:
            queue.limit, queue.counted = limit, True
        return queue

    # -- what the runner tells -----------------------------------------------------------------

    async def row_done(self, queue: BatchQueue) -> None:
        queue.active -= 1
        await self._flush_if_blocked(queue)

    async def input_ended(self, queue: BatchQueue) -> None:
        queue.input_ended = True
        await self._flush_if_blocked(queue)
        queue.wake()

    # -- a call ------------------------------------------------------------------------------

    async def answer(
        self, llm: Any, task: str, messages: ChatType, keys: list[str]
    ) -> GenerateOutput:
        """The generations of ``messages`` that ``keys`` name (their cache keys, which are
        also the requests' ids), answered through batches. Raises the row's failure
        (``LLMBatchRequestError``), ``BudgetExceeded`` when its batch would pass the budget, or
        ``BatchesInProgress`` (see the module docstring)."""
        queue = self.queue(task)
        queue.llm = llm
        if self._intents:  # only after a run died while submitting
            await self._resolve_intents(llm)
        units = [keys] if llm.supports_n or len(keys) == 1 else [[key] for key in keys]
        requests = [self._request_for(llm, queue, messages, unit) for unit in units]
        queue.waiting += 1
        queue.arrivals += 1
        try:
            await self._after_arrival(queue)
            for request in requests:
                await self._wait(request, queue)
        finally:
            queue.waiting -= 1
        outputs: list[GenerateOutput] = []
        for request in requests:
            if isinstance(request.outcome, BaseException):
                raise request.outcome
            assert request.outcome is not None
            outputs.append(request.outcome)
        return _combined(outputs)

    def _request_for(
        self, llm: Any, queue: BatchQueue, messages: ChatType, keys: list[str]
    ) -> _Request:
        custom_id = keys[0]
        known = self._requests.get(custom_id)
        if known is not None:  # asked already in this run (rows sharing a prompt)
            return known
        path, payload = llm.build_request(messages, len(keys))
        request = _Request(custom_id, keys, b"", *self._estimate(llm, messages, len(keys)))
        self._requests[custom_id] = request
        if self._unchecked and custom_id in self._unchecked:
            request.settle(self._unchecked[custom_id])
            return request
        record = self._resumable.get(custom_id)
        if record is not None:  # sent by an earlier run: wait for that batch
            batch = self._open.get(record.batch_id)
            if batch is None:
                batch = _OpenBatch(record, llm.offline_batch_wire(), llm)
                self._open[record.batch_id] = batch
                self.reserved_cost += record.estimated_cost or 0.0
                self.reserved_tokens += record.estimated_tokens
            batch.waiting[custom_id] = request
            request.batch = batch
            return request
        request.line = llm.offline_batch_wire().line(custom_id, path, payload)
        request.queue = queue
        queue.pending[custom_id] = request
        queue.pending_bytes += len(request.line) + 1
        return request

    def _estimate(self, llm: Any, messages: ChatType, n: int) -> tuple[int, float | None]:
        kwargs = llm.generation_kwargs
        max_out = kwargs.get("max_new_tokens") or kwargs.get("max_tokens")
        output_tokens = int(max_out or DEFAULT_MAX_NEW_TOKENS) * n
        input_tokens = sum(len(str(m.get("content", ""))) for m in messages) // 4
        price = self._price(llm)
        cost = None
        if price is not None:
            cost = (input_tokens * price[0] + output_tokens * price[1]) / 1_000_000
        return input_tokens + output_tokens, cost

    async def _after_arrival(self, queue: BatchQueue) -> None:
        wire_limits = _limits(queue.llm)
        while len(queue.pending) >= wire_limits[0] or queue.pending_bytes >= wire_limits[1]:
            await self._flush(queue)
        if not queue.pending or not queue.blocked():
            return
        if queue.counted and queue.final():
            await self._flush_if_blocked(queue)
            return
        # Rows may still be arriving from a slow upstream: submit only once none came for a
        # while (each arrival restarts the wait; the last one submits).
        mine = queue.arrivals
        flushed = queue.flushed
        with anyio.move_on_after(LINGER_SECONDS):
            await flushed.wait()  # submitted meanwhile (its input ended): stop lingering
        if queue.arrivals == mine:
            await self._flush_if_blocked(queue, linger_done=True)

    async def _flush_if_blocked(self, queue: BatchQueue, *, linger_done: bool = False) -> None:
        while queue.pending and (queue.final() or (linger_done and queue.blocked())):
            await self._flush(queue)

    async def _wait(self, request: _Request, queue: BatchQueue) -> None:
        while not request.done.is_set():
            batch = request.batch
            if batch is None:  # not sent yet: wait for its queue's next submission
                flushed = (request.queue or queue).flushed
                await flushed.wait()
                continue
            if batch.polling:
                changed = batch.changed
                await changed.wait()
                continue
            batch.polling = True
            try:
                await self._poll(batch, queue)
            finally:
                batch.polling = False
                batch.changed.set()
                batch.changed = anyio.Event()

    # -- submitting ---------------------------------------------------------------------------

    async def _resolve_intents(self, llm: Any) -> None:
        """Find out whether the batches the intents of ``llm``'s endpoint stand for were
        created: adopt those that were (their requests then wait for them), drop the others
        (their requests are sent again)."""

        def mine() -> list[BatchRecord]:
            endpoint = (llm.provider, llm.endpoint)
            return [r for r in self._intents if (r.provider, r.endpoint) == endpoint]

        if not mine():  # another endpoint's: no lock, which a submission may hold a while
            return
        async with self._submitting:
            wire = llm.offline_batch_wire()
            # Each intent leaves the list only once resolved: until then, rows of this LLM wait
            # on the lock rather than send requests it may hold.
            for record in mine():  # none left if another row resolved them meanwhile
                try:
                    candidates = await call_with_retries(
                        functools.partial(
                            wire.find,
                            record.local_id,
                            record.submitted_at - CLOCK_SLACK_SECONDS,
                            len(record.requests),
                        ),
                        max_attempts=llm.max_retries + 1,
                        base_delay=llm.retry_backoff,
                    )
                except LLMError as exc:  # sending its requests could pay for them twice
                    why = LLMError(
                        f"could not look for the offline batch {record.local_id} that an earlier "
                        f"run was submitting ({exc}); run again to look again"
                    )
                    self._unchecked.update(dict.fromkeys(record.requests, why))
                    self._intents.remove(record)
                    continue
                self._intents.remove(record)
                found = next((c for c in candidates if c[0] not in self._known_ids), None)
                if found is None:
                    drop_record(self.run_dir, record)
                    continue
                batch_id, status = found
                record.batch_id, record.status, record.counts = (
                    batch_id,
                    status.status,
                    status.counts,
                )
                record.files = status.files
                save_record(self.run_dir, record)
                self._known_ids.add(batch_id)
                for custom_id in record.requests:
                    self._resumable[custom_id] = record

    async def _flush(self, queue: BatchQueue) -> None:
        """Submit the queue's pending requests, up to one batch's limits."""
        llm = queue.llm
        max_requests, max_bytes = _limits(llm)
        chosen: list[_Request] = []
        size = 0
        for request in list(queue.pending.values()):
            if chosen and (len(chosen) >= max_requests or size + len(request.line) + 1 > max_bytes):
                break
            chosen.append(request)
            size += len(request.line) + 1
        for request in chosen:
            del queue.pending[request.custom_id]
        queue.pending_bytes -= size
        queue.sending += 1
        try:
            await self._submit(llm, queue, chosen)
        finally:
            queue.sending -= 1
            queue.wake()

    async def _submit(self, llm: Any, queue: BatchQueue, requests: list[_Request]) -> None:
        if not requests:
            return
        costs = [r.estimated_cost for r in requests]
        cost = None if any(c is None for c in costs) else sum(c or 0.0 for c in costs)
        tokens = sum(r.estimated_tokens for r in requests)
        refusal = self._budget_refusal(
            None if cost is None else self.reserved_cost + cost, self.reserved_tokens + tokens
        )
        if refusal is not None:
            if self._on_exhausted is not None:
                self._on_exhausted(refusal)
            for request in requests:
                request.settle(BudgetExceeded(refusal))
            return
        wire = llm.offline_batch_wire()
        record = BatchRecord(
            local_id=f"{_safe(queue.task)}-{uuid.uuid4().hex[:12]}",
            task=queue.task,
            provider=llm.provider,
            endpoint=llm.endpoint,
            model=llm.model,
            batch_id="",
            requests={r.custom_id: r.keys for r in requests},
            status="submitting",
            submitted_at=time.time(),
            estimated_cost=cost,
            estimated_tokens=tokens,
        )
        # One submission at a time, each announced by its intent before it is sent: a run
        # that dies in between leaves one intent, which the next run matches unambiguously.
        async with self._submitting:
            save_record(self.run_dir, record)
            try:
                batch_id, status = await _submit_once(
                    wire, [r.line for r in requests], {"synthflow_batch": record.local_id}
                )
            except LLMError as exc:
                if not isinstance(exc.__cause__, (LLMTimeoutError, LLMConnectionError)):
                    drop_record(self.run_dir, record)  # refused: it doesn't exist
                # else it may exist: the intent stays, and the next run looks for it
                for request in requests:
                    request.settle(exc)
                return
            record.batch_id, record.status, record.counts = (
                batch_id,
                status.status,
                status.counts,
            )
            record.files = status.files
            save_record(self.run_dir, record)  # the moment it exists: a re-run must find it
            self._known_ids.add(batch_id)
        self.reserved_cost += cost or 0.0
        self.reserved_tokens += tokens
        batch = _OpenBatch(record, wire, llm, {r.custom_id: r for r in requests})
        self._open[batch_id] = batch
        for request in requests:
            request.batch = batch

    # -- polling and collecting ---------------------------------------------------------------

    async def _poll(self, batch: _OpenBatch, queue: BatchQueue) -> None:
        llm = batch.llm
        interval = llm.offline_batch_generation_block_until_done
        record = batch.record
        while True:
            self._busy += 1
            try:
                status = await call_with_retries(
                    lambda: batch.wire.retrieve(record.batch_id),
                    max_attempts=llm.max_retries + 1,
                    base_delay=llm.retry_backoff,
                )
                if (status.status, status.counts, status.ended) != (
                    record.status,
                    record.counts,
                    record.ended,
                ):
                    record.status, record.counts, record.ended = (
                        status.status,
                        status.counts,
                        status.ended,
                    )
                    record.files = {**record.files, **status.files}
                    save_record(self.run_dir, record)
                if status.ended:
                    await self._collect(batch, status)
                    return
            finally:
                self._busy -= 1
                if not self._busy:
                    self._idle.set()
                    self._idle = anyio.Event()
            if interval is None:
                if queue.settled():
                    # Let the other batches being looked at be collected first (their
                    # answers go to the cache), then end the run.
                    while self._busy:
                        idle = self._idle
                        await idle.wait()
                    raise BatchesInProgress(self.in_progress_message())
                flushed = queue.flushed  # rows still arriving: look again once they are in
                with anyio.move_on_after(LINGER_SECONDS):
                    await flushed.wait()
            else:
                await anyio.sleep(interval)

    async def _collect(self, batch: _OpenBatch, status: BatchStatus) -> None:
        llm = batch.llm
        record = batch.record
        results = await call_with_retries(
            lambda: batch.wire.results(status),
            max_attempts=llm.max_retries + 1,
            base_delay=llm.retry_backoff,
        )
        seen: set[str] = set()
        outcomes: list[tuple[str, GenerateOutput | LLMError]] = []
        for line in results:
            if line.custom_id not in record.requests or line.custom_id in seen:
                continue
            seen.add(line.custom_id)
            outcomes.append((line.custom_id, self._outcome(llm, record, line)))
        # Every answer into the cache first: if the run ends before the rows that asked are
        # saved, the next run finds their answers there.
        self._store(
            [
                (record.requests[cid], out)
                for cid, out in outcomes
                if isinstance(out, GenerateOutput)
            ]
        )
        for custom_id, outcome in outcomes:
            request = batch.waiting.get(custom_id)
            if request is not None:
                request.settle(outcome)
        why = status.problem or f"the batch ended as {status.status!r} without it"
        for custom_id, request in batch.waiting.items():
            if custom_id not in seen:
                request.settle(LLMBatchRequestError(f"batch {record.batch_id}: no result ({why})"))
        record.collected = True
        save_record(self.run_dir, record)
        self.reserved_cost -= record.estimated_cost or 0.0
        self.reserved_tokens -= record.estimated_tokens
        for custom_id in record.requests:
            self._resumable.pop(custom_id, None)

    def _outcome(
        self, llm: Any, record: BatchRecord, line: LineResult
    ) -> GenerateOutput | LLMError:
        if line.error is not None:
            return LLMBatchRequestError(
                f"batch {record.batch_id} request {line.error}; running again sends it again"
            )
        try:
            output: GenerateOutput = llm.parse_response(line.body)
        except (KeyError, IndexError, TypeError, ValueError, AttributeError) as exc:
            return LLMResponseError(
                f"{type(llm).__name__} could not read a batch result: {type(exc).__name__}: {exc}"
            )
        if llm.include_raw:
            output.raw = line.body
        return output

    # -- what a stopped run says -------------------------------------------------------------

    def in_progress_message(self) -> str:
        unfinished = [b.record for b in self._open.values() if not b.record.collected]
        requests = sum(len(r.requests) for r in unfinished)
        tasks = sorted({r.task for r in unfinished})
        return (
            f"{len(unfinished)} offline batch{'es' if len(unfinished) != 1 else ''} "
            f"({requests} requests, {', '.join(tasks)}) in progress at the provider; run the "
            f"same command again to collect their results (their ids are in "
            f"{self.run_dir / 'batches'})"
        )


def cancel_batches(run_dir: Path | str, llm: Any) -> list[str]:
    """Ask the provider to cancel the batches of the run in ``run_dir`` that ``llm``'s
    endpoint holds and that haven't ended; return their ids. The next run collects what they
    answered before the cancel; their other requests fail their rows (and a run after that
    sends them again)."""
    from synthflow._sync import run_sync

    records = [
        r
        for r in load_records(Path(run_dir))
        if r.batch_id and not r.ended and r.provider == llm.provider and r.endpoint == llm.endpoint
    ]

    async def cancel_all() -> list[str]:
        wire = llm.offline_batch_wire()
        try:
            for record in records:
                status = await wire.cancel(record.batch_id)
                record.status, record.counts = status.status, status.counts
                save_record(Path(run_dir), record)
        finally:
            await llm.aclose()
        return [r.batch_id for r in records]

    return run_sync(cancel_all)


async def _submit_once(
    wire: BatchWire, lines: list[bytes], metadata: dict[str, str]
) -> tuple[str, BatchStatus]:
    """Submit, retrying only what the server refused (429, 5xx): after a timeout or a dropped
    connection the batch may exist, and sending it again could pay for it twice."""

    async def attempt() -> tuple[str, BatchStatus]:
        try:
            return await wire.submit(lines, metadata)
        except (LLMTimeoutError, LLMConnectionError) as exc:
            raise LLMError(
                f"submitting an offline batch failed ({exc}); it may have been created: "
                "running again looks for it at the provider before sending anything"
            ) from exc

    llm = getattr(wire, "llm", None)
    return await call_with_retries(
        attempt,
        max_attempts=(getattr(llm, "max_retries", 5)) + 1,
        base_delay=getattr(llm, "retry_backoff", 1.0),
    )


def _limits(llm: Any) -> tuple[int, int]:
    wire = llm.offline_batch_wire()
    return wire.max_requests, wire.max_bytes


def _safe(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_" else "_" for c in name)[:40] or "task"


def _combined(outputs: list[GenerateOutput]) -> GenerateOutput:
    if len(outputs) == 1:
        return outputs[0]
    combined = GenerateOutput(generations=[], usage=Usage())
    for output in outputs:
        combined.generations.extend(output.generations)
        combined.usage = combined.usage + output.usage
    raws = [o.raw for o in outputs]
    combined.raw = raws if any(r is not None for r in raws) else None
    return combined
