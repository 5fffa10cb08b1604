"""Running one call of a step's ``process``: on the loop, in a thread, or in a process pool.

``process`` may be a plain or an async generator of batches. Whatever the executor, one call
becomes one flat list of rows, so the runners never care where it ran.

The process pool is one ``ProcessPoolExecutor`` per step, started with the ``spawn`` method (a
``fork`` of a process running an event loop and threads is unsafe). Each worker unpickles the
step and runs ``load()`` once, in its initializer; workers ignore SIGINT so that Ctrl+C reaches
only the parent, which then shuts them down.

A worker that dies while it holds a batch (SIGKILL, out of memory, a crash in native code)
breaks the whole pool: every batch in flight fails with ``BrokenProcessPool``. The pool is then
replaced (once per break, however many batches saw it) and each of those batches runs once more
on the new one; a batch whose worker dies again raises ``WorkerDiedError``, and its rows fail
under the step's ``on_error``.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import multiprocessing
import pickle
import signal
from collections.abc import AsyncGenerator, Callable, Iterable, Iterator
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import Any

import anyio
import anyio.to_thread

from synthflow.errors import WorkerDiedError
from synthflow.steps.base import GeneratorStep, Row, _Step, batch_rows


async def _drain_async(gen: AsyncGenerator[Any, Any]) -> list[Row]:
    rows: list[Row] = []
    async with contextlib.aclosing(gen):
        async for batch in gen:
            rows.extend(batch_rows(batch))
    return rows


def _drain_sync(result: Any) -> list[Row]:
    if inspect.isasyncgen(result):
        return asyncio.run(_drain_async(result))
    if inspect.iscoroutine(result):  # a coroutine returning a batch (or batches)
        return _drain_sync(asyncio.run(result))
    if result is None:
        return []
    if isinstance(result, list):
        return result
    rows: list[Row] = []
    for batch in result:
        rows.extend(batch_rows(batch))
    return rows


def call_sync(fn: Callable[..., Any], args: tuple[Any, ...]) -> list[Row]:
    """Call ``fn(*args)`` and drain what it returns, in the calling thread."""
    return _drain_sync(fn(*args))


async def call_on_loop(fn: Callable[..., Any], args: tuple[Any, ...]) -> list[Row]:
    result = fn(*args)
    if inspect.isasyncgen(result):
        return await _drain_async(result)
    if inspect.iscoroutine(result):
        result = await result
    return _drain_sync(result)


async def call_in_thread(
    fn: Callable[..., Any], args: tuple[Any, ...], limiter: anyio.CapacityLimiter
) -> list[Row]:
    return await anyio.to_thread.run_sync(call_sync, fn, args, limiter=limiter)


# -- process pool ---------------------------------------------------------------------------

_worker_step: _Step | None = None
_worker_error: str | None = None


def _init_worker(payload: bytes) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    global _worker_step, _worker_error
    try:
        _worker_step = pickle.loads(payload)
        _worker_step.load()
    except Exception as exc:
        # An initializer that raises only breaks the pool ("terminated abruptly"), hiding why.
        # Keep the reason and raise it from each call instead, where the step's error policy
        # and the run's error report can see it.
        _worker_error = f"load() failed in a worker process: {type(exc).__name__}: {exc}"


def _run_in_worker(method: str, args: tuple[Any, ...]) -> list[Row]:
    if _worker_error is not None:
        raise RuntimeError(_worker_error)
    assert _worker_step is not None, "worker was not initialised"
    return call_sync(getattr(_worker_step, method), args)


_worker_batches: Iterator[Any] | None = None
"""A generator step's ``process(offset)``, kept open in its (only) worker between calls."""


