"""The engine: runs a validated plan in one event loop.

Every step runs as one task in a single task group. Edges are bounded memory streams of
chunks, so a slow step fills its input queue and its producers wait: memory stays bounded by the
queue sizes, whatever the dataset's size. Each leaf feeds a writer that puts its rows on disk.

With load stages (``run(load_groups=...)``, see ``_load_stages``) the steps of a stage start
only once the stages before it have finished and unloaded; edges into a later stage are
unbounded, so nothing upstream waits on a step that hasn't started.

The first error cancels the task group; the error that caused it is re-raised on its own (not
wrapped in an ExceptionGroup), named after its step. Cancellation (Ctrl+C, a cancelled
``arun``) takes the same path, and the ``finally`` blocks shut process pools down hard, so no
worker outlives the run.
"""

from __future__ import annotations

import hashlib
import math
import os
import shutil
import sys
import threading
from dataclasses import dataclass
from pathlib import Path

import anyio
import anyio.to_thread
import orjson
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

from synthflow.errors import BatchesInProgress, DiskFullError, StepError, first_error
from synthflow.models.callpath.batches import uses_offline_batches
from synthflow.models.callpath.cache import ResponseCache
from synthflow.models.callpath.calls import Budget, CallsUser, LLMCalls, LLMCallStats
from synthflow.models.callpath.pricing import Price
from synthflow.pipeline import _disk
from synthflow.pipeline._execution import StepProcessPool
from synthflow.pipeline._failures import FAILURES_FILE, FailureRecord, lineage_of
from synthflow.pipeline._gc import collector_tuned_for_run, freeze_imported
from synthflow.pipeline._progress import Progress, expected_rows
from synthflow.pipeline._retry import RETRY_DIR, RETRY_FAILURES_FILE, finish_retry, rows_to_retry
from synthflow.pipeline._runners import RunControl, StepContext, runner_for
from synthflow.pipeline._shards import Shard
from synthflow.pipeline._sink import LeafWriter
from synthflow.pipeline._status import StatusFile
from synthflow.pipeline._streams import Chunk, Inlet, Outlet, Reorder
from synthflow.pipeline._thread_calls import ThreadCalls
from synthflow.pipeline._validate import Plan
from synthflow.pipeline.routing import Router
from synthflow.pipeline.stats import StepStats
from synthflow.runtime_parameters import runtime_parameters_info
from synthflow.steps.base import (
    ARTIFACTS_DIR,
    GeneratorStep,
    GlobalStep,
    _Step,
    takes_separate_inputs,
)
from synthflow.steps.tasks.base import Task

COMPLETE_MARKER = "COMPLETE"
CACHE_FILE = "llm-cache.sqlite"
"""The run's response cache (SQLite), in its directory."""
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
    shard: Shard | None = None
    """Run only this shard's part of the sources' rows (a distributed run's worker)."""
    retry_failed: bool = False
    """Run only the rows that failed in the last (finished) run, and merge them into its data."""
    only_ids: frozenset[int] | None = None
    """Run only the source rows of these lineage ids, as a new run (its data holds just them):
    a shard of a retry on Ray, whose driver read the ids and merges the rows (``retry_failed``
    reads them here, from the run directory, and merges here)."""
    pipeline_name: str = "pipeline"
    load_stages: list[list[str]] | None = None
    """Steps loaded together, stage after stage (``run(load_groups=...)``); None: all at once."""


