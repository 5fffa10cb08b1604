"""The engine: runs a validated plan in one event loop.

Every step runs as one task in a single task group. Edges are bounded memory streams of
chunks, so a slow step fills its input queue and its producers wait: memory stays bounded by the
queue sizes, whatever the dataset's size. Each leaf feeds a writer that puts its rows on disk.

The first error cancels the task group; the error that caused it is re-raised on its own (not
wrapped in an ExceptionGroup), named after its step. Cancellation (Ctrl+C, a cancelled
``arun``) takes the same path, and the ``finally`` blocks shut process pools down hard, so no
worker outlives the run.
"""

from __future__ import annotations

import hashlib
import sys
import threading
from dataclasses import dataclass
from pathlib import Path

import anyio
import anyio.to_thread
import orjson
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

from synthflow.errors import StepError, first_error
from synthflow.llms.cache import ResponseCache
from synthflow.llms.calls import Budget, LLMCalls, LLMCallStats
from synthflow.llms.pricing import Price
from synthflow.pipeline._execution import StepProcessPool
from synthflow.pipeline._gc import collector_tuned_for_run, freeze_imported
from synthflow.pipeline._progress import Progress
from synthflow.pipeline._runners import RunControl, StepContext, runner_for
from synthflow.pipeline._sink import LeafWriter
from synthflow.pipeline._streams import Chunk, Inlet, Outlet, Reorder
from synthflow.pipeline._validate import Plan
from synthflow.pipeline.stats import StepStats
from synthflow.runtime_parameters import runtime_parameters_info
from synthflow.steps.base import GlobalStep, _Step, takes_separate_inputs
from synthflow.steps.tasks.base import Task

COMPLETE_MARKER = "COMPLETE"
PARAMETERS_FILE = "parameters.sha256"
"""The fingerprint of the runtime parameters of the run in progress (or interrupted)."""
QUEUE_CHUNKS = 8
"""Chunks an edge holds before its producer waits (a chunk is at most a batch of rows)."""


@dataclass
class RunOptions:
    use_cache: bool = True
    max_cost: float | None = None
    max_tokens: int | None = None
    prices: dict[str, Price] | None = None


@dataclass
class RunOutput:
    leaf_files: dict[str, Path]
    stats: dict[str, StepStats]
    stop_reason: str | None = None
    resumed_rows: int = 0


def _runs_rows_unordered(step: _Step) -> bool:
    return isinstance(step, Task) and step.executor == "loop"


async def _prewarm_imports() -> None:
    """Import ``datasets`` and ``pyarrow`` (about half a second) in a thread while the run
    waits on I/O: the Distiset needs them at the end. Started a moment after the steps, so the
    import's hold on the GIL doesn't delay the first wave of LLM requests."""
    if "datasets" in sys.modules:
        return
    await anyio.sleep(0.05)

    def work() -> None:
        import datasets  # noqa: F401 (imports pyarrow too)

        freeze_imported()

    threading.Thread(target=work, name="synthflow-prewarm", daemon=True).start()


def _llm_calls(plan: Plan, run_dir: Path, options: RunOptions, control: RunControl) -> LLMCalls:
    tasks = [s for s in plan.steps.values() if isinstance(s, Task)]
    cache = None
    if options.use_cache and any(t.use_cache and t.llm.cacheable for t in tasks):
        run_dir.mkdir(parents=True, exist_ok=True)
        cache = ResponseCache(run_dir / "llm-cache.sqlite")
    budget = None
    if options.max_cost is not None or options.max_tokens is not None:
        budget = Budget(max_cost=options.max_cost, max_tokens=options.max_tokens)
    return LLMCalls(cache, budget, options.prices, on_exhausted=control.stop)


async def execute(
    plan: Plan, run_dir: Path, progress: Progress, options: RunOptions | None = None
) -> RunOutput:
    with collector_tuned_for_run():
        return await _execute(plan, run_dir, progress, options or RunOptions())


