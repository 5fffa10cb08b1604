"""One runner per step kind: the coroutine that drives a step between its input and output.

- generators: number the rows they yield (that number is the row's lineage id) and send them;
- steps: cut the input into ``input_batch_size`` batches and call ``process`` on each;
- tasks: start one LLM call per row, up to ``concurrency`` at once, across batches;
- global steps: buffer every input row (spilling to disk), call ``process`` once, and send
  each batch it yields as it comes.

Concurrent work goes through ``_concurrent``: a task's rows through ``unordered_map`` (each row
sent on when its call finishes), batches on threads or processes through ``ordered_map``.
"""

from __future__ import annotations

import contextlib
import inspect
import time
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, NoReturn

import anyio

from synthflow.errors import (
    BatchesInProgress,
    BudgetExceeded,
    DiskFullError,
    LLMError,
    StepError,
    WorkerDiedError,
)
from synthflow.models.callpath.batches import BATCH_ROWS_IN_FLIGHT, uses_offline_batches
from synthflow.models.callpath.calls import CallsUser, LLMCalls
from synthflow.pipeline._columns import ColumnMappings
from synthflow.pipeline._concurrent import ordered_map, unordered_map
from synthflow.pipeline._execution import (
    StepProcessPool,
    call_in_thread,
    call_on_loop,
)
from synthflow.pipeline._failures import FailureRecord, RowFailure, failure_of
from synthflow.pipeline._shards import Shard
from synthflow.pipeline._spill import RowBuffer
from synthflow.pipeline._streams import END, Inlet, Joined, Outlet
from synthflow.pipeline.stats import StepStats
from synthflow.steps.base import (
    FAILED,
    ROW_ID,
    GeneratorStep,
    GlobalStep,
    Row,
    Step,
    _Step,
    batch_rows,
    merge_rows,
    settle_failures,
)
from synthflow.steps.tasks.base import ERROR_COLUMN, Task


class RunControl:
    """Run-wide signals. ``stop`` asks the sources to stop producing (budget reached): rows
    already in the pipeline finish, and the run ends with what it has."""

    def __init__(self) -> None:
        self.stop_reason: str | None = None

    def stop(self, reason: str) -> None:
        if self.stop_reason is None:
            self.stop_reason = reason


@dataclass
class StepContext:
    """What a runner needs besides the step: where rows come from and go, and its counters."""

    step: _Step
    outlet: Outlet
    stats: StepStats
    control: RunControl
    offset: int = 0
    """Rows the sources skip: a resumed run starts after what an interrupted one wrote."""
    inlet: Inlet | None = None
    separate_inputs: bool = False
    pool: StepProcessPool | None = None
    spill_dir: Any = None
    thread_limiter: anyio.CapacityLimiter | None = None
    owners: dict[str, int] | None = None
    """For a step that merges its branches' rows: the branch each written column comes from."""
    shard: Shard | None = None
    """In a sharded run, the rows this engine owns: a source passes on only those."""
    failures: FailureRecord | None = None
    """Where the rows that fail in this step are recorded (the run's failure record)."""
    only_ids: frozenset[int] | None = None
    """For a source: send only the rows of these ids (a run that retries failed rows)."""
    thread_calls: LLMCalls | None = None
    """The run's calls, for a step that makes its model calls from worker threads
    (``executor="thread"``): it reaches them through ``ThreadCalls`` while it runs."""

    def __post_init__(self) -> None:
        self.mappings = ColumnMappings.of(self.step)
        self.inputs = self.step.mapped_inputs()
        self.outputs = self.step.mapped_outputs()
        self.failed_outputs = self.step.outputs_on_failure()
        # What a row that failed upstream gets from a step it passes untouched: what a row
        # that fails in it gets (null; a task's model name), but the columns the step reads
        # keep what the row holds.
        self.passed_outputs = {c: v for c, v in self.failed_outputs.items() if c not in self.inputs}
        # A step that calls a model is never sent a row that failed upstream (no paid call for
        # a missing input); any other step shapes it like every row (see _through_after_failure).
        self.skips_failed_rows = isinstance(self.step, CallsUser)
        self.record = self._record if self.failures is not None else None

    def _record(self, row: Row, marker: Any) -> None:
        assert self.failures is not None
        self.failures.record(self.step.name, row, failure_of(marker))

    def enter(self, rows: Sequence[Row]) -> None:
        if self.mappings is not None:
            self.mappings.enter(rows)

    def leave(self, rows: Sequence[Row]) -> None:
        if self.mappings is not None:
            self.mappings.leave(rows)