@dataclass
class RunOutput:
    leaf_files: dict[str, Path]
    stats: dict[str, StepStats]
    stop_reason: str | None = None
    resumed_rows: int = 0
    artifacts_dir: Path | None = None
    """The steps' artifacts (``<step>/<artifact>/``), when any step saved one."""
    failures_file: Path | None = None
    """The failure record (``failures.jsonl``), when a row failed."""
    retried: int | None = None
    """How many failed rows the run retried (``retry_failed``), else None."""


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
    users = [s for s in plan.steps.values() if isinstance(s, CallsUser)]
    cache = None
    if options.use_cache and any(s.uses_response_cache() for s in users):
        run_dir.mkdir(parents=True, exist_ok=True)
        cache = ResponseCache(run_dir / CACHE_FILE)
    budget = None
    if options.max_cost is not None or options.max_tokens is not None:
        budget = Budget(max_cost=options.max_cost, max_tokens=options.max_tokens)
    tasks = [s for s in plan.steps.values() if isinstance(s, Task)]
    batching = any(uses_offline_batches(t.llm) for t in tasks)
    if batching:
        run_dir.mkdir(parents=True, exist_ok=True)
    return LLMCalls(
        cache,
        budget,
        options.prices,
        on_exhausted=control.stop,
        run_dir=run_dir if batching else None,
    )


async def execute(
    plan: Plan, run_dir: Path, progress: Progress, options: RunOptions | None = None
) -> RunOutput:
    with collector_tuned_for_run():
        return await _execute(plan, run_dir, progress, options or RunOptions())


