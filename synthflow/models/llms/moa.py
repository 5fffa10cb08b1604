"""MixtureOfAgentsLLM: several proposer LLMs answer, in rounds, and an aggregator writes the answer.

From Wang, Wang, Athiwaratkun, Zhang and Zou, "Mixture-of-Agents Enhances Large Language Model
Capabilities" (arXiv:2406.04692). In each round (a layer, in the paper) every proposer answers the
conversation, shown the previous round's answers as references; the aggregator then answers it
with the last round's answers as references. The paper's finding is that models answer better
when shown others' answers, even weaker ones ("collaborativeness").
"""

from __future__ import annotations

from typing import ClassVar, TypedDict

import anyio
from pydantic import Field

from synthflow.errors import LLMError, first_error
from synthflow.models.llms.base import LLM, CacheIdentity, ChatType, GenerateOutput, Usage

AGGREGATE_PROMPT = (
    "Below are answers that several AI assistants gave to the latest request in this "
    "conversation. Use them as material, not as authority: some may be wrong, partial or "
    "biased. Weigh them against each other and against what you know, keep what is correct, "
    "fix what is not, and write one answer of your own that is accurate, complete and well "
    "organised. Don't mention that you were shown other answers.\n\n"
    "The answers:"
)
"""The aggregate-and-synthesize instruction, written for synthflow from the paper's method."""


def with_references(messages: ChatType, references: list[str]) -> ChatType:
    """``messages`` with the reference answers in the system message (a new one first, or
    after the text of the conversation's own)."""
    if not references:
        return messages
    numbered = "\n\n".join(f"{i}. {text}" for i, text in enumerate(references, 1))
    block = f"{AGGREGATE_PROMPT}\n\n{numbered}"
    if messages and messages[0].get("role") == "system":
        first = messages[0]
        return [{**first, "content": f"{first.get('content') or ''}\n\n{block}"}, *messages[1:]]
    return [{"role": "system", "content": block}, *messages]


class MixtureOfAgentsGenerationKwargs(TypedDict, total=False):
    """None: each proposer and the aggregator keep their own ``generation_kwargs``."""


class MixtureOfAgentsLLM(LLM):
    """Mixture-of-Agents (Wang et al., arXiv:2406.04692) as one LLM: ``proposers_llms`` answer
    for ``rounds`` rounds, each round shown the previous round's answers as references, then
    ``aggregator_llm`` answers with the last round's answers as references
    (``AGGREGATE_PROMPT``, in the system message).

    Each LLM keeps its own ``generation_kwargs`` (this one's are not used). The proposers of a
    round run concurrently; one that fails is left out of the references (the call fails only
    when all of them do). A call's usage is the sum of every call it made, and ``model_name``
    is ``moa-<aggregator>-<proposer>-...``. It counts as billed: a ``max_cost`` budget needs a
    price for that name (or budget with ``max_tokens``, which counts every inner call).
    """

    generation_kwargs_spec: ClassVar[type | None] = MixtureOfAgentsGenerationKwargs

    billed: ClassVar[bool] = True

    aggregator_llm: LLM = Field(description="The LLM that writes the answer from the proposals.")
    proposers_llms: list[LLM] = Field(
        default_factory=list, description="The LLMs whose answers the aggregator is shown."
    )
    rounds: int = Field(default=1, ge=1, description="Rounds (layers) of proposals.")

    @property
    def model_name(self) -> str:
        names = "-".join(llm.model_name for llm in self.proposers_llms)
        return f"moa-{self.aggregator_llm.model_name}-{names}"

    def cache_identity(self) -> CacheIdentity:
        parts = [self.aggregator_llm, *self.proposers_llms]
        return CacheIdentity(
            "mixture-of-agents",
            self.model_name,
            {"rounds": self.rounds, "llms": [list(llm.cache_identity()) for llm in parts]},
            None,
        )

    def load(self) -> None:
        for llm in [*self.proposers_llms, self.aggregator_llm]:
            llm.load()

    def unload(self) -> None:
        for llm in [*self.proposers_llms, self.aggregator_llm]:
            llm.unload()

    async def aclose(self) -> None:
        for llm in [*self.proposers_llms, self.aggregator_llm]:
            await llm.aclose()

    async def agenerate(self, messages: ChatType, *, num_generations: int = 1) -> GenerateOutput:
        usage, retries, rate_limited = Usage(), 0, 0
        references: list[str] = []
        for _ in range(self.rounds if self.proposers_llms else 0):
            outputs = await self._propose(with_references(messages, references))
            for output in outputs:
                if isinstance(output, GenerateOutput):
                    usage += output.usage
                    retries += output.retries
                    rate_limited += output.rate_limited
            answers = [o for o in outputs if isinstance(o, GenerateOutput)]
            if not answers:
                failure = next(o for o in outputs if isinstance(o, BaseException))
                raise failure
            references = [text for o in answers for text in o.generations[:1] if text]
        final = await self.aggregator_llm.agenerate(
            with_references(messages, references), num_generations=num_generations
        )
        final.usage = final.usage + usage
        final.retries += retries
        final.rate_limited += rate_limited
        return final

    async def _propose(self, messages: ChatType) -> list[GenerateOutput | BaseException]:
        """Every proposer's answer, or its error (an ``LLMError``: left out of the references)."""
        results: list[GenerateOutput | BaseException] = [
            LLMError("no answer") for _ in self.proposers_llms
        ]

        async def one(i: int, llm: LLM) -> None:
            try:
                results[i] = await llm.agenerate(messages, num_generations=1)
            except LLMError as exc:
                if exc.fatal:
                    raise
                results[i] = exc

        try:
            async with anyio.create_task_group() as tg:
                for i, llm in enumerate(self.proposers_llms):
                    tg.start_soon(one, i, llm)
        except BaseExceptionGroup as group:
            failure = first_error(group)
            raise failure from failure.__cause__
        return results