def _next_batches_in_worker(offset: int, rows_wanted: int) -> tuple[list[list[Row]], bool]:
    """The next batches of a generator step, at least ``rows_wanted`` rows unless it ends
    first, and whether it has ended. The first call starts ``process(offset)``."""
    global _worker_batches
    if _worker_error is not None:
        raise RuntimeError(_worker_error)
    assert _worker_step is not None, "worker was not initialised"
    if _worker_batches is None:
        assert isinstance(_worker_step, GeneratorStep)
        result: Any = _worker_step.process(offset)
        # An async generator has no loop to run on here: it is drained on one of its own, in
        # one piece, as a process step's async process() is.
        _worker_batches = iter([_drain_sync(result)] if inspect.isasyncgen(result) else result)
    batches: list[list[Row]] = []
    count = 0
    for batch in _worker_batches:
        rows = batch_rows(batch)
        batches.append(rows)
        count += len(rows)
        if count >= rows_wanted:
            return batches, False
    _worker_batches = None
    return batches, True


DIED = (
    "a worker process died while it held the batch (killed, out of memory, a crash in native "
    "code, or a script that runs its pipeline at import: worker processes import your script, "
    'so put the run under `if __name__ == "__main__":`)'
)


class StepProcessPool:
    """The worker processes of one step, each holding a loaded copy of it."""

    def __init__(self, step: _Step, workers: int) -> None:
        self._payload = pickle.dumps(step)
        self._workers = workers
        self._pool = self._start()
        self._generation = 0
        """Counts replacements, so that batches that saw the same break replace it once."""

    def _start(self) -> ProcessPoolExecutor:
        return ProcessPoolExecutor(
            max_workers=self._workers,
            mp_context=multiprocessing.get_context("spawn"),
            initializer=_init_worker,
            initargs=(self._payload,),
        )

    def _replace(self, generation: int) -> None:
        """Start new workers in place of a broken pool, unless a batch already did."""
        if generation != self._generation:
            return
        broken, self._pool = self._pool, self._start()
        self._generation += 1
        broken.shutdown(wait=False, cancel_futures=True)

    async def call(self, method: str, args: tuple[Any, ...]) -> list[Row]:
        """``method(*args)`` on the step in a worker; once more on new workers if the worker
        died, and ``WorkerDiedError`` if it dies again."""
        for attempt in (1, 2):
            generation = self._generation
            try:
                rows: list[Row] = await self._answer(_run_in_worker, method, args)
                return rows
            except BrokenProcessPool as exc:
                self._replace(generation)
                if attempt == 2:
                    raise WorkerDiedError(f"{DIED}, and again on a new worker") from exc
        raise AssertionError("unreachable")

    async def generate(self, offset: int, rows_per_call: int) -> AsyncGenerator[list[Row]]:
        """A generator step's batches from ``offset``, fetched from its worker a few at a time
        (its ``process`` stays open there between calls)."""
        done = False
        while not done:
            batches, done = await self._answer(_next_batches_in_worker, offset, rows_per_call)
            for batch in batches:
                yield batch

    async def _answer(self, fn: Callable[..., Any], *args: Any) -> Any:
        """``fn(*args)`` in a worker, awaited without blocking the loop."""
        future = self._pool.submit(fn, *args)
        try:
            return await asyncio.wrap_future(future)
        except asyncio.CancelledError:
            future.cancel()
            raise
        except BrokenProcessPool as exc:
            raise BrokenProcessPool(DIED) from exc

    def shutdown(self, *, kill: bool) -> None:
        if kill:
            # No graceful path exists for a worker stuck in user code; terminate it so that
            # Ctrl+C or a failed run leaves no orphan processes behind.
            processes = list(getattr(self._pool, "_processes", {}).values())
            self._pool.shutdown(wait=False, cancel_futures=True)
            for proc in processes:
                proc.terminate()
            for proc in processes:
                proc.join(timeout=5)
        else:
            self._pool.shutdown(wait=True)


def check_picklable(steps: Iterable[_Step]) -> list[str]:
    """Return an error line for each step that can't be sent to a process pool."""
    problems = []
    for step in steps:
        try:
            pickle.loads(pickle.dumps(step))
        except Exception as exc:
            problems.append(
                f"step {step.name!r} uses executor='process' but can't be pickled ({exc}); "
                "define its class (and anything it holds) at module level"
            )
    return problems
