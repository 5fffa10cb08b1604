"""Task: a step that calls an LLM for each row.

A task says how a row becomes chat messages (``format_input``) and how a completion becomes
columns (``format_output``). The engine keeps up to ``concurrency`` rows in flight at once, across
input batches, and sends each row on as soon as its call finishes: there is no batch barrier, and
one slow call never holds back the rows behind it. (Steps that need source order restore it.)
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator
from typing import Any, ClassVar, Literal, Self

import anyio
from pydantic import BaseModel, Field, PrivateAttr, model_validator

from synthflow._sync import run_sync
from synthflow.errors import (
    BatchesInProgress,
    BudgetExceeded,
    DiskFullError,
    LLMError,
    OutputParseError,
)
from synthflow.models.callpath.answers import require_answers
from synthflow.models.callpath.calls import CallPath, LLMCallStats
from synthflow.models.callpath.structured import (
    StructuredOutputLLM,
    schema_of,
    unwrap_structured_output,
)
from synthflow.models.llms.base import LLM, ChatType, GenerateOutput, Usage
from synthflow.models.llms.magpie import user_turn_of
from synthflow.pipeline._failures import RowFailure, as_text
from synthflow.runtime_parameters import RuntimeParameter
from synthflow.steps.base import (
    ERROR_COLUMN,
    FAILED,
    METADATA_COLUMN,
    ROW_ID,
    ErrorPolicy,
    Row,
    Step,
    StepInput,
    settle_failures,
)

__all__ = ["ERROR_COLUMN", "Task"]


class Task(Step, ABC):
    """Base class of LLM tasks. Subclasses implement ``format_input`` and ``format_output``,
    and list their columns in ``inputs`` and ``outputs`` (``outputs`` includes ``model_name``).

    Each row gets this task's entries in its ``synthflow_metadata`` column, shaped as
    distilabel's ``distilabel_metadata`` (the same keys and defaults):
    ``raw_output_<task>`` (the text of the row's generation), ``raw_input_<task>`` (the
    messages sent) and ``statistics_<task>`` (``{"input_tokens": n, "output_tokens": m}`` of
    the call). With ``group_generations`` the output and statistics entries hold one item per
    generation. Earlier tasks' entries stay in the column beside this task's.
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
    add_raw_output: RuntimeParameter[bool] = Field(
        default=True,
        description="Record the text the model wrote in 'synthflow_metadata' as "
        "'raw_output_<task>' (and, when the LLM keeps it with include_raw=True, the response "
        "body as 'raw_response_<task>').",
    )
    add_raw_input: RuntimeParameter[bool] = Field(
        default=True,
        description="Record the messages sent (format_input's result) in 'synthflow_metadata' "
        "as 'raw_input_<task>'.",
    )
    use_cache: bool = Field(
        default=True,
        description="Serve answers from the run's response cache and store new ones there.",
    )
    cache_scope: Literal["row", "prompt"] = Field(
        default="row",
        description="Whose answers the cache keeps: 'row' (default) ties each sample to its "
        "task and row, so identical prompts in different rows are separate samples; 'prompt' "
        "shares one answer between identical prompts across rows and tasks (the right choice "
        "at temperature 0, where every sample would be the same).",
    )
    on_error: ErrorPolicy = Field(
        default="null",
        description="What a failed row does: 'null' (default for tasks) keeps it with null "
        "outputs and the error in 'synthflow_error'; 'fail' cancels the run; 'drop' drops it.",
    )
    use_default_structured_output: bool = Field(
        default=False,
        description="Ask the LLM for the schema of get_structured_output() (tasks that define "
        "one), when the LLM takes a structured_output and has none.",
    )

    separate_inputs: ClassVar[bool | None] = False  # a task reads one (merged) row at a time

    _calls: CallPath | None = PrivateAttr(default=None)
    _call_stats: LLMCallStats = PrivateAttr(default_factory=LLMCallStats)

    def get_structured_output(self) -> dict[str, Any] | type[BaseModel] | None:
        """The JSON schema (or pydantic class) this task's answers follow, which
        ``use_default_structured_output`` asks the LLM for; None (the default): no schema."""
        return None

    @model_validator(mode="after")
    def _ask_for_default_schema(self) -> Self:
        if not self.use_default_structured_output:
            return self
        default = self.get_structured_output()
        llm = self.llm
        if default is None or not isinstance(llm, StructuredOutputLLM):
            return self
        schema = schema_of(unwrap_structured_output(default))
        current = llm.structured_output
        # Replace no schema of the user's, only none or an earlier version of this one (same
        # title: the task's fields changed since it was set).
        if current != schema and (current is None or current.get("title") == schema.get("title")):
            # A copy, set without re-validating the task: the user's LLM may be shared.
            self.__dict__["llm"] = llm.model_copy(update={"structured_output": schema})
        return self

    def bind_calls(self, calls: CallPath | None, stats: LLMCallStats) -> None:
        """Route this task's LLM calls through a run's cache and accounting (engine use)."""
        self._calls, self._call_stats = calls, stats

    def uses_response_cache(self) -> bool:
        return self.use_cache and self.llm.cacheable

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
        messages = self.format_input(row)
        output = await self.generate_messages(messages, row, self.num_generations)
        output.messages = messages
        return output

    async def generate_messages(
        self, messages: ChatType, row: Row, num_generations: int = 1, *, user_turn: bool = False
    ) -> GenerateOutput:
        """Completions for any ``messages`` on behalf of ``row``, through the run's cache and
        accounting when bound: what a task that makes several calls per row (``EvolInstruct``)
        calls from its own ``process_row``. ``user_turn``: the next user turn instead, written
        from a raw completion (Magpie; see ``synthflow.models.llms.magpie``)."""
        if self._calls is None:
            if user_turn:
                call = user_turn_of(self.llm)
                output = await call(messages, num_generations=num_generations)
            else:
                output = await self.llm.agenerate(messages, num_generations=num_generations)
            return require_answers(output, num_generations, who=type(self.llm).__name__)
        # A sample belongs to its row (lineage ids are stable across re-runs and resumes).
        owner = None if self.cache_scope == "prompt" else (self.name, row.get(ROW_ID))
        return await self._calls.generate(
            self.llm,
            messages,
            num_generations,
            self._call_stats,
            use_cache=self.use_cache,
            owner=owner,
            task=self.name,
            user_turn=user_turn,
        )

    async def process_row(self, row: Row) -> list[Row]:
        """The rows that ``row`` becomes: one, or ``num_generations`` when not grouped."""
        return self.rows_from_output(row, await self.generate(row))

    def rows_from_output(self, row: Row, result: GenerateOutput) -> list[Row]:
        columns: list[dict[str, Any]] = []
        errors: list[OutputParseError | None] = []
        for text in result.generations:
            try:
                columns.append(self.format_output(text, row))
                errors.append(None)
            except OutputParseError as exc:
                columns.append(dict.fromkeys(self._answer_columns()))
                errors.append(exc)
        model_name = self.llm.model_name
        texts = result.generations
        sent = None
        if self.add_raw_input:
            sent = result.messages if result.messages is not None else self._sent(row)
        # (row, the generation it holds or None for all of them, its parse error)
        made: list[tuple[Row, int | None, OutputParseError | None]]
        if self.group_generations or len(columns) == 1:
            if len(columns) == 1 and not self.group_generations:
                row.update(columns[0])
            else:
                for key in dict.fromkeys(k for c in columns for k in c):
                    row[key] = [c.get(key) for c in columns]
            # A grouped row fails only when none of its generations could be read.
            index = None if self.group_generations else 0
            made = [(row, index, errors[0] if all(errors) else None)]
        else:
            made = []
            for i, (cols, error) in enumerate(zip(columns, errors, strict=True)):
                new = row if i == len(columns) - 1 else row.copy()
                new.update(cols)
                made.append((new, i, error))
        metadata = [self._metadata(new, result, index, sent) for new, index, _ in made]
        for (new, index, error), meta in zip(made, metadata, strict=True):
            new["model_name"] = model_name
            held = range(len(texts)) if index is None else [index]
            unreadable = [texts[i] for i in held if errors[i] is not None]
            if unreadable and not self.add_raw_output:
                # what the model said stays with the row, to see why it didn't parse
                meta = meta if meta is not None else dict(new.get(METADATA_COLUMN) or {})
                meta[f"raw_output_{self.name}"] = unreadable if index is None else unreadable[0]
            if meta is not None:
                new.pop(METADATA_COLUMN, None)  # last, after the columns this task wrote
                new[METADATA_COLUMN] = meta
            if error is not None:
                request = result.messages if result.messages is not None else sent
                response = unreadable[0] if len(unreadable) == 1 else as_text(unreadable)
                new[FAILED] = RowFailure.of(error, request=request, response=response)
        return [new for new, _, _ in made]

    def outputs_on_failure(self) -> dict[str, Any]:
        """Null outputs, but ``model_name``, as distilabel writes it for a failed row."""
        values = super().outputs_on_failure()
        if "model_name" in self.outputs:
            values[self.output_mappings.get("model_name", "model_name")] = self.llm.model_name
        return values

    def _answer_columns(self) -> list[str]:
        """The columns an answer fills: the outputs but ``model_name``."""
        return [c for c in self.outputs if c != "model_name"]

    def _sent(self, row: Row) -> ChatType | None:
        """The messages sent for ``row``, read before its outputs are written into it. None
        when there are none: a row answered without a call (a judge with nothing to judge)
        may have no prompt to make, and its ``format_input`` raises. (When a call was made,
        ``format_input`` already succeeded on this row.)"""
        try:
            return self.format_input(row)
        except Exception:
            return None

    def _finish(
        self, row: Row, columns: dict[str, Any], usage: Usage, unreadable: Any = None
    ) -> Row:
        """``row`` with ``columns``, the model's name and its metadata, for a task whose row
        took several calls (``usage``: theirs together); ``unreadable``, the answer that
        stopped the row, stays in ``raw_output_<task>``, to see why."""
        row.update(columns)
        row["model_name"] = self.llm.model_name
        metadata = self._metadata(row, GenerateOutput(generations=[], usage=usage))
        if unreadable is not None:
            metadata = metadata if metadata is not None else dict(row.get(METADATA_COLUMN) or {})
            metadata[f"raw_output_{self.name}"] = unreadable
        if metadata is not None:
            row[METADATA_COLUMN] = metadata
        return row

    def _metadata(
        self,
        row: Row,
        result: GenerateOutput,
        generation: int | None = 0,
        sent: ChatType | None = None,
    ) -> dict[str, Any] | None:
        """``row``'s ``synthflow_metadata`` with this task's entries added (None when every
        entry is turned off), as a new dict: branches of a fan-out share the old one.

        ``generation``: the index of the one generation the row holds (its text is
        ``raw_output_<task>``), or None for a row that holds them all (grouped): then the
        output and the statistics are lists, one item per generation. Each generation's
        statistics are the call's (distilabel repeats a call's counts the same way). ``sent``:
        the messages sent, when the caller has them (else read with ``_sent``)."""
        if not (self.add_statistics or self.add_raw_output or self.add_raw_input):
            return None
        metadata = dict(row.get(METADATA_COLUMN) or {})
        texts = result.generations
        grouped = generation is None and bool(texts)
        if self.add_raw_output:
            if grouped:
                metadata[f"raw_output_{self.name}"] = list(texts)
            elif generation is not None and generation < len(texts):
                metadata[f"raw_output_{self.name}"] = texts[generation]
            if _kept_raw(result.raw):
                metadata[f"raw_response_{self.name}"] = result.raw
        if self.add_raw_input:
            metadata[f"raw_input_{self.name}"] = sent if sent is not None else self._sent(row)
        if self.add_statistics:
            usage = result.usage
            metadata[f"statistics_{self.name}"] = (
                {
                    "input_tokens": [usage.input_tokens] * len(texts),
                    "output_tokens": [usage.output_tokens] * len(texts),
                }
                if grouped
                else {"input_tokens": usage.input_tokens, "output_tokens": usage.output_tokens}
            )
        return metadata

    async def process_rows(self, rows: StepInput) -> list[Row]:
        """All of ``rows`` at once, concurrently; how the task runs in a worker thread or
        process. A row whose call the budget refused is left out (the others go on)."""
        results: list[list[Row]] = [[] for _ in rows]

        async def one(i: int, row: Row) -> None:
            try:
                results[i] = await self.process_row(row)
            except BudgetExceeded:
                return  # the run is winding down: this row is left out, as on the loop
            except (DiskFullError, BatchesInProgress):
                raise
            except LLMError as exc:
                if exc.fatal:
                    raise
                row[FAILED] = RowFailure.of(exc, request=self._sent(row))
                results[i] = [row]
            except Exception as exc:  # this row fails alone; the engine applies on_error
                row[FAILED] = RowFailure.of(exc, request=self._sent(row))
                results[i] = [row]

        async with anyio.create_task_group() as tg:
            for i, row in enumerate(rows):
                tg.start_soon(one, i, row)
        return [r for rs in results for r in rs]

    def process(self, inputs: StepInput) -> Iterator[list[Row]]:
        """The task used alone, as in distilabel: ``task.load()``, then
        ``next(task.process(rows))`` gives the rows with the task's columns.

        The rows' calls run concurrently on a private event loop, and the LLM's async resources
        are closed before the batch is yielded. A row that fails follows ``on_error`` as in a
        run: null outputs and the error in ``synthflow_error``, dropped, or raised. (In a
        pipeline the engine calls ``process_row`` per row instead, with no batch barrier.)"""

        async def batch() -> list[Row]:
            try:
                return await self.process_rows(inputs)
            finally:
                await self.llm.aclose()

        kept, _ = settle_failures(self, run_sync(batch), dict.fromkeys(self.outputs))
        yield kept


def _kept_raw(raw: Any) -> bool:
    """Whether the LLM kept a response body (``include_raw=True``): one, or a list of them."""
    if isinstance(raw, list):
        return any(item is not None for item in raw)
    return raw is not None
