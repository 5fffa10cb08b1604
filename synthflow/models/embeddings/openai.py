"""Embeddings over HTTP from OpenAI-compatible ``POST {base_url}/embeddings`` endpoints.

OpenAI, and the servers that speak its API (vLLM, TEI's OpenAI route, llama.cpp's server,
Ollama's ``/v1``, LM Studio), answer ``{"data": [{"index", "embedding"}], "usage"}``.

Requests take the LLM clients' call path (``APILLM``): the endpoint's shared rate limiter,
retries with backoff, one-line errors, and a stop on configuration mistakes (an unreachable
endpoint, a refused key, an unknown model). A private ``OpenAILLM`` subclass speaks the
embeddings route; the vectors ride back in ``GenerateOutput.raw``.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import anyio
from pydantic import Field, PrivateAttr, SecretStr

from synthflow.audit import Exposure
from synthflow.errors import LLMResponseError, first_error
from synthflow.models.embeddings.base import Embeddings, Vector
from synthflow.models.llms.api import Payload
from synthflow.models.llms.base import ChatType, GenerateOutput, Usage
from synthflow.models.llms.openai import OpenAILLM
from synthflow.runtime_parameters import RuntimeParameter


class OpenAIEmbeddings(Embeddings):
    """Embeddings from an OpenAI-compatible ``/embeddings`` endpoint.

    ``base_url`` defaults to OpenAI's (or ``OPENAI_BASE_URL``); the key comes from ``api_key``
    or ``OPENAI_API_KEY`` (a self-hosted endpoint may need none). A call with more than
    ``max_inputs_per_request`` texts is split into several requests, sent concurrently under
    the endpoint's limiter; the vectors come back in input order.
    """

    model: str = Field(description="The embedding model to call.")
    base_url: str | None = Field(
        default=None, description="The endpoint's base URL (ending in /v1 for most servers)."
    )
    api_key: SecretStr | None = Field(
        default=None, exclude=True, description="API key; OPENAI_API_KEY when unset."
    )
    dimensions: int | None = Field(
        default=None, ge=1, description="Shorter vectors, for the models that support it."
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
        """Tokens the endpoint reported for every call so far."""
        return self._usage

    def _wire(self) -> _EmbeddingsWire:
        settings = self.model_dump(exclude={"max_inputs_per_request", "api_key"})
        return _EmbeddingsWire(api_key=self.api_key, **settings)

    def exposures(self, where: str) -> Iterator[Exposure]:
        return self._wire().exposures(where)

    def load(self) -> None:
        self._wire().load()  # the same checks as an LLM client: a base URL, a key if needed

    async def aencode(self, inputs: Sequence[str]) -> list[Vector]:
        texts = list(inputs)
        if not texts:
            return []
        size = self.max_inputs_per_request
        chunks = [texts[i : i + size] for i in range(0, len(texts), size)]
        results: list[list[Vector]] = [[] for _ in chunks]
        # One HTTP client per call, closed when it ends: a client belongs to the event loop
        # that made it, and the call may be the only one this loop makes (``encode``).
        wire = self._wire()
        try:
            async with anyio.create_task_group() as tg:
                for i, chunk in enumerate(chunks):
                    tg.start_soon(self._one, wire, chunk, results, i)
        except BaseExceptionGroup as group:  # the request that failed, alone
            failure = first_error(group)
            raise failure from failure.__cause__
        finally:
            await wire.aclose()
        return [vector for part in results for vector in part]

    async def _one(
        self, wire: _EmbeddingsWire, texts: list[str], results: list[list[Vector]], i: int
    ) -> None:
        output = await wire.agenerate([{"role": "user", "content": t} for t in texts])
        vectors: list[Vector] = output.raw
        if len(vectors) != len(texts):
            raise LLMResponseError(
                f"the endpoint returned {len(vectors)} embeddings for {len(texts)} inputs"
            )
        self._usage = self._usage + output.usage
        results[i] = vectors


class _EmbeddingsWire(OpenAILLM):
    """The embeddings route on the chat clients' call path: each message's content is one
    input; ``parse_response`` puts the vectors, in input order, in ``raw``."""

    dimensions: int | None = None

    def build_request(self, messages: ChatType, num_generations: int) -> tuple[str, Payload]:
        payload: Payload = {
            "model": self.model,
            "input": [m["content"] for m in messages],
            "encoding_format": "float",
        }
        if self.dimensions is not None:
            payload["dimensions"] = self.dimensions
        return "/embeddings", payload

    def parse_response(self, data: Any) -> GenerateOutput:
        items = sorted(data["data"], key=lambda item: item.get("index", 0))
        vectors: list[Vector] = []
        for item in items:
            vector = item["embedding"]
            if not isinstance(vector, list) or not all(
                isinstance(x, int | float) and not isinstance(x, bool) for x in vector
            ):
                raise TypeError("an embedding is not a list of numbers (base64 encoding?)")
            vectors.append([float(x) for x in vector])
        usage = data.get("usage") or {}
        tokens = int(usage.get("prompt_tokens") or usage.get("total_tokens") or 0)
        # One placeholder generation: the chat call path checks that every asked-for generation
        # came back with text; the vectors travel in ``raw``.
        return GenerateOutput(generations=[""], usage=Usage(tokens, 0), raw=vectors)
