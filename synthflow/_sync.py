"""Running async code to completion from synchronous callers.

``pipeline.run()``, a task's ``process`` used alone and ``llm.generate`` are synchronous fronts on
async code. Each call gets an event loop of its own: in the calling thread when none is running
there, else (Jupyter, an async app) in a worker thread while the caller blocks.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import TypeVar

import anyio

_T = TypeVar("_T")


def loop_is_running() -> bool:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True


def run_sync(fn: Callable[[], Awaitable[_T]]) -> _T:
    """``await fn()`` on a private event loop and return its result."""
    return _run_in_thread(fn) if loop_is_running() else anyio.run(fn)


def _run_in_thread(fn: Callable[[], Awaitable[_T]]) -> _T:
    """Run on a fresh event loop in a worker thread, for callers already inside a loop.

    Ctrl+C (KeyboardInterrupt in this thread) cancels the work in the worker and waits for it to
    wind down, so nothing it started outlives the interrupted cell.
    """
    from anyio.from_thread import start_blocking_portal

    with start_blocking_portal() as portal:
        future = portal.start_task_soon(fn)
        try:
            return future.result()
        except KeyboardInterrupt:
            future.cancel()
            raise
