"""Magpie: instructions and conversations that an aligned model writes from its own chat template.

From Xu, Jiang, Niu, Deng, Poovendran, Choi and Lin, "Magpie: Alignment Data Synthesis from
Scratch by Prompting Aligned LLMs with Nothing" (arXiv:2406.08464). An instruction-tuned model
given only the start of a user turn (the pre-query template) as raw text continues it with a
plausible user request; asked again as a chat, it answers that request. Repeating the two steps
gives a multi-turn conversation. The raw completion happens in the LLM layer
(``synthflow.models.llms.magpie``): ``ClientvLLM``, ``InferenceEndpointsLLM`` and the local
models do it; a chat-only client is refused when the task is built.
"""

from __future__ import annotations

import math
import random
from collections.abc import AsyncGenerator, Callable
from typing import Any, ClassVar, Self

from pydantic import Field, PositiveInt, field_validator, model_validator

from synthflow.errors import (
    OutputParseError,
    PipelineValidationError,
)
from synthflow.models.llms.base import ChatType, GenerateOutput, Usage
from synthflow.models.llms.magpie import END_OF_TURN_MARKERS, magpie_problem
from synthflow.runtime_parameters import GIVEN_LATER, RuntimeParameter
from synthflow.steps.base import FAILED, ROW_ID, Row
from synthflow.steps.tasks.base import Task
from synthflow.steps.tasks.generator_task import GeneratorTask

MULTI_TURN_SYSTEM_PROMPT = (
    "You are an AI assistant talking with a user over several rounds. The user opens with a "
    "question and then asks follow-up questions on the same subject. Answer each one in full, "
    "accurately, and in a way that moves the user's goal forward."
)
"""The system prompt of a multi-turn conversation when none is given, as the paper's multi-turn
extension uses one so that the model keeps asking follow-ups (written for synthflow)."""

SystemPrompts = str | list[str] | dict[str, str] | dict[str, tuple[str, float]]

_ASSISTANT_HEADERS = ("<|start_header_id|>assistant", "<|im_start|>assistant")


def clean_turn(text: str | None, who: str) -> str:
    """The text of one written turn: up to the first end-of-turn marker or assistant header
    (a server that returns special tokens as text), stripped. Raises ``OutputParseError`` when
    nothing is left."""
    if text is None:
        raise OutputParseError(f"the model wrote no {who}")
    cut = len(text)
    for marker in (*END_OF_TURN_MARKERS, *_ASSISTANT_HEADERS):
        at = text.find(marker)
        if at >= 0:
            cut = min(cut, at)
    cleaned = text[:cut].strip()
    if not cleaned:
        raise OutputParseError(f"the model wrote an empty {who}")
    return cleaned


