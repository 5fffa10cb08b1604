"""Task: a step that calls an LLM for each row.

A task says how a row becomes chat messages (``format_input``) and how a completion becomes
columns (``format_output``). The engine keeps up to ``concurrency`` rows in flight at once, across
input batches, and sends each row on as soon as its call finishes: there is no batch barrier, and
one slow call never holds back the rows behind it. (Steps that need source order restore it.)
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import AsyncIterator
from typing import Any

import anyio
from pydantic import Field, PrivateAttr

from synthflow.llms.base import LLM, ChatType, GenerateOutput
from synthflow.llms.calls import LLMCalls, LLMCallStats
from synthflow.runtime_parameters import RuntimeParameter
from synthflow.steps.base import METADATA_COLUMN, ErrorPolicy, Row, Step, StepInput

ERROR_COLUMN = "synthflow_error"
"""Column that holds the error of a row whose step failed under ``on_error="null"``."""


class Task(Step, ABC):
    """Base class of LLM tasks. Subclasses implement ``format_input`` and ``format_output``,
    and list their columns in ``inputs`` and ``outputs`` (``outputs`` includes ``model_name``).
    """

    llm: LLM = Field(description="The LLM the task calls.")
    num_generations: RuntimeParameter[int] = Field(
        default=1, ge=1, description="Completions to generate per row."
    )
    group_generations: bool = Field(
        default=False,
        description="Keep a row's generations together as lists in one row (True), or make one "
        "row per generation (False).",
    )
    concurrency: RuntimeParameter[int] = Field(
        default=64, ge=1, description="Rows in flight at once (LLM calls under way)."
    )
    add_statistics: bool = Field(
        default=True,
        description="Record the call's token usage in the row's 'synthflow_metadata' column.",
    )
    add_raw_output: bool = Field(
        default=False,
        description="Record the raw response in 'synthflow_metadata' (the LLM must keep it: "
        "include_raw=True on API clients).",
    )
    use_cache: bool = Field(
        default=True,
        description="Serve answers from the run's response cache and store new ones there.",
    )
    on_error: ErrorPolicy = Field(
        default="null",
        description="What a failed row does: 'null' (default for tasks) keeps it with null "
        "outputs and the error in 'synthflow_error'; 'fail' cancels the run; 'drop' drops it.",
    )

    _calls: LLMCalls | None = PrivateAttr(default=None)
    _call_stats: LLMCallStats = PrivateAttr(default_factory=LLMCallStats)

    def bind_calls(self, calls: LLMCalls | None, stats: LLMCallStats) -> None:
        """Route this task's LLM calls through a run's cache and accounting (engine use)."""
        self._calls, self._call_stats = calls, stats

    @abstractmethod
    def format_input(self, row: Row) -> ChatType:
        """The chat messages to send for ``row``."""

    @abstractmethod
    def format_output(self, output: str | None, row: Row) -> dict[str, Any]:
        """The columns for one completion (``output`` is None when the model gave nothing)."""

    def load(self) -> None:
        self.llm.load()

    def unload(self) -> None:
        self.llm.unload()

    async def generate(self, row: Row) -> GenerateOutput:
        """The completions for ``row``, through the run's cache and accounting when bound."""
        return await self.generate_messages(self.format_input(row), self.num_generations)

    async def generate_messages(
        self, messages: ChatType, num_generations: int = 1
    ) -> GenerateOutput:
        """Completions for any ``messages``, through the run's cache and accounting when bound:
        what a task that makes several calls per row (``EvolInstruct``) calls from its own
        ``process_row``."""
        if self._calls is None:
            return await self.llm.agenerate(messages, num_generations=num_generations)
        return await self._calls.generate(
            self.llm, messages, num_generations, self._call_stats, use_cache=self.use_cache
        )

    async def process_row(self, row: Row) -> list[Row]:
        """The rows that ``row`` becomes: one, or ``num_generations`` when not grouped."""
        return self.rows_from_output(row, await self.generate(row))

    def rows_from_output(self, row: Row, result: GenerateOutput) -> list[Row]:
        columns = [self.format_output(text, row) for text in result.generations]
        model_name = self.llm.model_name
        metadata = self._metadata(row, result)
        if self.group_generations or len(columns) == 1:
            if len(columns) == 1 and not self.group_generations:
                row.update(columns[0])
            else:
                for key in dict.fromkeys(k for c in columns for k in c):
                    row[key] = [c.get(key) for c in columns]
            out = [row]
        else:
            out = []
            for i, cols in enumerate(columns):
                new = row if i == len(columns) - 1 else row.copy()
                new.update(cols)
                out.append(new)
        for new in out:
            new["model_name"] = model_name
            if metadata is not None:
                new[METADATA_COLUMN] = metadata
        return out

    def _metadata(self, row: Row, result: GenerateOutput) -> dict[str, Any] | None:
        if not (self.add_statistics or self.add_raw_output):
            return None
        # A new dict, not an update in place: branches of a fan-out share the old one.
        metadata = dict(row.pop(METADATA_COLUMN, None) or {})
        if self.add_statistics:
            metadata[f"statistics_{self.name}"] = {
                "input_tokens": result.usage.input_tokens,
                "output_tokens": result.usage.output_tokens,
            }
        if self.add_raw_output:
            metadata[f"raw_output_{self.name}"] = result.raw
        return metadata

    async def process_rows(self, rows: StepInput) -> list[Row]:
        """All of ``rows`` at once, concurrently; how the task runs in a worker process."""
        results: list[list[Row]] = [[] for _ in rows]

        async def one(i: int, row: Row) -> None:
            results[i] = await self.process_row(row)

        async with anyio.create_task_group() as tg:
            for i, row in enumerate(rows):
                tg.start_soon(one, i, row)
        return [r for rs in results for r in rs]

    async def process(self, *inputs: StepInput) -> AsyncIterator[list[Row]]:
        yield await self.process_rows(inputs[0])