async def _execute(plan: Plan, run_dir: Path, progress: Progress, options: RunOptions) -> RunOutput:
    control = RunControl()
    stats = {name: StepStats(name) for name in plan.steps}
    retry: frozenset[int] | None = None
    if options.retry_failed:  # the finished run stays as it is until the retry has finished
        retry, resume = rows_to_retry_in(plan, run_dir), False
    else:
        # The run directory first: a full disk already stops the run before anything opens.
        resume = _start_run_dir(plan, run_dir, options)
    only = retry if retry is not None else options.only_ids  # what the sources send
    artifacts = run_dir / ARTIFACTS_DIR
    if not resume and retry is None:  # a resumed run keeps what its steps saved before
        shutil.rmtree(artifacts, ignore_errors=True)
    for step in plan.steps.values():
        step._artifacts_root = artifacts
    leaf_root = run_dir / (RETRY_DIR if retry is not None else "data")
    writers = {leaf: LeafWriter(leaf_root / leaf, resume=resume) for leaf in plan.leaves}
    calls = _llm_calls(plan, run_dir, options, control)
    # Every stream, so a failed run can close the ones whose task was cancelled before it ran.
    streams: list[MemoryObjectSendStream[Chunk] | MemoryObjectReceiveStream[Chunk]] = []
    inputs: dict[str, list[MemoryObjectReceiveStream[Chunk]]] = {n: [] for n in plan.steps}
    outputs: dict[str, list[MemoryObjectSendStream[Chunk]]] = {n: [] for n in plan.steps}
    receivers: dict[str, list[str]] = {n: [] for n in plan.steps}  # whom each output feeds
    stages = _stages_of(plan, options.load_stages)
    unbounded = _unbounded_edges(plan, stages)
    for name in plan.steps:  # a step's inputs in the order its predecessors were connected
        for pred in plan.predecessors[name]:
            size = math.inf if (pred, name) in unbounded else QUEUE_CHUNKS
            send, receive = anyio.create_memory_object_stream[Chunk](size)
            streams += (send, receive)
            outputs[pred].append(send)
            receivers[pred].append(name)
            inputs[name].append(receive)

    sinks: list[tuple[LeafWriter, MemoryObjectReceiveStream[Chunk]]] = []
    for leaf in plan.leaves:
        send, receive = anyio.create_memory_object_stream[Chunk](QUEUE_CHUNKS)
        streams += (send, receive)
        outputs[leaf].append(send)
        sinks.append((writers[leaf], receive))
    # Every leaf holds the rows up to its own last id; sources restart after the smallest, and
    # each writer skips what it already has.
    offset = min(w.last_id for w in writers.values()) + 1
    if offset:
        print(f"[synthflow] resuming an interrupted run after row {offset - 1}", file=sys.stderr)
    # A resumed run keeps the failures of the rows it doesn't make again.
    failures = FailureRecord(
        run_dir / (RETRY_FAILURES_FILE if retry is not None else FAILURES_FILE),
        lineage_of(plan.predecessors, plan.steps),
        keep_before=offset if resume else None,
    )
    routed = {name: route.targets for name, route in plan.routes.items()}
    for name, total in expected_rows(plan.steps, plan.predecessors, offset, routed).items():
        stats[name].rows_total = total if only is None else None
        stats[name].source = isinstance(plan.steps[name], GeneratorStep)
    status = StatusFile(
        run_dir,
        pipeline=options.pipeline_name,
        steps=plan.steps,
        stats=stats,
        resumable=_resumable(plan, options) and retry is None,
        failures_file=failures.path,
        retrying=None if retry is None else len(retry),
        resumed_after=offset,
    )
    status.write("running")

    contexts: list[StepContext] = []
    for name, step in plan.steps.items():
        if isinstance(step, CallsUser):
            stats[name].llm = call_stats = LLMCallStats()
            step.bind_calls(calls, call_stats)
        contexts.append(
            StepContext(
                step=step,
                outlet=Outlet(
                    outputs[name],
                    stats[name],
                    Router(plan.routes[name], step, receivers[name])
                    if name in plan.routes
                    else None,
                ),
                stats=stats[name],
                # An LLM task on the loop takes rows in any order; every other step, in order.
                inlet=Inlet(
                    inputs[name],
                    ordered=not _runs_rows_unordered(step),
                    optional=plan.optional_inputs.get(name),
                )
                if inputs[name]
                else None,
                control=control,
                offset=offset,
                separate_inputs=takes_separate_inputs(step),
                owners=plan.owners.get(name),
                shard=options.shard,
                failures=failures,
                only_ids=only if isinstance(step, GeneratorStep) else None,
                spill_dir=run_dir / "spill" / name,
                thread_limiter=(
                    anyio.CapacityLimiter(step.workers) if step.executor == "thread" else None
                ),
                thread_calls=(
                    calls if step.executor == "thread" and isinstance(step, CallsUser) else None
                ),
            )
        )

    loaded: list[_Step] = []
    completed = False
    by_name = {ctx.step.name: ctx for ctx in contexts}
    staged = [[by_name[name] for name in stage] for stage in stages]
    try:
        await _load(staged[0], loaded)
        progress.start(stats, {ctx.step.name: inputs[ctx.step.name] for ctx in contexts})
        try:
            async with anyio.create_task_group() as outer:
                outer.start_soon(progress.run)  # runs until cancelled
                outer.start_soon(status.keep)  # so does this
                async with anyio.create_task_group() as tg:
                    if len(staged) == 1:
                        for ctx in contexts:
                            tg.start_soon(_run_step, ctx, name=f"step:{ctx.step.name}")
                    else:
                        tg.start_soon(_run_stages, staged, loaded)
                    for writer, receive in sinks:
                        tg.start_soon(_run_sink, writer, receive)
                    outer.start_soon(_prewarm_imports)
                outer.cancel_scope.cancel()
        except BaseExceptionGroup as group:
            error = first_error(group)
            if isinstance(error, DiskFullError):
                raise _disk_full(error, plan, writers, calls, options) from error.__cause__
            if not isinstance(error, BatchesInProgress):
                raise error from error.__cause__
            # Not a failure: the run ends with what it has, and a re-run collects the batches.
            control.stop(str(error))
        completed = True
        progress.finish()
    except BaseException as exc:
        interrupted = isinstance(exc, KeyboardInterrupt | anyio.get_cancelled_exc_class())
        status.write("interrupted" if interrupted else "failed", None if interrupted else str(exc))
        raise
    finally:
        try:
            with anyio.CancelScope(shield=True):
                await _shutdown(contexts, loaded, kill=not completed)
            for ctx in contexts:
                if isinstance(ctx.step, CallsUser):  # the cache closes with the run
                    ctx.step.bind_calls(None, LLMCallStats())
            if calls.cache is not None:
                calls.cache.close()
            for stream in streams:
                stream.close()
            for step in plan.steps.values():  # a step used alone after the run keeps nothing
                step._artifacts_root = None
        finally:
            failures.close()  # last: a full disk here must not skip closing the rest

    try:
        if retry is not None:
            for writer in writers.values():
                writer.flush()
            retried = {leaf: w.directory for leaf, w in writers.items()}
            files = await anyio.to_thread.run_sync(
                finish_retry, run_dir, retried, retry, control.stop_reason is None
            )
        else:
            files = {leaf: await anyio.to_thread.run_sync(w.finish) for leaf, w in writers.items()}
        if control.stop_reason is None:  # a run cut short by its budget may be resumed later
            mark_finished(plan, run_dir, options)
    except DiskFullError as error:
        status.write("failed", str(error))
        raise _disk_full(error, plan, writers, calls, options) from error.__cause__
    record = run_dir / FAILURES_FILE
    status.failures_file = record
    status.write("finished" if control.stop_reason is None else "stopped", control.stop_reason)
    saved = artifacts.is_dir() and any(artifacts.iterdir())
    return RunOutput(
        files,
        stats,
        control.stop_reason,
        artifacts_dir=artifacts if saved else None,
        failures_file=record if record.exists() else None,
        retried=None if retry is None else len(retry),
    )


