"""Rows written one per source position, concurrently, and sent in order.

The generator tasks whose rows are independent (``EvolInstructGenerator``, ``MagpieGenerator``)
write row ``slot`` with one coroutine each. Windows of rows run concurrently under the task's
``concurrency``, and each window is sent in row order, so every row keeps its number and a
resumed run starts at row ``offset``.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, Awaitable, Callable

import anyio

from synthflow.steps.base import Row


async def rows_in_windows(
    row_of: Callable[[int], Awaitable[Row | None]],
    offset: int,
    total: int,
    *,
    batch_size: int,
    concurrency: int,
) -> AsyncGenerator[list[Row]]:
    """Batches of ``row_of(slot)`` for slots ``offset`` to ``total - 1``, in order. A None row
    means the budget ran out: the rows before it in its window are sent, and nothing after."""
    window = max(batch_size, concurrency)
    limiter = anyio.CapacityLimiter(concurrency)
    for start in range(offset, total, window):
        slots = range(start, min(start + window, total))
        done: dict[int, Row | None] = {}

        async def one(slot: int, done: dict[int, Row | None] = done) -> None:
            async with limiter:
                done[slot] = await row_of(slot)

        async with anyio.create_task_group() as tg:
            for slot in slots:
                tg.start_soon(one, slot)
        rows = [row for slot in slots if (row := done.get(slot)) is not None]
        stopped = len(rows) < len(slots)  # the budget ran out
        # Rows marked FAILED go out as they are: the engine applies on_error and counts them.
        for i in range(0, len(rows), batch_size):
            yield rows[i : i + batch_size]
        if stopped:
            return
