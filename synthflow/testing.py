"""Test doubles for users' own tests: LLMs that need no network and no keys.

- ``OfflineLLM``: deterministic answers after a settable latency (re-exported from llms).
- ``FunctionLLM``: answers with whatever a plain function returns, sync or async, so a test can
  script failures, delays and content per conversation.

Both take ``structured_output``: ``OfflineLLM`` answers with JSON that follows the schema;
``FunctionLLM``'s answers are checked against it, and a bad one is re-asked of the function
with the error, as a real endpoint would be.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any, ClassVar

from pydantic import Field

from synthflow.models.callpath.structured import StructuredOutputLLM
from synthflow.models.llms.base import ChatType, GenerateOutput, Usage
from synthflow.models.llms.generation_kwargs import CommonGenerationKwargs
from synthflow.models.llms.magpie import UserTurnWriter
from synthflow.models.llms.offline import OfflineLLM


class FunctionLLM(StructuredOutputLLM, UserTurnWriter):
    """An LLM scripted by ``fn(messages)``: it gets the conversation (a list of ``{"role",
    "content"}`` dicts) and returns the answer text, ``None`` for no answer, or a list with
    one text per generation; ``fn`` may be async. Raising makes the call fail, as a real
    endpoint error would. With ``structured_output``, an answer that doesn't follow the schema
    is re-asked: ``fn`` gets the conversation, its answer and the validation error. It writes
    Magpie's user turns with the same function: then ``messages`` is the conversation so far,
    which ends with a system or assistant message (or is empty)."""

    fn: Callable[..., Any] = Field(exclude=True)
    model: str = "function-llm"

    cacheable: ClassVar[bool] = False  # scripted: a re-run calls the function again
    blocking: ClassVar[bool] = True  # a plain function computes in the thread that calls it
    generation_kwargs_spec: ClassVar[type | None] = CommonGenerationKwargs

    @property
    def model_name(self) -> str:
        return self.model

    async def agenerate_user_turn(
        self, messages: ChatType, *, num_generations: int = 1
    ) -> GenerateOutput:
        return await self.agenerate(messages, num_generations=num_generations)

    async def agenerate(self, messages: ChatType, *, num_generations: int = 1) -> GenerateOutput:
        output = await self._call(messages, num_generations)
        return await self.enforce_schema(messages, output, self._call)

    async def _call(self, messages: ChatType, num_generations: int = 1) -> GenerateOutput:
        result = self.fn(messages)
        if inspect.isawaitable(result):
            result = await result
        texts: list[str | None] = (
            list(result) if isinstance(result, list) else [result] * num_generations
        )
        return GenerateOutput(generations=texts, usage=Usage())


__all__ = ["FunctionLLM", "OfflineLLM"]
