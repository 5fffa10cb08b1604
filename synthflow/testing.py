"""Test doubles for users' own tests: LLMs that need no network and no keys.

- ``OfflineLLM``: deterministic answers after a settable latency (re-exported from llms).
- ``FunctionLLM``: answers with whatever a plain function returns, sync or async, so a test can
  script failures, delays and content per conversation.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any, ClassVar

from pydantic import Field

from synthflow.models.llms.base import LLM, ChatType, GenerateOutput, Usage
from synthflow.models.llms.magpie import UserTurnWriter
from synthflow.models.llms.offline import OfflineLLM


class FunctionLLM(LLM, UserTurnWriter):
    """An LLM scripted by ``fn(messages)``, which returns the text (or one text per
    generation). Raising makes the call fail, as a real endpoint error would. It writes
    Magpie's user turns with the same function: then ``messages`` is the conversation so far,
    which ends with a system or assistant message (or is empty)."""

    fn: Callable[..., Any] = Field(exclude=True)
    model: str = "function-llm"

    cacheable: ClassVar[bool] = False  # scripted: a re-run calls the function again

    @property
    def model_name(self) -> str:
        return self.model

    async def agenerate_user_turn(
        self, messages: ChatType, *, num_generations: int = 1
    ) -> GenerateOutput:
        return await self.agenerate(messages, num_generations=num_generations)

    async def agenerate(self, messages: ChatType, *, num_generations: int = 1) -> GenerateOutput:
        result = self.fn(messages)
        if inspect.isawaitable(result):
            result = await result
        texts: list[str | None] = (
            list(result) if isinstance(result, list) else [result] * num_generations
        )
        return GenerateOutput(generations=texts, usage=Usage())


__all__ = ["FunctionLLM", "OfflineLLM"]