def rows_to_retry_in(plan: Plan, run_dir: Path) -> frozenset[int]:
    """The ids of the rows to retry: those the last finished run in ``run_dir`` failed (see
    ``_retry``); raises when they can't be retried alone."""
    previous = run_dir / PARAMETERS_FILE
    return rows_to_retry(
        run_dir,
        plan.steps,
        parameters_fingerprint(plan),
        previous.read_text() if previous.exists() else None,
        (run_dir / COMPLETE_MARKER).exists(),
    )


def _start_run_dir(plan: Plan, run_dir: Path, options: RunOptions) -> bool:
    """Mark the run as in progress in its directory; return whether it resumes the last one."""
    fingerprint = parameters_fingerprint(plan)
    resume = _can_resume(plan, run_dir, options, fingerprint)
    (run_dir / COMPLETE_MARKER).unlink(missing_ok=True)
    _disk.warn_if_low(run_dir, "the run directory")
    with _disk.when_full(run_dir / PARAMETERS_FILE, _disk_full_advice(plan, options)):
        run_dir.mkdir(parents=True, exist_ok=True)
        _disk.write_bytes(run_dir / PARAMETERS_FILE, fingerprint.encode())
    return resume


def mark_finished(
    plan: Plan, run_dir: Path, options: RunOptions, *, fingerprint: bool = False
) -> None:
    """Mark the run in ``run_dir`` as finished: its data and failure record are those of the
    last finished run, which ``retry_failed`` starts from. With ``fingerprint``, also write its
    runtime parameters' (a run on Ray writes here only when it has finished)."""
    advice = _disk_full_advice(plan, options)
    if fingerprint:
        with _disk.when_full(run_dir / PARAMETERS_FILE, advice):
            _disk.write_bytes(run_dir / PARAMETERS_FILE, parameters_fingerprint(plan).encode())
    with _disk.when_full(run_dir / COMPLETE_MARKER, advice):
        _disk.write_bytes(run_dir / COMPLETE_MARKER, b"")


def _resumable(plan: Plan, options: RunOptions) -> bool:
    """Whether a run of ``plan`` cut short resumes where it stopped (see ``_can_resume``)."""
    return options.use_cache and not any(isinstance(s, GlobalStep) for s in plan.steps.values())


def _disk_full_advice(plan: Plan, options: RunOptions) -> str:
    if _resumable(plan, options):
        return "free space there and run the pipeline again: it resumes where it stopped"
    return "free space there and run the pipeline again (it starts over)"