async def _execute(plan: Plan, run_dir: Path, progress: Progress, options: RunOptions) -> RunOutput:
    control = RunControl()
    stats = {name: StepStats(name) for name in plan.steps}
    # Every stream, so a failed run can close the ones whose task was cancelled before it ran.
    streams: list[MemoryObjectSendStream[Chunk] | MemoryObjectReceiveStream[Chunk]] = []
    inputs: dict[str, list[MemoryObjectReceiveStream[Chunk]]] = {n: [] for n in plan.steps}
    outputs: dict[str, list[MemoryObjectSendStream[Chunk]]] = {n: [] for n in plan.steps}
    for name in plan.steps:
        for succ in plan.successors[name]:
            send, receive = anyio.create_memory_object_stream[Chunk](QUEUE_CHUNKS)
            streams += (send, receive)
            outputs[name].append(send)
            inputs[succ].append(receive)

    resume = _start_run_dir(plan, run_dir, options)
    writers: dict[str, LeafWriter] = {}
    sinks: list[tuple[LeafWriter, MemoryObjectReceiveStream[Chunk]]] = []
    for leaf in plan.leaves:
        send, receive = anyio.create_memory_object_stream[Chunk](QUEUE_CHUNKS)
        streams += (send, receive)
        outputs[leaf].append(send)
        writers[leaf] = LeafWriter(run_dir / "data" / leaf, resume=resume)
        sinks.append((writers[leaf], receive))
    # Every leaf holds the rows up to its own last id; sources restart after the smallest, and
    # each writer skips what it already has.
    offset = min(w.last_id for w in writers.values()) + 1
    if offset:
        print(f"[synthflow] resuming an interrupted run after row {offset - 1}", file=sys.stderr)

    calls = _llm_calls(plan, run_dir, options, control)
    contexts: list[StepContext] = []
    for name, step in plan.steps.items():
        if isinstance(step, Task):
            stats[name].llm = call_stats = LLMCallStats()
            step.bind_calls(calls, call_stats)
        contexts.append(
            StepContext(
                step=step,
                outlet=Outlet(outputs[name]),
                stats=stats[name],
                # An LLM task on the loop takes rows in any order; every other step, in order.
                inlet=Inlet(inputs[name], ordered=not _runs_rows_unordered(step))
                if inputs[name]
                else None,
                control=control,
                offset=offset,
                separate_inputs=takes_separate_inputs(step),
                owners=plan.owners.get(name),
                spill_dir=run_dir / "spill" / name,
                thread_limiter=(
                    anyio.CapacityLimiter(step.workers) if step.executor == "thread" else None
                ),
            )
        )

    loaded: list[_Step] = []
    completed = False
    try:
        for ctx in contexts:
            if ctx.step.executor == "process":
                if isinstance(ctx.step, Task):  # workers call the LLM directly, uncached
                    ctx.step.bind_calls(None, LLMCallStats())
                ctx.pool = StepProcessPool(ctx.step, ctx.step.workers)
            else:
                await anyio.to_thread.run_sync(ctx.step.load)
                loaded.append(ctx.step)
        progress.start(stats, {ctx.step.name: inputs[ctx.step.name] for ctx in contexts})
        try:
            async with anyio.create_task_group() as outer:
                outer.start_soon(progress.run)  # runs until cancelled
                async with anyio.create_task_group() as tg:
                    for ctx in contexts:
                        tg.start_soon(_run_step, ctx, name=f"step:{ctx.step.name}")
                    for writer, receive in sinks:
                        tg.start_soon(_run_sink, writer, receive)
                    outer.start_soon(_prewarm_imports)
                outer.cancel_scope.cancel()
        except BaseExceptionGroup as group:
            error = first_error(group)
            raise error from error.__cause__
        completed = True
        progress.finish()
    finally:
        with anyio.CancelScope(shield=True):
            await _shutdown(contexts, loaded, kill=not completed)
        for ctx in contexts:
            if isinstance(ctx.step, Task):  # the cache closes with the run; don't keep it
                ctx.step.bind_calls(None, LLMCallStats())
        if calls.cache is not None:
            calls.cache.close()
        for stream in streams:
            stream.close()

    files = {leaf: await anyio.to_thread.run_sync(w.finish) for leaf, w in writers.items()}
    if control.stop_reason is None:  # a run cut short by its budget may be resumed later
        (run_dir / COMPLETE_MARKER).touch()
    return RunOutput(files, stats, control.stop_reason)