class _MagpieBase(Task):
    """The fields and the conversation loop that ``Magpie`` and ``MagpieGenerator`` share."""

    n_turns: RuntimeParameter[PositiveInt] = Field(
        default=1,
        description="User turns in each conversation (each answered, but the last "
        "with end_with_user).",
    )
    end_with_user: RuntimeParameter[bool] = Field(
        default=False, description="End each conversation with a user turn, left unanswered."
    )
    include_system_prompt: RuntimeParameter[bool] = Field(
        default=False, description="Keep the system prompt as the first message of 'conversation'."
    )
    only_instruction: RuntimeParameter[bool] = Field(
        default=False,
        description="Write only the first user turn, as 'instruction' (n_turns is not used).",
    )
    system_prompt: RuntimeParameter[SystemPrompts | None] = Field(
        default=None,
        description="A system prompt that steers the topics; a list to draw one from per row; "
        "a dict of them by name (the name goes in 'system_prompt_key'), with a probability each "
        "as {name: (prompt, probability)}. A row's own 'system_prompt' column wins.",
    )

    @field_validator("system_prompt")
    @classmethod
    def _check_system_prompts(cls, value: SystemPrompts | None) -> SystemPrompts | None:
        if isinstance(value, list) and not value:
            raise ValueError("system_prompt is an empty list: give at least one prompt, or None")
        if isinstance(value, dict):
            if not value:
                raise ValueError("system_prompt is an empty dict: give at least one prompt")
            # (a dict that mixes prompts with and without a probability fits neither type)
            weighted = [v for v in value.values() if isinstance(v, tuple | list)]
            weights = [float(v[1]) for v in weighted]
            if weights and (min(weights) < 0 or not math.isclose(sum(weights), 1.0)):
                raise ValueError(
                    f"system_prompt's probabilities add up to {sum(weights):g}: they must be "
                    "non-negative and add up to 1"
                )
        return value

    @model_validator(mode="after")
    def _llm_writes_user_turns(self) -> Self:
        problem = magpie_problem(self.llm)
        if problem is not None:
            # Not a ValueError, which pydantic would wrap in a multi-line ValidationError: the
            # pipeline can't be built, and one line says why and what to use instead.
            raise PipelineValidationError(f"{type(self).__name__}: {problem}")
        return self

    @property
    def outputs(self) -> list[str]:
        if self.only_instruction:
            columns = ["instruction"]
        elif self.n_turns == 1:
            columns = ["instruction", "response"]
        else:
            columns = ["conversation"]
        if isinstance(self.system_prompt, dict):
            columns.append("system_prompt_key")
        columns.append("model_name")
        return columns

    def format_input(self, row: Row) -> ChatType:
        """The conversation the first user turn is written after: the system prompt, if any."""
        system, _ = self._system_prompt(row, row)
        return [] if system is None else [{"role": "system", "content": system}]

    def format_output(self, output: str | None, row: Row) -> dict[str, Any]:
        """The columns for a first user turn alone (the others come from further calls)."""
        instruction = clean_turn(output, "instruction")
        if self.only_instruction or self.n_turns == 1:
            return {"instruction": instruction}
        return {"conversation": [{"role": "user", "content": instruction}]}

    def _system_prompt(self, row: Row, owner: Row) -> tuple[str | None, str | None]:
        """The row's system prompt, and its name when drawn from a dict. Draws are seeded by
        ``owner``'s lineage id, so a re-run draws the same ones (and hits the response cache)."""
        own = row.get("system_prompt")
        if isinstance(own, str) and own:
            return own, None
        prompts = self.system_prompt
        if prompts is None:
            return (MULTI_TURN_SYSTEM_PROMPT if self._turns() > 1 else None), None
        if isinstance(prompts, str):
            return prompts, None
        lineage = owner.get(ROW_ID)
        # A row used outside a pipeline has no lineage id: draw at random.
        rng = random.Random(None if lineage is None else f"{self.name}\x00{lineage}")
        if isinstance(prompts, list):
            return rng.choice(prompts), None
        names = list(prompts)
        values = list(prompts.values())
        if isinstance(values[0], tuple | list):
            weights = [float(v[1]) for v in values]
            name = rng.choices(names, weights=weights, k=1)[0]
            chosen = prompts[name]
            return str(chosen[0] if isinstance(chosen, tuple | list) else chosen), name
        name = rng.choice(names)
        return str(prompts[name]), name

    def _turns(self) -> int:
        return 1 if self.only_instruction else self.n_turns

    async def _write(self, row: Row, owner: Row) -> Row:
        """``row`` with the task's columns: its conversation written turn by turn (the calls on
        behalf of ``owner``, whose lineage id keys them in the response cache). A turn that
        can't be read fails the row."""
        system, key = self._system_prompt(row, owner)
        conversation: ChatType = [] if system is None else [{"role": "system", "content": system}]
        usage = Usage()
        text: str | None = None
        columns: dict[str, Any]
        try:
            for turn in range(self._turns()):
                result = await self.generate_messages(conversation, owner, user_turn=True)
                usage += result.usage
                text = _only(result)
                conversation.append({"role": "user", "content": clean_turn(text, "user turn")})
                if self.only_instruction or (turn == self.n_turns - 1 and self.end_with_user):
                    break
                result = await self.generate_messages(conversation, owner)
                usage += result.usage
                text = _only(result)
                answer = clean_turn(text, "assistant answer")
                conversation.append({"role": "assistant", "content": answer})
        except OutputParseError as exc:
            row[FAILED] = f"{type(exc).__name__}: {exc}"
            columns = dict.fromkeys(c for c in self.outputs if c != "model_name")
            unreadable = text
        else:
            columns, unreadable = self._columns(conversation, system is not None), None
        if isinstance(self.system_prompt, dict):  # None where the row brought its own
            columns["system_prompt_key"] = key
        return self._finish(row, columns, usage, unreadable=unreadable)

    def _columns(self, conversation: ChatType, has_system: bool) -> dict[str, Any]:
        turns = conversation[1:] if has_system else conversation
        if self.only_instruction:
            return {"instruction": turns[0]["content"]}
        if self.n_turns == 1 and len(turns) == 2:
            return {"instruction": turns[0]["content"], "response": turns[1]["content"]}
        if self.n_turns == 1:  # end_with_user: the instruction, unanswered
            return {"instruction": turns[0]["content"], "response": None}
        return {"conversation": conversation if self.include_system_prompt else turns}


def _only(result: GenerateOutput) -> str | None:
    return result.generations[0] if result.generations else None