# -- errors ------------------------------------------------------------------------------------


def _error_text(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"


def _raise_failed(
    step: _Step,
    rows: Sequence[Row],
    cause: BaseException | str,
    record: Callable[[Row, Any], None] | None = None,
) -> NoReturn:
    if record is not None and isinstance(cause, BaseException):
        for row in rows:
            record(row, RowFailure.of(cause))
    first = rows[0].get(ROW_ID) if rows else None
    where = f"row {first}" if len(rows) == 1 else f"a batch of {len(rows)} rows from {first}"
    text = cause if isinstance(cause, str) else _error_text(cause)
    error = StepError(f"step {step.name!r} failed on {where}: {text}", step=step.name, row_id=first)
    if isinstance(cause, BaseException):
        raise error from cause
    raise error


def _fail(
    ctx: StepContext,
    rows: list[Row],
    exc: BaseException,
    *,
    attempts: int | None = None,
    request: Any = None,
) -> list[Row]:
    """Apply the step's error policy to ``rows`` (back under their own column names), which
    failed with ``exc`` (after ``attempts`` calls that held them; ``request``: what was sent
    for a single row)."""
    if ctx.step.on_error == "fail":
        _raise_failed(ctx.step, rows, exc, ctx.record)
    for row in rows:
        row[FAILED] = RowFailure.of(exc, request=request, attempts=attempts)
    return _settle(ctx, rows)


def _settle(ctx: StepContext, rows: list[Row]) -> list[Row]:
    """Apply the step's error policy to the rows it marked as failed; each is counted once,
    here, in the step where it failed, and recorded in the run's failure record."""
    kept, failed = settle_failures(ctx.step, rows, ctx.failed_outputs, ctx.record)
    ctx.stats.errors += failed
    return kept


def _failed_upstream(ctx: StepContext, row: Row) -> bool:
    """A row that failed in an earlier step and lacks an input this step needs. It keeps its
    first error: a step that calls a model passes it untouched, any other step processes it
    on its own (``_through_after_failure``)."""
    return row.get(ERROR_COLUMN) is not None and any(row.get(c) is None for c in ctx.inputs)


def _pass_through(ctx: StepContext, rows: list[Row]) -> list[Row]:
    """``rows`` (failed upstream) past this step: its outputs as on a failure, nothing else."""
    for row in rows:
        row.update(ctx.passed_outputs)
    return rows


async def _through_after_failure(ctx: StepContext, rows: list[Row]) -> list[Row]:
    """Rows that failed upstream through a step that calls no model, as any row goes, so that
    a column step (``KeepColumns``, a rename, a format) shapes them as it shapes the others
    and the dataset keeps one set of columns. Where the step raises on one (an input it can't
    take null), or marks it failed, that row passes the step untouched with its first error,
    whatever the step's ``on_error``: the error it would add is only the first one's echo."""
    if not rows:
        return rows
    originals = [dict(row) for row in rows]
    ctx.enter(rows)
    try:
        out = await _call_process(ctx, "process", (rows,))
    except (BudgetExceeded, DiskFullError, BatchesInProgress):
        raise
    except Exception:
        if len(originals) == 1 or not ctx.step.isolate_failures:
            return _pass_through(ctx, originals)
        half = len(originals) // 2
        return [
            *await _through_after_failure(ctx, originals[:half]),
            *await _through_after_failure(ctx, originals[half:]),
        ]
    ctx.leave(out)
    ctx.stats.filtered += max(len(rows) - len(out), 0)
    for row in out:
        if row.pop(FAILED, None) is not None:
            row.update(ctx.passed_outputs)
    return out


def _merge_joined(ctx: StepContext, rows: list[Joined]) -> list[Row]:
    return [merge_rows(parts, ctx.owners) for parts in rows]


def _fix_lineage(rows: list[Row], fallback: int) -> list[Row]:
    """Give new rows an id and restore id order, which a step may have shuffled."""
    for row in rows:
        if ROW_ID not in row:
            row[ROW_ID] = fallback
    rows.sort(key=_row_id)  # linear when already sorted, as it nearly always is
    return rows


def _row_id(row: Row) -> int:
    rid: int = row[ROW_ID]
    return rid


# -- runners ----------------------------------------------------------------------------------


async def run_generator(ctx: StepContext) -> None:
    step = ctx.step
    assert isinstance(step, GeneratorStep)
    wanted = _wanted_rows(ctx)
    made_by_id = wanted is not None and step.makes_rows_by_id and ctx.pool is None
    if ctx.shard is not None and isinstance(step, Task) and not made_by_id:
        # Its rows cost LLM calls to make, and it can't make only some of them: rather than
        # make them everywhere and keep a part, the first shard makes them all.
        if ctx.shard.index != 0:
            return
        ctx.shard = None
    if ctx.pool is not None:  # process() runs in the step's worker; batches come a few at a time
        batches = ctx.pool.generate(ctx.offset, rows_per_call=4 * step.batch_size)
        async with contextlib.aclosing(batches):
            await _send_generated(ctx, batches)
        return
    # A source that makes rows by id makes only the wanted ones: nothing to number or drop.
    result: Any = (
        step.process(ctx.offset, wanted=wanted) if made_by_id else step.process(ctx.offset)
    )
    # Close the user's generator whatever happens (trio's lesson: an async generator left to
    # the garbage collector runs its cleanup in the wrong context, or never).
    if hasattr(result, "__anext__"):
        async with contextlib.aclosing(result):
            await _send_generated(ctx, result, made_by_id=made_by_id)
    else:
        try:
            await _send_generated(ctx, _iterate_sync(result, ctx), made_by_id=made_by_id)
        finally:
            if hasattr(result, "close"):
                result.close()


async def _send_generated(
    ctx: StepContext, batches: AsyncIterator[Any], *, made_by_id: bool = False
) -> None:
    """Number the rows of ``batches``, keep the wanted ones and send them; with
    ``made_by_id``, the source made only the wanted rows, and each carries its id."""
    next_id = ctx.offset
    only = None if made_by_id else ctx.only_ids
    last_wanted = max(only, default=-1) if only is not None else None
    wanted = None if made_by_id else _wanted_rows(ctx)
    numbered = ctx.step.numbers_rows and not made_by_id  # type: ignore[attr-defined]
    async for batch in batches:
        if ctx.control.stop_reason is not None:
            return
        if last_wanted is not None and next_id > last_wanted:
            return  # a retry of failed rows: every row it wants has been sent
        start = time.perf_counter()
        rows = batch_rows(batch)
        if not numbered:
            next_id = rows[-1][ROW_ID] + 1 if rows else next_id
        else:
            for row in rows:
                row[ROW_ID] = next_id
                next_id += 1
        if wanted is not None:
            rows = [row for row in rows if wanted(row[ROW_ID])]
        ctx.leave(rows)
        rows = _settle(ctx, rows)  # a generator task marks the rows whose answer failed
        ctx.stats.busy_seconds += time.perf_counter() - start
        ctx.stats.batches += 1
        await ctx.outlet.send(rows, next_id - 1)


def _wanted_rows(ctx: StepContext) -> Callable[[int], bool] | None:
    """Which of its rows a source sends on: in a sharded run, the shard's; in a retry of failed
    rows, those; None for all."""
    shard, only = ctx.shard, ctx.only_ids
    if shard is None:
        return None if only is None else only.__contains__
    if only is None:
        return shard.owns
    return lambda row_id: row_id in only and shard.owns(row_id)


async def _iterate_sync(iterator: Any, ctx: StepContext) -> AsyncIterator[Any]:
    sentinel = object()
    it = iter(iterator)
    while True:
        if ctx.step.executor == "thread":
            batch = await anyio.to_thread.run_sync(next, it, sentinel)
        else:
            batch = next(it, sentinel)
        if batch is sentinel:
            return
        yield batch


async def _batches(ctx: StepContext, size: int) -> AsyncIterator[tuple[list[Any], int]]:
    """Re-cut the input into batches of ``size``; each comes with the watermark after it."""
    assert ctx.inlet is not None
    pending: list[Any] = []
    async for rows, upto in ctx.inlet:
        ctx.stats.rows_in += len(rows)
        pending.extend(rows)
        # Flush a partial batch rather than wait for more input: holding rows back while idle
        # would stall a downstream join (and delay the rows for no gain).
        while len(pending) >= size or (pending and ctx.inlet.idle()):
            batch, pending = pending[:size], pending[size:]
            yield batch, (_lead_id(pending[0]) - 1) if pending else upto
        if not rows:
            yield [], upto  # carry the watermark past rows filtered upstream
    if pending:
        yield pending, _lead_id(pending[-1])


def _lead_id(item: Row | Joined) -> int:
    if isinstance(item, tuple):  # a joined row: its first part that is there
        return _row_id(next(part for part in item if part is not None))
    return _row_id(item)


async def _call_process(ctx: StepContext, method: str, args: tuple[Any, ...]) -> list[Row]:
    step = ctx.step
    if ctx.pool is not None:
        return await ctx.pool.call(method, args)
    fn = getattr(step, method)
    if ctx.thread_limiter is not None:
        return await call_in_thread(fn, args, ctx.thread_limiter)
    return await call_on_loop(fn, args)


async def _process_batch(ctx: StepContext, batch: list[Any]) -> list[Row]:
    if not batch:
        return []
    fallback = _lead_id(batch[-1])
    passed: list[Row] = []
    if not ctx.separate_inputs and isinstance(batch[0], tuple):
        batch = _merge_joined(ctx, batch)
    if not ctx.separate_inputs and ctx.inputs:
        passed = [row for row in batch if _failed_upstream(ctx, row)]
        if passed:
            batch = [row for row in batch if not _failed_upstream(ctx, row)]
    start = time.perf_counter()
    try:
        rows = []
        for part in _by_branches_present(ctx, batch):
            rows += await _process_isolating(ctx, part)
    finally:
        ctx.stats.busy_seconds += time.perf_counter() - start
        ctx.stats.batches += 1
    if passed:
        skip = ctx.skips_failed_rows
        passed = _pass_through(ctx, passed) if skip else await _through_after_failure(ctx, passed)
    return _fix_lineage(_settle(ctx, rows) + passed, fallback)


def _by_branches_present(ctx: StepContext, batch: list[Any]) -> list[list[Any]]:
    """The batch, cut where the set of branches its joined rows took changes, each run with
    only those branches: a step that takes its inputs apart, after routed branches, gets one
    batch per branch that took the rows (distilabel's convergence step)."""
    if not batch:
        return []
    if not (ctx.separate_inputs and ctx.inlet is not None and ctx.inlet.optional):
        return [batch]
    runs: list[list[Any]] = []
    last: tuple[bool, ...] | None = None
    for item in batch:
        present = tuple(part is not None for part in item)
        if present != last:
            runs.append([])
            last = present
        runs[-1].append(tuple(part for part in item if part is not None))
    return runs


async def _process_isolating(ctx: StepContext, batch: list[Any], tries: int = 1) -> list[Row]:
    """``process`` on ``batch``; when it raises, the error policy applies to the rows that
    fail, never to their neighbours: the batch is run again in halves until each failing row
    is alone (about log2(batch) more calls per failing row; ``isolate_failures=False`` turns
    it off for steps with side effects, and the policy then applies to the whole batch)."""
    step = ctx.step
    isolate = step.on_error != "fail" and step.isolate_failures and len(batch) > 1
    originals = [_copy_item(item) for item in batch] if step.on_error != "fail" else None
    inputs = _step_inputs(ctx, batch)
    for part in inputs:
        ctx.enter(part)
    method = "process_rows" if isinstance(step, Task) else "process"
    args: tuple[Any, ...] = (inputs[0],) if isinstance(step, Task) else tuple(inputs)
    try:
        rows = await _call_process(ctx, method, args)
    except BudgetExceeded:
        return []  # the run is winding down: rows not yet made are left out, as in a task
    except (DiskFullError, BatchesInProgress):
        raise
    except Exception as exc:
        if isinstance(exc, LLMError) and exc.fatal:  # no row can succeed: don't retry halves
            raise StepError(
                f"step {step.name!r} failed: {_error_text(exc)}", step=step.name
            ) from exc
        if originals is None:
            ctx.leave(inputs[0])
            _raise_failed(step, inputs[0], exc, ctx.record)
        if isinstance(exc, WorkerDiedError):  # ran twice already; halves would respawn often
            return _fail(ctx, _step_inputs(ctx, originals)[0], exc, attempts=2)
        if not isolate:
            return _fail(ctx, _step_inputs(ctx, originals)[0], exc, attempts=tries)
        half = len(originals) // 2
        return [
            *await _process_isolating(ctx, originals[:half], tries + 1),
            *await _process_isolating(ctx, originals[half:], tries + 1),
        ]
    ctx.leave(rows)
    # Counted here, where the call succeeded: rows it failed stay in ``rows``, marked.
    ctx.stats.filtered += max(len(batch) - len(rows), 0)
    return rows


def _step_inputs(ctx: StepContext, batch: list[Any]) -> list[list[Row]]:
    """The arguments of ``process``: one batch per predecessor when the step takes them apart,
    otherwise one batch of rows."""
    if ctx.separate_inputs and isinstance(batch[0], tuple):
        return [list(parts) for parts in zip(*batch, strict=True)]
    return [batch]


def _copy_item(item: Row | Joined) -> Any:
    if isinstance(item, tuple):
        return tuple(None if part is None else dict(part) for part in item)
    return dict(item)


async def run_step(ctx: StepContext) -> None:
    step = ctx.step
    assert isinstance(step, Step)
    batches = _batches(ctx, step.input_batch_size)
    if ctx.pool is None and ctx.thread_limiter is None:
        # On the loop one batch runs at a time: call it inline, no slots or tasks needed.
        async for batch, upto in batches:
            await ctx.outlet.send(await _process_batch(ctx, batch), upto)
        return

    async def one_batch(batch: list[Any]) -> list[Row]:
        return await _process_batch(ctx, batch)

    async def as_items() -> AsyncIterator[tuple[list[list[Any]], int]]:
        async for batch, upto in batches:
            yield ([batch] if batch else []), upto

    await ordered_map(
        as_items(), one_batch, ctx.outlet, ctx.stats, limit=step.workers, window=2 * step.workers
    )


async def run_task(ctx: StepContext) -> None:
    task = ctx.step
    assert isinstance(task, Task) and ctx.inlet is not None
    if ctx.pool is not None or ctx.thread_limiter is not None:
        await run_step(ctx)  # local models: whole batches go to the workers
        return

    async def rows_in() -> AsyncIterator[tuple[list[Row], int]]:
        assert ctx.inlet is not None
        async for items, upto in ctx.inlet:
            ctx.stats.rows_in += len(items)
            rows = [
                merge_rows(item, ctx.owners) if isinstance(item, tuple) else item for item in items
            ]
            yield rows, upto

    async def one_row(row: Row) -> list[Row]:
        if _failed_upstream(ctx, row):
            return _pass_through(ctx, [row])
        ctx.enter([row])
        try:
            rows = await task.process_row(row)
        except BudgetExceeded:
            return []  # the run is winding down: rows not yet generated are left out
        except (DiskFullError, BatchesInProgress):
            raise
        except LLMError as exc:
            if exc.fatal:  # no row of this run can succeed: stop with the cause
                raise StepError(
                    f"step {task.name!r} failed: {type(exc).__name__}: {exc}", step=task.name
                ) from exc
            request = task._sent(row)  # read while the row has the task's column names
            ctx.leave([row])
            return _fail(ctx, [row], exc, request=request)
        except Exception as exc:
            request = task._sent(row)
            ctx.leave([row])
            return _fail(ctx, [row], exc, request=request)
        ctx.leave(rows)
        if not rows:
            ctx.stats.filtered += 1
        return _settle(ctx, rows)

    limit = task.concurrency
    work = one_row
    source = rows_in()
    batches = task._calls.batches if isinstance(task._calls, LLMCalls) else None
    if batches is not None and uses_offline_batches(task.llm):
        # Offline batches: every row waits hours for its batch, so hold many; the queue
        # submits when all the rows in flight wait on it (see callpath.batches).
        limit = max(limit, BATCH_ROWS_IN_FLIGHT)
        queue = batches.queue(task.name, limit)

        async def batched_rows_in() -> AsyncIterator[tuple[list[Row], int]]:
            async for rows, upto in rows_in():
                yield rows, upto
            await batches.input_ended(queue)

        async def batched_row(row: Row) -> list[Row]:
            queue.active += 1
            try:
                return await one_row(row)
            finally:
                await batches.row_done(queue)

        work, source = batched_row, batched_rows_in()

    await unordered_map(
        source,
        work,
        ctx.outlet,
        ctx.stats,
        limit=limit,
        window=max(8 * limit, 1024),
        key=_row_id,
    )


async def run_global_step(ctx: StepContext) -> None:
    step = ctx.step
    assert isinstance(step, GlobalStep) and ctx.inlet is not None
    buffer = RowBuffer(step.spill_threshold, ctx.spill_dir)
    try:
        async for items, _upto in ctx.inlet:
            ctx.stats.rows_in += len(items)
            if items and isinstance(items[0], tuple):
                items = _merge_joined(ctx, items)
            ctx.enter(items)  # now, not later: rows on disk are not renamed in place
            buffer.extend(items)
        ctx.stats.spilled = buffer.spilled
        # Inside the try: a spilled input is read from its file while process() runs.
        await _send_global_output(ctx, buffer.contents())
    finally:
        buffer.close()


async def _send_global_output(ctx: StepContext, inputs: Sequence[Row]) -> None:
    """Send each batch ``process`` yields as it comes, so the output is never all in memory.

    Rows keep their lineage ids while they come out in id order (a filter, a dedup). From the
    first row that doesn't (a sort, or a new row), the rest are numbered on from the last id
    sent: they start a new lineage, and the ids stay increasing, as watermarks need.
    """
    step = ctx.step
    last_id = -1
    renumbering = False
    sent = False
    made = 0
    batches = _global_batches(ctx, inputs)
    try:
        while True:
            start = time.perf_counter()
            try:
                rows = await anext(batches, None)
            except Exception as exc:
                if sent or step.on_error == "fail" or not isinstance(inputs, list):
                    ctx.stats.errors += 1
                    raise StepError(
                        f"step {step.name!r} failed: {type(exc).__name__}: {exc}", step=step.name
                    ) from exc
                ctx.leave(inputs)
                await ctx.outlet.send(_fail(ctx, inputs, exc), END)
                return
            finally:
                ctx.stats.busy_seconds += time.perf_counter() - start
            if rows is None:
                ctx.stats.filtered += max(len(inputs) - made, 0)
                return
            ctx.stats.batches += 1
            made += len(rows)
            ctx.leave(rows)
            rows = _settle(ctx, rows)
            for row in rows:
                rid = row.get(ROW_ID, -1)
                renumbering = renumbering or rid <= last_id
                last_id = last_id + 1 if renumbering else rid
                row[ROW_ID] = last_id
            if rows:
                await ctx.outlet.send(rows, last_id)
                sent = True
    finally:
        await batches.aclose()


async def _global_batches(ctx: StepContext, inputs: Sequence[Row]) -> AsyncGenerator[list[Row]]:
    """The batches a global step's ``process(inputs)`` yields, one at a time."""
    step = ctx.step
    assert isinstance(step, GlobalStep)
    if ctx.pool is not None:  # a worker process answers with all of its output at once
        yield await ctx.pool.call("process", (inputs,))
        return
    if ctx.thread_limiter is not None:  # a plain function does its work in the call itself
        result: Any = await anyio.to_thread.run_sync(
            step.process, inputs, limiter=ctx.thread_limiter
        )
    else:
        result = step.process(inputs)
    if inspect.iscoroutine(result):
        result = await result
    if result is None:
        return
    if isinstance(result, list):  # one batch, returned rather than yielded
        yield result
    elif hasattr(result, "__anext__"):
        async with contextlib.aclosing(result):
            async for batch in result:
                yield batch_rows(batch)
    else:
        try:
            async for batch in _iterate_sync(result, ctx):
                yield batch_rows(batch)
        finally:
            if hasattr(result, "close"):
                result.close()


def runner_for(step: _Step) -> Callable[[StepContext], Awaitable[None]]:
    if isinstance(step, GeneratorStep):
        return run_generator
    if isinstance(step, GlobalStep):
        return run_global_step
    if isinstance(step, Task):
        return run_task
    return run_step
