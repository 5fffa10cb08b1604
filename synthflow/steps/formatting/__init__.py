"""Steps that shape generations for training: SFT and DPO rows, conversations, truncation.

The SFT and DPO formats are the chat-style rows that fine-tuning frameworks (TRL, axolotl,
alignment-handbook) read: ``prompt``, ``prompt_id`` (the SHA-256 of the prompt, in hex) and
``messages``, or ``chosen`` / ``rejected`` conversations with their ratings.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from typing import Any

from pydantic import Field, PrivateAttr

from synthflow.steps._rows import column, list_column
from synthflow.steps.base import Row, Step, StepInput

Message = dict[str, Any]

_DPO_OUTPUTS = [
    "prompt",
    "prompt_id",
    "chosen",
    "chosen_model",
    "chosen_rating",
    "rejected",
    "rejected_model",
    "rejected_rating",
]


def _prompt_id(prompt: Any) -> str | None:
    return hashlib.sha256(prompt.encode("utf-8")).hexdigest() if isinstance(prompt, str) else None


def _system_then_user(row: Row, instruction: Any) -> list[Message]:
    system = row.get("system_prompt")  # used only when it is a non-empty text, as in distilabel
    messages: list[Message] = [{"role": "system", "content": system}] if system else []
    if not isinstance(system, str):
        messages = []
    messages.append({"role": "user", "content": instruction})
    return messages


def _first_user_message(step: str, row: Row) -> Any:
    messages = list_column(step, row, "messages")
    for turn in messages:
        if not isinstance(turn, dict):
            raise ValueError(
                f"{step}: column 'messages' must hold a list of {{'role', 'content'}} dicts, "
                f"got an item of type {type(turn).__name__}"
            )
        if turn.get("role") == "user":
            return turn.get("content")
    return None


class FormatTextGenerationSFT(Step):
    """Formats an instruction and its generation (``TextGeneration``'s columns) as an SFT
    conversation: the optional system prompt, the instruction as the user's turn and the
    generation as the assistant's.

    Input columns: ``instruction`` (str), ``generation`` (str); ``system_prompt`` (str) is used
    when the row has a non-empty one.
    Output columns: ``prompt`` (the instruction), ``prompt_id`` (its SHA-256), ``messages``
    (list of {"role", "content"}).
    """

    @property
    def inputs(self) -> list[str]:
        return ["instruction", "generation"]

    @property
    def optional_inputs(self) -> list[str]:
        return ["system_prompt"]

    @property
    def outputs(self) -> list[str]:
        return ["prompt", "prompt_id", "messages"]

    def process(self, inputs: StepInput) -> Iterator[list[Row]]:
        for row in inputs:
            instruction = column(type(self).__name__, row, "instruction")
            generation = column(type(self).__name__, row, "generation")
            row["prompt"] = instruction
            row["prompt_id"] = _prompt_id(instruction)
            row["messages"] = [
                *_system_then_user(row, instruction),
                {"role": "assistant", "content": generation},
            ]
        yield inputs


class FormatChatGenerationSFT(Step):
    """Formats a conversation and its next turn (``ChatGeneration``'s columns) as an SFT
    conversation: the generation is appended to ``messages`` as the assistant's turn.

    Input columns: ``messages`` (list of {"role", "content"}), ``generation`` (str).
    Output columns: ``prompt`` (the first user message), ``prompt_id`` (its SHA-256),
    ``messages`` (the conversation with the generation appended).
    """

    @property
    def inputs(self) -> list[str]:
        return ["messages", "generation"]

    @property
    def outputs(self) -> list[str]:
        return ["prompt", "prompt_id", "messages"]

    def process(self, inputs: StepInput) -> Iterator[list[Row]]:
        name = type(self).__name__
        for row in inputs:
            prompt = _first_user_message(name, row)
            generation = column(name, row, "generation")
            row["prompt"] = prompt
            row["prompt_id"] = _prompt_id(prompt)
            row["messages"] = [*row["messages"], {"role": "assistant", "content": generation}]
        yield inputs


def _chosen_and_rejected(step: str, row: Row) -> tuple[int, int] | None:
    """The indices of the best and the worst rated generation: the first of equal ratings, as
    distilabel picks them (so with all ratings equal both are the first generation). Null
    ratings (a judge that failed on that generation) are left out; None if none is left."""
    generations = list_column(step, row, "generations")
    ratings = column(step, row, "ratings")
    if ratings is None:
        return None
    ratings = list_column(step, row, "ratings")
    if len(ratings) > len(generations):
        raise ValueError(
            f"{step}: 'ratings' holds {len(ratings)} values for {len(generations)} "
            "'generations'; give one rating per generation"
        )
    rated = [(i, r) for i, r in enumerate(ratings) if r is not None]
    if not rated:
        return None
    best = max(rated, key=lambda pair: pair[1])[0]
    worst = min(rated, key=lambda pair: pair[1])[0]
    return best, worst


def _format_dpo(step: str, row: Row, prompt: Any, conversation: list[Message]) -> None:
    row["prompt"] = prompt
    row["prompt_id"] = _prompt_id(prompt)
    picked = _chosen_and_rejected(step, row)
    models = row.get("generation_models")
    for side, index in zip(("chosen", "rejected"), picked or (None, None), strict=True):
        if index is None:
            row[side] = row[f"{side}_rating"] = row[f"{side}_model"] = None
            continue
        answer = {"role": "assistant", "content": row["generations"][index]}
        row[side] = [*conversation, answer]
        row[f"{side}_rating"] = row["ratings"][index]
        row[f"{side}_model"] = (
            models[index] if isinstance(models, list) and index < len(models) else None
        )


class FormatTextGenerationDPO(Step):
    """Formats an instruction, its generations and their ratings (``TextGeneration`` grouped,
    then a judge such as ``UltraFeedback``) as a DPO pair: the best rated generation is
    ``chosen``, the worst ``rejected``.

    Ties go to the first generation among the equal ratings, as in distilabel (all ratings
    equal: chosen and rejected are both the first). Null ratings are left out of the choice; a
    row with no rating at all gets null ``chosen``/``rejected`` columns.

    Input columns: ``instruction`` (str), ``generations`` (list of str), ``ratings`` (list of
    numbers); ``system_prompt`` (str) and ``generation_models`` (list of str) are used when
    present.
    Output columns: ``prompt``, ``prompt_id`` (SHA-256 of the prompt), ``chosen`` and
    ``rejected`` (conversations), ``chosen_rating``, ``rejected_rating``, ``chosen_model`` and
    ``rejected_model`` (null without ``generation_models``).
    """

    @property
    def inputs(self) -> list[str]:
        return ["instruction", "generations", "ratings"]

    @property
    def optional_inputs(self) -> list[str]:
        return ["system_prompt", "generation_models"]

    @property
    def outputs(self) -> list[str]:
        return list(_DPO_OUTPUTS)

    def process(self, inputs: StepInput) -> Iterator[list[Row]]:
        name = type(self).__name__
        for row in inputs:
            instruction = column(name, row, "instruction")
            _format_dpo(name, row, instruction, _system_then_user(row, instruction))
        yield inputs


class FormatChatGenerationDPO(Step):
    """Formats a conversation, its candidate next turns and their ratings (``ChatGeneration``
    grouped, then a judge) as a DPO pair: ``chosen`` and ``rejected`` are the conversation
    followed by the best and by the worst rated generation. Ties and null ratings are handled
    as in ``FormatTextGenerationDPO``.

    Input columns: ``messages`` (list of {"role", "content"}), ``generations`` (list of str),
    ``ratings`` (list of numbers); ``generation_models`` (list of str) when present.
    Output columns: ``prompt`` (the first user message), ``prompt_id``, ``chosen``,
    ``rejected``, ``chosen_rating``, ``rejected_rating``, ``chosen_model``, ``rejected_model``.
    """

    @property
    def inputs(self) -> list[str]:
        return ["messages", "generations", "ratings"]

    @property
    def optional_inputs(self) -> list[str]:
        return ["generation_models"]

    @property
    def outputs(self) -> list[str]:
        return list(_DPO_OUTPUTS)

    def process(self, inputs: StepInput) -> Iterator[list[Row]]:
        name = type(self).__name__
        for row in inputs:
            prompt = _first_user_message(name, row)
            _format_dpo(name, row, prompt, list(row["messages"]))
        yield inputs


class ConversationTemplate(Step):
    """Makes a two-turn conversation of an instruction and its response.

    Input columns: ``instruction`` (str), ``response`` (str).
    Output columns: ``conversation`` (the user's turn, then the assistant's).
    """

    @property
    def inputs(self) -> list[str]:
        return ["instruction", "response"]

    @property
    def outputs(self) -> list[str]:
        return ["conversation"]

    def process(self, inputs: StepInput) -> Iterator[list[Row]]:
        name = type(self).__name__
        for row in inputs:
            row["conversation"] = [
                {"role": "user", "content": column(name, row, "instruction")},
                {"role": "assistant", "content": column(name, row, "response")},
            ]
        yield inputs


class TruncateTextColumn(Step):
    """Cuts the text in ``column`` to at most ``max_length`` characters or, with a
    ``tokenizer``, ``max_length`` tokens (needs ``transformers``: ``pip install
    transformers``). Null values stay null.

    Input columns: ``column`` (str). Output columns: ``column``, truncated.

    Fields: ``column`` (default "text"), ``max_length`` (default 8192), ``tokenizer`` (a
    Hugging Face tokenizer name or local path; default none: count characters).
    """

    column: str = Field(default="text", description="The column to truncate.")
    max_length: int = Field(
        default=8192, ge=0, description="Most characters, or tokens with a tokenizer, to keep."
    )
    tokenizer: str | None = Field(
        default=None,
        description="Tokenizer to count tokens with (name or path); default: count characters.",
    )

    _tokenizer: Any = PrivateAttr(default=None)

    @property
    def inputs(self) -> list[str]:
        return [self.column]

    @property
    def outputs(self) -> list[str]:
        return [self.column]

    def load(self) -> None:
        if self.tokenizer is None or self._tokenizer is not None:
            return
        try:
            from transformers import AutoTokenizer
        except ImportError:
            raise ImportError(
                "TruncateTextColumn with a tokenizer needs transformers: pip install "
                "transformers (or leave tokenizer unset to truncate by characters)"
            ) from None
        self._tokenizer = AutoTokenizer.from_pretrained(self.tokenizer)

    def unload(self) -> None:
        self._tokenizer = None

    def _truncated(self, text: str) -> str:
        if self.tokenizer is None:
            return text[: self.max_length]
        ids = self._tokenizer.encode(
            text, add_special_tokens=False, truncation=True, max_length=self.max_length
        )
        return str(self._tokenizer.decode(ids))

    def process(self, inputs: StepInput) -> Iterator[list[Row]]:
        self.load()  # once; a no-op after the engine's load()
        for row in inputs:
            text = column(type(self).__name__, row, self.column)
            if text is None:
                continue
            if not isinstance(text, str):
                raise ValueError(
                    f"TruncateTextColumn: column {self.column!r} must hold text, got "
                    f"{type(text).__name__}"
                )
            row[self.column] = self._truncated(text)
        yield inputs