class Magpie(_MagpieBase):
    """Writes an instruction and its answer, or a conversation of ``n_turns`` rounds, per row,
    with Magpie: the LLM writes each user turn by completing its own chat template's pre-query
    template as raw text, then answers it as a chat.

    From Xu, Jiang, Niu, Deng, Poovendran, Choi and Lin, "Magpie: Alignment Data Synthesis from
    Scratch by Prompting Aligned LLMs with Nothing" (arXiv:2406.08464). The LLM needs raw
    completion and ``magpie_pre_query_template`` ('llama3', 'qwen2' or the template's text):
    ``ClientvLLM`` (vLLM, TGI, llama.cpp or any OpenAI-compatible server's ``/completions``),
    ``InferenceEndpointsLLM`` (TGI's raw route), or a local ``TransformersLLM``, ``vLLM`` or
    ``MlxLLM``; a chat-only client
    (``OpenAILLM``, ``AnthropicLLM``, ...) is refused when the task is built. Sample (a
    temperature above 0): every row starts from the same prompt. ``num_generations`` is not
    used: each row gets one conversation.

    Input columns:
        - system_prompt (str, optional): the row's system prompt, which wins over the field.

    Output columns:
        - instruction (str): the first user turn (``only_instruction=True`` or ``n_turns=1``).
        - response (str): its answer (``n_turns=1``, unless ``only_instruction``).
        - conversation (list of {"role", "content"}): the turns, ``n_turns > 1``; the system
          prompt first with ``include_system_prompt``.
        - system_prompt_key (str): the name of the system prompt drawn (``system_prompt`` a dict).
        - model_name (str): the model that wrote them.

    Runtime parameters:
        - n_turns: the user turns per conversation (default 1).
        - end_with_user: end on a user turn, left unanswered (default False).
        - include_system_prompt: keep the system prompt in ``conversation`` (default False).
        - only_instruction: write only the first user turn (default False).
        - system_prompt: a prompt, a list to draw from per row, or a dict by name (with
          probabilities as ``{name: (prompt, p)}``); draws are seeded by the row's lineage id.
          With several turns and no system prompt, one asking for follow-up questions is used.

    A turn is read up to the first end-of-turn marker (``<|eot_id|>``, ``<|im_end|>``, ...) or
    assistant header, and stripped; an empty turn fails the row (outputs null, the text kept in
    ``raw_output_<task>``).
    """

    @property
    def inputs(self) -> list[str]:
        return []

    @property
    def optional_inputs(self) -> list[str]:
        return ["system_prompt"]

    async def process_row(self, row: Row) -> list[Row]:
        return [await self._write(row, row)]


class MagpieGenerator(GeneratorTask, _MagpieBase):
    """A source of ``num_rows`` instructions with answers, or conversations, written with
    Magpie: the LLM writes each user turn by completing its own chat template's pre-query
    template as raw text, then answers it as a chat.

    From Xu, Jiang, Niu, Deng, Poovendran, Choi and Lin, "Magpie: Alignment Data Synthesis from
    Scratch by Prompting Aligned LLMs with Nothing" (arXiv:2406.08464). Everything is as in
    ``Magpie``, with no input; rows are written ``concurrency`` at a time and come out in order.

    Output columns:
        - instruction (str): the first user turn (``only_instruction=True`` or ``n_turns=1``).
        - response (str): its answer (``n_turns=1``, unless ``only_instruction``).
        - conversation (list of {"role", "content"}): the turns, ``n_turns > 1``; the system
          prompt first with ``include_system_prompt``.
        - system_prompt_key (str): the name of the system prompt drawn (``system_prompt`` a dict).
        - model_name (str): the model that wrote them.

    Runtime parameters:
        - num_rows: how many rows to write (required).
        - n_turns: the user turns per conversation (default 1).
        - end_with_user: end on a user turn, left unanswered (default False).
        - include_system_prompt: keep the system prompt in ``conversation`` (default False).
        - only_instruction: write only the first user turn (default False).
        - system_prompt: a prompt, a list to draw from per row, or a dict by name (with
          probabilities as ``{name: (prompt, p)}``); draws are seeded by the row number.
    """

    num_rows: RuntimeParameter[int] = Field(
        default=GIVEN_LATER, ge=1, description="How many rows to write."
    )

    makes_rows_by_id: ClassVar[bool] = True  # each row is seeded by its number alone

    def process(  # type: ignore[override]
        self, offset: int = 0, wanted: Callable[[int], bool] | None = None
    ) -> AsyncGenerator[list[Row]]:
        # Rows are independent: a resumed run starts at row ``offset``, a shard makes its own.
        return self._rows_by_slot(self._row, offset, self.num_rows, wanted)

    async def _row(self, slot: int) -> Row:
        # Each row's samples are its own in the response cache.
        return await self._write({}, {ROW_ID: slot})
