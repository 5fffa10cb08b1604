"""Embeddings over HTTP from OpenAI-compatible ``POST {base_url}/embeddings`` endpoints.

OpenAI, and the servers that speak its API (vLLM, TEI's OpenAI route, llama.cpp's server,
Ollama's ``/v1``, LM Studio), answer ``{"data": [{"index", "embedding"}], "usage"}``.
"""

from __future__ import annotations

from typing import Any

from pydantic import Field

from synthflow.models.embeddings.api import APIEmbeddings, read_vector, vectors_output
from synthflow.models.llms.api import Payload
from synthflow.models.llms.base import ChatType, GenerateOutput
from synthflow.models.llms.openai import OpenAILLM


class OpenAIEmbeddings(APIEmbeddings):
    """Embeddings from an OpenAI-compatible ``/embeddings`` endpoint.

    ``base_url`` defaults to OpenAI's (or ``OPENAI_BASE_URL``); the key comes from ``api_key``
    or ``OPENAI_API_KEY`` (a self-hosted endpoint may need none). In a run, vectors are kept
    in the response cache and requests, tokens and cost count in the step's LLM stats.
    """

    dimensions: int | None = Field(
        default=None, ge=1, description="Shorter vectors, for the models that support it."
    )

    def encoding_settings(self) -> dict[str, Any]:
        return {"dimensions": self.dimensions}

    def _wire(self) -> _EmbeddingsWire:
        settings = self.model_dump(exclude={"max_inputs_per_request", "api_key"})
        return _EmbeddingsWire(api_key=self.api_key, **settings)


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
        usage = data.get("usage") or {}
        tokens = int(usage.get("prompt_tokens") or usage.get("total_tokens") or 0)
        return vectors_output([read_vector(item["embedding"]) for item in items], tokens)
