"""GeneratorTask: an LLM task that is a source (distilabel's ``GeneratorTask``).

It is a ``GeneratorStep`` to the engine (it starts a pipeline and numbers its rows) and a
``Task`` to everything else: the run binds its LLM calls to the response cache, the budget and the
per-step accounting as it does for any task, and ``format_input``/``format_output`` work as in any
task, with an empty row as the input.
"""

from __future__ import annotations

from abc import ABC
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable

from pydantic import Field

from synthflow.errors import BudgetExceeded, LLMError
from synthflow.steps.base import FAILED, ErrorPolicy, GeneratorStep, Row
from synthflow.steps.tasks._windows import rows_in_windows
from synthflow.steps.tasks.base import Task


class GeneratorTask(GeneratorStep, Task, ABC):
    """A task with no input: one call of ``format_input({})``, whose ``num_generations``
    completions become the rows it yields (one each, or one grouped row with
    ``group_generations=True``), as distilabel's generator tasks do.

    A completion that can't be read (``format_output`` raised ``OutputParseError``) and a failed
    call follow ``on_error``: ``"null"`` (default) keeps a row with null outputs and the error in
    ``synthflow_error``; ``"drop"`` leaves it out; ``"fail"`` stops the run.
    """

    # Declared again: pydantic takes a field from the first base that has it, and GeneratorStep
    # inherits the plain steps' default ("fail").
    on_error: ErrorPolicy = Field(
        default="null",
        description="What a row that failed does: 'null' (default) keeps it with null outputs "
        "and the error in 'synthflow_error'; 'fail' stops the run; 'drop' leaves it out.",
    )

    async def process(self, offset: int = 0) -> AsyncIterator[list[Row]]:  # type: ignore[override]
        row: Row = {}
        try:
            result = await self.generate(row)
        except BudgetExceeded:
            return
        except LLMError as exc:
            if exc.fatal or self.on_error == "fail":
                raise
            rows = [self._failed(row, f"{type(exc).__name__}: {exc}")]
        else:
            rows = self.rows_from_output(row, result)
        # Rows marked FAILED go out as they are: the engine applies on_error and counts them.
        # A resumed run asks for the rows after ``offset``; the cached answer gives the same ones.
        rows = rows[offset:]
        for start in range(0, len(rows), self.batch_size):
            yield rows[start : start + self.batch_size]

    def _rows_by_slot(
        self,
        write: Callable[[int], Awaitable[Row]],
        offset: int,
        total: int,
        wanted: Callable[[int], bool] | None,
    ) -> AsyncGenerator[list[Row]]:
        """The batches of a task whose rows are independent (``makes_rows_by_id``): row
        ``slot`` is ``write(slot)``, for the slots from ``offset`` to ``total - 1`` that
        ``wanted`` accepts, ``concurrency`` at a time (``synthflow.steps.tasks._windows``). A
        failed call gives its row's failure under ``on_error``; a spent budget ends the rows."""

        async def row_of(slot: int) -> Row | None:
            try:
                return await write(slot)
            except BudgetExceeded:
                return None
            except LLMError as exc:
                if exc.fatal or self.on_error == "fail":
                    raise
                return self._failed({}, f"{type(exc).__name__}: {exc}")

        return rows_in_windows(
            row_of,
            offset,
            total,
            batch_size=self.batch_size,
            concurrency=self.concurrency,
            wanted=wanted,
        )

    def _failed(self, row: Row, message: str) -> Row:
        row.update(dict.fromkeys(self._answer_columns()))
        row["model_name"] = self.llm.model_name
        row[FAILED] = message
        return row