def _disk_full(
    error: DiskFullError,
    plan: Plan,
    writers: dict[str, LeafWriter],
    calls: LLMCalls,
    options: RunOptions,
) -> DiskFullError:
    """``error`` with what the run kept: rows saved, rows made but not saved, and where the
    LLM answers already received are (the response cache) or that they are lost. The response
    cache's own full disk is reported as it says (it counts the answers it couldn't keep)."""
    if calls.cache is not None and error.path == str(calls.cache.path):
        return error
    reason = "No space left on device"
    cause = error.__cause__
    while cause is not None:  # the OSError at the bottom says which: no space, or over quota
        if isinstance(cause, OSError) and cause.errno:
            reason = os.strerror(cause.errno)
            break
        cause = cause.__cause__
    saved = sum(w.saved for w in writers.values())
    unsaved = sum(w.count - w.saved for w in writers.values())
    kept = f"{saved} rows are saved" + (f", {unsaved} made since then are not" if unsaved else "")
    tasks = [s for s in plan.steps.values() if isinstance(s, Task)]
    uncached = [  # a worker process calls its (local) model directly, uncached
        t.name
        for t in tasks
        if calls.cache is None or not t.uses_response_cache() or t.executor == "process"
    ]
    if tasks and not uncached:
        kept += "; LLM answers already received are in the response cache (not paid again)"
    elif uncached:
        kept += (
            f"; LLM answers of rows not saved are lost ({', '.join(uncached)} "
            "not using the response cache)"
        )
    message = (
        f"disk full: writing {error.path} failed ({reason}); "
        f"{_disk_full_advice(plan, options)}; {kept}"
    )
    return DiskFullError(message, path=error.path)


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
    | {"use_offline_batch_generation", "offline_batch_generation_block_until_done"}
    | {"offline_batch_generation_fallback"}
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


def _stages_of(plan: Plan, load_stages: list[list[str]] | None) -> list[list[str]]:
    """The run's load stages, over ``plan``'s steps: a part of the pipeline (a stage of a run
    on Ray) keeps the stages of its own steps, and a step no stage names (the source standing
    for an earlier part's rows, or a dataset's) loads with the first step it feeds."""
    if not load_stages:
        return [list(plan.steps)]
    stages = [[n for n in stage if n in plan.steps] for stage in load_stages]
    stage_of = {name: i for i, stage in enumerate(stages) for name in stage}
    for name in reversed(plan.steps):  # in topological order: successors first
        if name not in stage_of:
            stage_of[name] = min((stage_of[s] for s in plan.successors[name]), default=0)
            stages[stage_of[name]].insert(0, name)
    return [stage for stage in stages if stage]


def _unbounded_edges(plan: Plan, load_stages: list[list[str]]) -> set[tuple[str, str]]:
    """The edges whose consumer can't take rows until a barrier upstream of it has finished,
    while their producer must go on: on a bounded edge that producer would wait forever.

    - An edge into a later load stage: its consumer isn't even started.
    - An edge into a join from a branch with no global step, when another of the join's inputs
      comes through one (``load >> dedup >> join`` and ``load >> join``): the join can't
      release a row before the global step has seen every row, so the other branch's rows wait
      in the join's input, and the source feeding both must not be held back by them.

    Their rows wait in memory (a global step's own input spills to disk)."""
    stage_of = {name: i for i, stage in enumerate(load_stages) for name in stage}
    barred: dict[str, bool] = {}  # step -> it, or a step upstream of it, is a global step

    def behind_barrier(name: str) -> bool:
        if name not in barred:
            barred[name] = isinstance(plan.steps[name], GlobalStep) or any(
                behind_barrier(pred) for pred in plan.predecessors[name]
            )
        return barred[name]

    edges: set[tuple[str, str]] = set()
    for name, preds in plan.predecessors.items():
        edges.update((pred, name) for pred in preds if stage_of[pred] != stage_of[name])
        if any(behind_barrier(pred) for pred in preds):
            edges.update((pred, name) for pred in preds if not behind_barrier(pred))
    return edges


