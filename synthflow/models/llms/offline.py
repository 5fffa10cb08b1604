"""An LLM that needs no network: deterministic answers after a settable latency.

It is the LLM of the examples when no endpoint is configured, and the engine's test double: its
latency is real (``anyio.sleep``), so concurrency in tests and benchmarks is real too.
"""

from __future__ import annotations

import hashlib
import random
from typing import ClassVar

import anyio
import orjson
from pydantic import Field

from synthflow.models.callpath.structured import StructuredOutputLLM, example_of
from synthflow.models.llms.base import CacheIdentity, ChatType, GenerateOutput, Usage
from synthflow.models.llms.generation_kwargs import CommonGenerationKwargs
from synthflow.models.llms.magpie import UserTurnWriter
from synthflow.runtime_parameters import RuntimeParameter


class OfflineLLM(StructuredOutputLLM, UserTurnWriter):
    """Answers every conversation with a deterministic text, after ``latency`` seconds.

    The same messages, seed and generation index always give the same text. ``jitter`` adds a
    deterministic pseudo-random delay in ``[0, jitter)`` per call, so rows finish out of order.
    With ``structured_output``, every answer is a JSON value that follows the schema.
    It takes the portable generation kwargs (``CommonGenerationKwargs``), which change the
    text as a different seed would, so it stands in for any model while a pipeline is built.
    It writes Magpie's user turns too (``agenerate_user_turn``), as deterministic requests.
    """

    generation_kwargs_spec: ClassVar[type | None] = CommonGenerationKwargs

    model: str = "synthflow-offline"
    seed: int = 0
    latency: RuntimeParameter[float] = Field(
        default=0.0, ge=0, description="Seconds each call takes."
    )
    jitter: RuntimeParameter[float] = Field(
        default=0.0, ge=0, description="Extra random seconds per call, in [0, jitter)."
    )

    def cache_identity(self) -> CacheIdentity:
        return CacheIdentity(
            "offline", self.model, dict(self.generation_kwargs), self.structured_output
        )

    cacheable: ClassVar[bool] = False  # answers cost nothing; re-running recomputes them

    @property
    def model_name(self) -> str:
        return self.model

    def _digest(self, messages: ChatType) -> bytes:
        payload = orjson.dumps([self.seed, messages, self.generation_kwargs], default=str)
        return hashlib.blake2b(payload, digest_size=16).digest()

    async def agenerate_user_turn(
        self, messages: ChatType, *, num_generations: int = 1
    ) -> GenerateOutput:
        output = await self._answer(messages, num_generations, user_turn=True)
        return output

    async def agenerate(self, messages: ChatType, *, num_generations: int = 1) -> GenerateOutput:
        return await self._answer(messages, num_generations, user_turn=False)

    async def _answer(
        self, messages: ChatType, num_generations: int, *, user_turn: bool
    ) -> GenerateOutput:
        digest = self._digest(messages)
        delay = self.latency
        if self.jitter:
            delay += random.Random(digest).random() * self.jitter
        if delay:
            await anyio.sleep(delay)
        last = str(messages[-1].get("content", "")) if messages else ""
        prompt = last if len(last) <= 60 else last[:57] + "..."
        generations: list[str | None]
        if user_turn:
            after = f" after: {prompt}" if prompt else ""
            generations = [
                f"[{self.model} #{digest.hex()[:8]}.{i}] A request{after}"
                for i in range(num_generations)
            ]
        elif self.structured_output is not None:
            seed = int.from_bytes(digest[:4], "big")
            generations = [
                orjson.dumps(example_of(self.structured_output, seed + i)).decode()
                for i in range(num_generations)
            ]
        else:
            generations = [
                f"[{self.model} #{digest.hex()[:8]}.{i}] A response to: {prompt}"
                for i in range(num_generations)
            ]
        words_in = sum(len(str(m.get("content", "")).split()) for m in messages)
        words_out = sum(len(g.split()) for g in generations if g)
        return GenerateOutput(generations=generations, usage=Usage(words_in, words_out))
