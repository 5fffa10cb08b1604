"""Model calls made in worker threads, taken to the run's event loop.

A step with ``executor="thread"`` runs ``process`` (a task's ``process_rows``) in a worker
thread, on an event loop of that thread's own. Its model calls must still take the run's call
path (``LLMCalls``): the response cache (a SQLite connection of the loop's thread), the
accounting and the budget (counters the progress line reads), an API client's connection pool
and rate limiter (bound to the run's loop). ``ThreadCalls`` stands in for ``LLMCalls`` in such a
step: each call is handed to the run's loop, where it runs as a task of the step, and the worker
awaits its answer without blocking its own loop, so the rows of a batch still call concurrently.

A local model (``LLM.blocking``) computes in the thread that calls it: its generation alone is
handed back to the worker's loop, so that the computing stays off the run's loop.

Stopping. The calls are tasks of the step, so a failed run or Ctrl+C cancels them with it; a
call cancelled that way raises ``CallsStopped`` in the worker, which leaves its row out as a
spent budget does, so the worker's batch ends at once. A budget reached or a full disk raise
in the worker exactly as on the loop (``BudgetExceeded``, ``DiskFullError``). A worker whose
own row is cancelled (another row of its batch stopped it) cancels its call on the loop too.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import threading
from collections.abc import Awaitable, Callable, Sequence
from functools import partial
from types import TracebackType
from typing import TYPE_CHECKING, Any, Self, TypeVar

import anyio

from synthflow.errors import BudgetExceeded
from synthflow.models.callpath.calls import LLMCalls, LLMCallStats, ModelCall, RunModel
from synthflow.models.llms.base import LLM, ChatType, GenerateOutput

if TYPE_CHECKING:
    from synthflow.models.embeddings.base import Embeddings, Vector

_T = TypeVar("_T")


class CallsStopped(BudgetExceeded):
    """The run stopped a call made from a worker thread (it failed, or was interrupted). A
    ``BudgetExceeded``, so that the row is left out, as when the budget refuses a call."""


class ThreadCalls:
    """The run's ``LLMCalls`` for a step that calls its model from worker threads; open it (on
    the run's loop) for as long as the step runs: ``async with ThreadCalls(calls):``."""

    def __init__(self, calls: LLMCalls) -> None:
        self._calls = calls
        self._loop = asyncio.get_running_loop()
        self._loop_thread = threading.get_ident()
        self._task_group = anyio.create_task_group()
        self._open = False

    async def __aenter__(self) -> Self:
        await self._task_group.__aenter__()
        self._open = True
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> bool | None:
        self._open = False  # a call still on its way here is refused (see _start)
        return await self._task_group.__aexit__(exc_type, exc, tb)

    async def generate(
        self,
        llm: LLM,
        messages: ChatType,
        num_generations: int,
        stats: LLMCallStats,
        *,
        use_cache: bool = True,
        owner: Sequence[Any] | None = None,
        task: str = "",
        user_turn: bool = False,
    ) -> GenerateOutput:
        run_model: RunModel | None = None
        if llm.blocking and threading.get_ident() != self._loop_thread:
            run_model = partial(_on_loop, asyncio.get_running_loop())
        call = partial(
            self._calls.generate,
            llm,
            messages,
            num_generations,
            stats,
            use_cache=use_cache,
            owner=owner,
            task=task,
            user_turn=user_turn,
            run_model=run_model,
        )
        return await self._on_run_loop(call)

    async def embed(
        self,
        model: Embeddings,
        texts: Sequence[str],
        stats: LLMCallStats,
        *,
        use_cache: bool = True,
    ) -> list[Vector]:
        # A local embedding model already computes in a thread of its own (``aencode``).
        return await self._on_run_loop(
            partial(self._calls.embed, model, texts, stats, use_cache=use_cache)
        )

    async def _on_run_loop(self, call: Callable[[], Awaitable[_T]]) -> _T:
        """``await call()`` on the run's loop, from a worker thread's loop (or from the run's
        loop itself: a step whose async ``process`` the engine runs there)."""
        if threading.get_ident() == self._loop_thread:
            return await call()
        done: concurrent.futures.Future[_T] = concurrent.futures.Future()
        try:
            self._loop.call_soon_threadsafe(self._start, call, done)
        except RuntimeError:  # the run's loop is closed
            raise CallsStopped("the run has ended: no new LLM calls are sent") from None
        try:
            return await asyncio.wrap_future(done)  # a cancelled wait cancels ``done`` too
        except asyncio.CancelledError:
            task = asyncio.current_task()
            if done.cancelled() and not (task is not None and task.cancelling()):
                raise CallsStopped("the run stopped: no new LLM calls are sent") from None
            raise

    def _start(
        self, call: Callable[[], Awaitable[_T]], done: concurrent.futures.Future[_T]
    ) -> None:
        """On the run's loop: start ``call`` as a task of the step, unless it's over."""
        if done.cancelled():  # the worker stopped waiting before the call started
            return
        if not self._open:
            done.cancel()
            return
        self._task_group.start_soon(self._run, call, done)

    async def _run(
        self, call: Callable[[], Awaitable[_T]], done: concurrent.futures.Future[_T]
    ) -> None:
        with anyio.CancelScope() as scope:
            done.add_done_callback(partial(self._cancel_if_abandoned, scope))
            try:
                result = await call()
            except anyio.get_cancelled_exc_class():
                done.cancel()  # the step was cancelled: the worker sees CallsStopped
                raise
            except BaseException as exc:  # the worker's row gets it, as it would on the loop
                _settle(done.set_exception, exc)
                if not isinstance(exc, Exception):
                    raise
            else:
                _settle(done.set_result, result)

    def _cancel_if_abandoned(
        self, scope: anyio.CancelScope, done: concurrent.futures.Future[Any]
    ) -> None:
        """When the worker cancels its wait (its row was cancelled), cancel the call too."""
        if done.cancelled():
            with contextlib.suppress(RuntimeError):  # a closed loop: nothing left to cancel
                self._loop.call_soon_threadsafe(scope.cancel)


def _settle(set_state: Callable[[Any], None], value: Any) -> None:
    with contextlib.suppress(concurrent.futures.InvalidStateError):  # the worker gave up
        set_state(value)


async def _on_loop(loop: asyncio.AbstractEventLoop, call: ModelCall) -> GenerateOutput:
    """``await call()`` on ``loop`` (a worker thread's), awaited from the run's loop."""

    async def make() -> GenerateOutput:
        return await call()

    return await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(make(), loop))
