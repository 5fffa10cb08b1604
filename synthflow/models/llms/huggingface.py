"""Hugging Face's serverless Inference API and dedicated Inference Endpoints.

Both serve text-generation-inference (TGI), whose Messages API is OpenAI's chat completions, so
``InferenceEndpointsLLM`` is ``OpenAILLM`` with Hugging Face's URLs and token, and two
differences in the body: TGI has no ``n`` (several generations are several requests), and its
structured output is a grammar, ``response_format: {"type": "json", "value": <JSON schema>}``.
TGI compiles the schema into a grammar (with outlines) before the first token: the first
request with a new schema is slower, and a schema outlines can't compile (recursive ones, some
``pattern``s and formats) is answered with a 4xx. Every answer is still validated, and re-asked
when it doesn't follow the schema. Images (``image_url`` parts) and ``logprobs`` pass through to
vision models and TGI unchanged.
"""

from __future__ import annotations

import os
from typing import ClassVar, Self

from pydantic import Field, model_validator

from synthflow.models.llms.api import Payload
from synthflow.models.llms.base import ChatType
from synthflow.models.llms.openai import OpenAILLM

_SERVERLESS_HEADERS = {
    # Wait for a cold model to load instead of answering 503 at once.
    "x-wait-for-model": "true",
    # The serverless API caches answers to identical requests, which would make several
    # generations of one prompt identical; synthflow has its own response cache.
    "x-use-cache": "false",
}


class InferenceEndpointsLLM(OpenAILLM):
    """A model on Hugging Face: ``model`` alone is a Hub model id on the serverless Inference API
    (``https://api-inference.huggingface.co/models/{model}/v1/chat/completions``); ``base_url``
    is a dedicated Inference Endpoint (or any TGI server), called at ``{base_url}/v1/chat/
    completions``, where ``model`` is optional and only names the model in the output.

    The token is ``api_key``, else ``HF_TOKEN``, else ``HUGGING_FACE_HUB_TOKEN``; the serverless
    API requires one. A dedicated endpoint scaled to zero answers 503 while it starts (minutes):
    raise ``max_retries`` and ``retry_backoff`` for those.
    """

    provider: ClassVar[str] = "huggingface"
    default_base_url: ClassVar[str] = "https://api-inference.huggingface.co"
    api_key_env: ClassVar[str | None] = "HF_TOKEN"
    api_key_envs: ClassVar[tuple[str, ...]] = ("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN")
    base_url_env: ClassVar[str | None] = None
    supports_n: ClassVar[bool] = False

    model: str = Field(
        default="",
        description="A Hub model id (serverless); optional with base_url, where it only names "
        "the model.",
    )

    @model_validator(mode="after")
    def _model_or_endpoint(self) -> Self:
        if not self.model and not self.base_url:
            raise ValueError(
                "InferenceEndpointsLLM needs model=... (a Hub model id, for the serverless API) "
                "or base_url=... (an Inference Endpoint URL)"
            )
        return self

    @property
    def serverless(self) -> bool:
        return not self.base_url

    @property
    def model_name(self) -> str:
        return self.model or self.endpoint

    def resolved_api_key(self) -> str | None:
        if self.api_key is not None:
            return self.api_key.get_secret_value()
        return next((os.environ[e] for e in self.api_key_envs if os.environ.get(e)), None)

    def auth_headers(self, api_key: str | None) -> dict[str, str]:
        headers = super().auth_headers(api_key)
        return {**headers, **_SERVERLESS_HEADERS} if self.serverless else headers

    def chat_path(self) -> str:
        if self.serverless:
            return f"/models/{self.model}/v1/chat/completions"
        return "/chat/completions" if self.endpoint.endswith("/v1") else "/v1/chat/completions"

    def build_request(self, messages: ChatType, num_generations: int) -> tuple[str, Payload]:
        path, payload = super().build_request(messages, num_generations)
        payload["model"] = self.model or "tgi"  # TGI requires the field and ignores its value
        if self.structured_output is not None:
            payload["response_format"] = {"type": "json", "value": self.structured_output}
        return path, payload
