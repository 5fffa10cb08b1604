"""Embeddings from Hugging Face's serverless Inference API and dedicated Inference Endpoints.

Both serve the feature-extraction task: ``POST {"inputs": [text, ...]}`` answers one vector per
text (text-embeddings-inference, TEI, on a dedicated endpoint; the serverless API at
``/models/{model}``). The body says nothing of tokens, so calls count requests, not tokens.
"""

from __future__ import annotations

from typing import Any, ClassVar, Self

from pydantic import Field, model_validator

from synthflow.models.embeddings.api import APIEmbeddings, read_vector, vectors_output
from synthflow.models.llms.api import Payload
from synthflow.models.llms.base import ChatType, GenerateOutput, rename_fields
from synthflow.models.llms.huggingface import InferenceEndpointsLLM


class InferenceEndpointsEmbeddings(APIEmbeddings):
    """Embeddings from a model on Hugging Face (feature extraction).

    ``model`` (or distilabel's ``model_id``) alone is a Hub model id on the serverless
    Inference API; ``base_url`` is a dedicated Inference Endpoint (or any TEI server), and
    ``endpoint_name`` (with ``endpoint_namespace``) one whose URL ``load()`` looks up with
    ``huggingface_hub``. The token is ``api_key``, else ``HF_TOKEN``, else
    ``HUGGING_FACE_HUB_TOKEN``. ``normalize`` and ``truncate`` go to the server when set.
    distilabel 1.5 has no such class; this one follows ``InferenceEndpointsLLM``'s settings.
    """

    field_aliases: ClassVar[dict[str, str]] = {"model_id": "model"}

    model: str = Field(
        default="",
        description="A Hub model id (serverless); optional with base_url, where it only names "
        "the model.",
    )
    endpoint_name: str | None = Field(
        default=None, description="A dedicated Inference Endpoint's name (instead of base_url)."
    )
    endpoint_namespace: str | None = Field(
        default=None, description="The endpoint's user or organization; the token's user if unset."
    )
    model_display_name: str | None = Field(
        default=None, description="The name written in the model_name column."
    )
    normalize: bool | None = Field(
        default=None, description="Ask the server for vectors of length 1 (TEI's default: yes)."
    )
    truncate: bool | None = Field(
        default=None, description="Ask the server to cut texts longer than the model takes."
    )

    @model_validator(mode="before")
    @classmethod
    def _distilabel_names(cls, data: Any) -> Any:
        return rename_fields(data, cls.field_aliases, cls.__name__)

    @model_validator(mode="after")
    def _model_or_endpoint(self) -> Self:
        if not self.model and not self.base_url and not self.endpoint_name:
            raise ValueError(
                "InferenceEndpointsEmbeddings needs model_id=... (a Hub model id, for the "
                "serverless API), endpoint_name=... or base_url=... (an Inference Endpoint)"
            )
        return self

    @property
    def model_name(self) -> str:
        return self.model_display_name or self.model or self.endpoint_name or self.base_url or ""

    def encoding_settings(self) -> dict[str, Any]:
        return {"normalize": self.normalize, "truncate": self.truncate}

    def load(self) -> None:
        wire = self._wire()
        wire.load()
        if self.endpoint_name and not self.base_url:
            self.base_url = wire.base_url  # looked up once

    def _wire(self) -> _FeatureExtractionWire:
        settings = self.model_dump(exclude={"max_inputs_per_request", "api_key"})
        return _FeatureExtractionWire(api_key=self.api_key, **settings)


class _FeatureExtractionWire(InferenceEndpointsLLM):
    """The feature-extraction route on the chat clients' call path: each message's content is
    one input; ``parse_response`` puts the vectors, in input order, in ``raw``."""

    normalize: bool | None = None
    truncate: bool | None = None

    def build_request(self, messages: ChatType, num_generations: int) -> tuple[str, Payload]:
        payload: Payload = {"inputs": [m["content"] for m in messages]}
        for name in ("normalize", "truncate"):
            if getattr(self, name) is not None:
                payload[name] = getattr(self, name)
        return (f"/models/{self.model}" if self.serverless else ""), payload

    def parse_response(self, data: Any) -> GenerateOutput:
        if not isinstance(data, list):
            raise TypeError(f"expected a list of embeddings, got {type(data).__name__}")
        if data and isinstance(data[0], list) and data[0] and isinstance(data[0][0], list):
            raise ValueError(
                "the model answers one vector per token, not per text: use a sentence "
                "embedding model (or one whose endpoint pools)"
            )
        return vectors_output([read_vector(vector) for vector in data])