async def _load(contexts: list[StepContext], loaded: list[_Step]) -> None:
    for ctx in contexts:
        if ctx.step.executor == "process" and isinstance(ctx.step, CallsUser):
            # A worker process can't reach the loop's cache and accounting: it calls its model
            # directly (validation lets only a local model run there, see _validate).
            ctx.step.bind_calls(None, LLMCallStats())
        if ctx.step.executor == "process":
            ctx.pool = StepProcessPool(ctx.step, ctx.step.workers)
        else:
            await anyio.to_thread.run_sync(ctx.step.load)
            loaded.append(ctx.step)


async def _run_stages(staged: list[list[StepContext]], loaded: list[_Step]) -> None:
    """Each load stage's steps run once the stage before has finished and unloaded (the first
    stage is loaded already)."""
    for i, stage in enumerate(staged):
        if i:
            await _load(stage, loaded)
        try:
            async with anyio.create_task_group() as tg:
                for ctx in stage:
                    tg.start_soon(_run_step, ctx, name=f"step:{ctx.step.name}")
        except BaseExceptionGroup as group:
            error = first_error(group)
            raise error from error.__cause__
        done = {id(ctx.step) for ctx in stage}
        finished = [step for step in loaded if id(step) in done]
        loaded[:] = [step for step in loaded if id(step) not in done]  # unloaded once, here
        try:
            await _shutdown(stage, finished, kill=False)
        finally:
            for ctx in stage:
                ctx.pool = None


async def _run_step(ctx: StepContext) -> None:
    name = ctx.step.name
    try:
        try:
            if ctx.thread_calls is None:
                await runner_for(ctx.step)(ctx)
            else:
                await _run_with_thread_calls(ctx, ctx.thread_calls)
        except BaseExceptionGroup as group:  # from a runner's own task group
            error = first_error(group)
            raise error from error.__cause__
    except Exception as exc:
        full = _disk_full_cause(exc, name)
        if full is not None:  # not the step's fault: the run stops, resumable, naming the path
            raise full from exc
        if isinstance(exc, StepError | BatchesInProgress):
            raise
        raise StepError(f"step {name!r} failed: {type(exc).__name__}: {exc}", step=name) from exc
    finally:
        with anyio.CancelScope(shield=True):
            await ctx.outlet.aclose()


async def _run_with_thread_calls(ctx: StepContext, calls: LLMCalls) -> None:
    """Run a step whose model calls are made from worker threads, each taken to this loop
    through ``ThreadCalls`` (the cache, accounting, budget and limiter of the run)."""
    step, stats = ctx.step, ctx.stats.llm
    assert isinstance(step, CallsUser) and stats is not None
    async with ThreadCalls(calls) as bridge:
        step.bind_calls(bridge, stats)
        try:
            await runner_for(step)(ctx)
        finally:
            step.bind_calls(calls, stats)


def _disk_full_cause(exc: BaseException, step: str) -> DiskFullError | None:
    """The full disk behind ``exc`` (itself, or along its causes), if there is one: a step's
    own writes (a global step's spilled input, say) stop the run as the engine's do."""
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, DiskFullError):
            return seen
        if isinstance(seen, OSError) and _disk.is_disk_full(seen):
            path = str(seen.filename or f"the files of step {step!r}")
            return DiskFullError(f"disk full: writing {path} failed", path=path)
        seen = seen.__cause__
    return None


async def _run_sink(writer: LeafWriter, receive: MemoryObjectReceiveStream[Chunk]) -> None:
    reorder = Reorder()  # the dataset is in source order, whatever order rows arrive in
    full = False
    try:
        async with receive:
            async for chunk in receive:
                rows = reorder.push(chunk)
                if rows:
                    writer.write(rows)
        writer.write(reorder.drain())
    except DiskFullError:
        full = True
        raise
    finally:
        if not full:  # on a crash too: what reached the leaf stays readable, and resumable
            writer.flush()


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