def _start_run_dir(plan: Plan, run_dir: Path, options: RunOptions) -> bool:
    """Mark the run as in progress in its directory; return whether it resumes the last one."""
    fingerprint = parameters_fingerprint(plan)
    resume = _can_resume(plan, run_dir, options, fingerprint)
    (run_dir / COMPLETE_MARKER).unlink(missing_ok=True)
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / PARAMETERS_FILE).write_text(fingerprint)
    return resume


def _can_resume(plan: Plan, run_dir: Path, options: RunOptions, fingerprint: str) -> bool:
    """Resume when the last run of this pipeline was interrupted, unless caching is off (the
    user wants everything recomputed), a global step needs every row in one pass, or the
    runtime parameters that shape the rows changed (rows made with the old ones would be mixed
    with new ones; starting over costs little, as the LLM answers come from the cache)."""
    if not options.use_cache or (run_dir / COMPLETE_MARKER).exists():
        return False
    if any(isinstance(step, GlobalStep) for step in plan.steps.values()):
        return False
    previous = run_dir / PARAMETERS_FILE
    if previous.exists() and previous.read_text() != fingerprint:
        if any((run_dir / "data").glob("*/part-*")):
            print(
                "[synthflow] the runtime parameters changed since the interrupted run: "
                "starting over (LLM answers already paid for come from the cache)",
                file=sys.stderr,
            )
        return False
    return True


OPERATIONAL_PARAMETERS = frozenset(
    {"batch_size", "input_batch_size", "max_batch_size", "concurrency", "spill_threshold"}
    | {"max_retries", "retry_backoff", "timeout", "latency", "jitter"}
    | {"max_concurrency", "requests_per_minute", "tokens_per_minute"}
)
"""Runtime parameters that change how fast rows are made, not what they hold: a run
interrupted under other values of these resumes all the same."""


def parameters_fingerprint(plan: Plan) -> str:
    """A hash of every runtime parameter value that shapes the rows, for resuming."""
    values = {
        f"{name}.{info.path}": info.value
        for name, step in plan.steps.items()
        for info in runtime_parameters_info(step)
        if info.path.rsplit(".", 1)[-1] not in OPERATIONAL_PARAMETERS
    }
    encoded = orjson.dumps(values, option=orjson.OPT_SORT_KEYS, default=str)
    return hashlib.sha256(encoded).hexdigest()[:16]


async def _run_step(ctx: StepContext) -> None:
    name = ctx.step.name
    try:
        try:
            await runner_for(ctx.step)(ctx)
        except BaseExceptionGroup as group:  # from a runner's own task group
            error = first_error(group)
            raise error from error.__cause__
    except StepError:
        raise
    except Exception as exc:
        raise StepError(f"step {name!r} failed: {type(exc).__name__}: {exc}", step=name) from exc
    finally:
        ctx.stats.rows_out = ctx.outlet.rows_out
        with anyio.CancelScope(shield=True):
            await ctx.outlet.aclose()


async def _run_sink(writer: LeafWriter, receive: MemoryObjectReceiveStream[Chunk]) -> None:
    reorder = Reorder()  # the dataset is in source order, whatever order rows arrive in
    try:
        async with receive:
            async for chunk in receive:
                rows = reorder.push(chunk)
                if rows:
                    writer.write(rows)
        writer.write(reorder.drain())
    finally:
        writer.flush()  # on a crash too: what reached the leaf stays readable, and resumable


async def _shutdown(contexts: list[StepContext], loaded: list[_Step], *, kill: bool) -> None:
    for ctx in contexts:
        if ctx.pool is not None:
            ctx.pool.shutdown(kill=kill)
    for step in loaded:
        try:
            step.unload()
        finally:
            llm = getattr(step, "llm", None)
            if llm is not None:
                await llm.aclose()
