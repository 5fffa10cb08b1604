"""APIEmbeddings: the base of every embedding model reached over HTTP.

A provider module gives a private ``APILLM`` subclass (the "wire") that builds one request from
a list of texts and reads the vectors back into ``GenerateOutput.raw``: requests then take the
LLM clients' call path (the endpoint's shared rate limiter, retries with backoff, one-line
errors, and a stop on configuration mistakes: an unreachable endpoint, a refused key, an
unknown model). In a run, ``EmbeddingGeneration`` sends every call through the run's response
cache and accounting (``synthflow.models.callpath.calls``), as a task does with its LLM.
"""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any, ClassVar

import anyio
from pydantic import Field, PrivateAttr, SecretStr

from synthflow.errors import LLMError, LLMResponseError, first_error
from synthflow.models.embeddings.base import (
    Embeddings,
    EmbeddingsIdentity,
    EncodeOutput,
    Vector,
)
from synthflow.models.llms.api import APILLM
from synthflow.models.llms.base import GenerateOutput, Usage
from synthflow.runtime_parameters import RuntimeParameter

if TYPE_CHECKING:
    from synthflow.audit import Exposure


class APIEmbeddings(Embeddings):
    """Shared configuration and request splitting of HTTP embedding clients.

    A call with more than ``max_inputs_per_request`` texts is split into several requests, sent
    concurrently under the endpoint's limiter; the vectors come back in input order.
    """

    cacheable: ClassVar[bool] = True
    billed: ClassVar[bool] = True

    model: str = Field(description="The embedding model to call.")
    base_url: str | None = Field(
        default=None, description="The endpoint's base URL; the provider's default when unset."
    )
    api_key: SecretStr | None = Field(
        default=None, exclude=True, description="API key; the provider's variable when unset."
    )
    max_inputs_per_request: RuntimeParameter[int] = Field(
        default=512, ge=1, description="Texts sent in one request at most."
    )
    timeout: RuntimeParameter[float] = Field(
        default=120.0, gt=0, description="Seconds before one request times out."
    )
    max_retries: RuntimeParameter[int] = Field(
        default=5, ge=0, description="Retries after a 429, 5xx, timeout or connection error."
    )
    retry_backoff: RuntimeParameter[float] = Field(
        default=1.0, ge=0, description="Seconds before the first retry (doubling, with jitter)."
    )
    max_concurrency: RuntimeParameter[int | None] = Field(
        default=None, ge=1, description="Requests in flight to this endpoint, across steps."
    )
    requests_per_minute: RuntimeParameter[float | None] = Field(
        default=None, gt=0, description="Request budget per minute for this endpoint and key."
    )
    tokens_per_minute: RuntimeParameter[float | None] = Field(
        default=None, gt=0, description="Token budget per minute for this endpoint and key."
    )

    _usage: Usage = PrivateAttr(default_factory=Usage)

    @property
    def model_name(self) -> str:
        return self.model

    @property
    def usage(self) -> Usage:
        """Tokens the endpoint reported for every call of this object so far."""
        return self._usage

    @abstractmethod
    def _wire(self) -> APILLM:
        """A fresh client of the embeddings route, configured as this model."""

    def encoding_settings(self) -> dict[str, Any]:
        """Settings sent with the texts that change the vectors (the cache keys on them)."""
        return {}

    def cache_identity(self) -> EmbeddingsIdentity:
        wire = self._wire()
        return EmbeddingsIdentity(
            f"{wire.provider}-embeddings", self.model_name, self.encoding_settings(), wire.endpoint
        )

    def load(self) -> None:
        self._wire().load()  # the same checks as an LLM client: a base URL, a key if needed

    def exposures(self, where: str) -> Iterator[Exposure]:
        """The endpoint it calls and where its key comes from (``synthflow.audit``)."""
        return self._wire().exposures(where)

    async def aencode(self, inputs: Sequence[str]) -> list[Vector]:
        return (await self.aencode_counted(inputs)).vectors

    async def aencode_counted(self, inputs: Sequence[str]) -> EncodeOutput:
        texts = list(inputs)
        if not texts:
            return EncodeOutput([], requests=0)
        size = self.max_inputs_per_request
        chunks = [texts[i : i + size] for i in range(0, len(texts), size)]
        outputs: list[GenerateOutput | None] = [None] * len(chunks)
        # One HTTP client per call, closed when it ends: a client belongs to the event loop
        # that made it, and the call may be the only one this loop makes (``encode``).
        wire = self._wire()

        async def one(i: int) -> None:
            output = await wire.agenerate([{"role": "user", "content": t} for t in chunks[i]])
            if len(output.raw) != len(chunks[i]):
                raise LLMResponseError(
                    f"the endpoint returned {len(output.raw)} embeddings for {len(chunks[i])} "
                    "inputs"
                )
            self._usage = self._usage + output.usage
            outputs[i] = output

        try:
            async with anyio.create_task_group() as tg:
                for i in range(len(chunks)):
                    tg.start_soon(one, i)
        except BaseExceptionGroup as group:  # the request that failed, alone
            failure = first_error(group)
            if isinstance(failure, LLMError):  # what the requests that came back cost
                done = [out for out in outputs if out is not None]
                spent = sum((out.usage for out in done), Usage())
                failure.usage = spent + (failure.usage or Usage())
                failure.retries += sum(out.retries for out in done)
                failure.rate_limited += sum(out.rate_limited for out in done)
            raise failure from failure.__cause__
        finally:
            await wire.aclose()
        done = [out for out in outputs if out is not None]
        return EncodeOutput(
            vectors=[vector for out in done for vector in out.raw],
            input_tokens=sum(out.usage.input_tokens for out in done),
            requests=len(done),
            retries=sum(out.retries for out in done),
            rate_limited=sum(out.rate_limited for out in done),
        )


def read_vector(value: Any) -> Vector:
    """One embedding from a response body: a list of numbers, as floats."""
    if not isinstance(value, list) or not all(
        isinstance(x, int | float) and not isinstance(x, bool) for x in value
    ):
        raise TypeError("an embedding is not a list of numbers (base64 encoding?)")
    return [float(x) for x in value]


def vectors_output(vectors: list[Vector], input_tokens: int = 0) -> GenerateOutput:
    """A wire's ``parse_response`` result: the vectors in ``raw``, and one placeholder
    generation, since the chat call path checks that every asked-for generation has text."""
    return GenerateOutput(generations=[""], usage=Usage(input_tokens, 0), raw=vectors)
