"""Rows written one per source position, concurrently, and sent in order.

The generator tasks whose rows are independent (``EvolInstructGenerator``, ``MagpieGenerator``)
write row ``slot`` with one coroutine each. Windows of rows run concurrently under the task's
``concurrency``, and each window is sent in row order, so every row keeps its number and a
resumed run starts at row ``offset``. A row depends only on its slot, so the task can make just
the slots the engine wants (a shard's, a retry's), and each is the row a run of all would make.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, Awaitable, Callable, Iterator
from itertools import islice

import anyio

from synthflow.steps.base import ROW_ID, Row


async def rows_in_windows(
    row_of: Callable[[int], Awaitable[Row | None]],
    offset: int,
    total: int,
    *,
    batch_size: int,
    concurrency: int,
    wanted: Callable[[int], bool] | None = None,
) -> AsyncGenerator[list[Row]]:
    """Batches of ``row_of(slot)`` for slots ``offset`` to ``total - 1`` that ``wanted``
    accepts (all when None), in order; each row carries its slot as its lineage id. A None row
    means the budget ran out: the rows before it in its window are sent, and nothing after."""
    window = max(batch_size, concurrency)
    limiter = anyio.CapacityLimiter(concurrency)
    slots_left: Iterator[int] = iter(range(offset, total))
    if wanted is not None:
        slots_left = filter(wanted, slots_left)
    while slots := list(islice(slots_left, window)):
        done: dict[int, Row | None] = {}

        async def one(slot: int, done: dict[int, Row | None] = done) -> None:
            async with limiter:
                done[slot] = await row_of(slot)

        async with anyio.create_task_group() as tg:
            for slot in slots:
                tg.start_soon(one, slot)
        rows: list[Row] = []
        for slot in slots:
            row = done.get(slot)
            if row is None:
                break  # the budget ran out
            row[ROW_ID] = slot
            rows.append(row)
        stopped = len(rows) < len(slots)
        # Rows marked FAILED go out as they are: the engine applies on_error and counts them.
        for i in range(0, len(rows), batch_size):
            yield rows[i : i + batch_size]
        if stopped:
            return
