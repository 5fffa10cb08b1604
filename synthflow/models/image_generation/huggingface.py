"""Hugging Face text-to-image: the serverless Inference API and Inference Endpoints."""

from __future__ import annotations

import base64
import os
from typing import Any, ClassVar, Self

import orjson
from pydantic import Field, model_validator

from synthflow.errors import LLMResponseError
from synthflow.models.callpath._http import JSONResponse
from synthflow.models.image_generation.base import (
    ImageGenerationModel,
    image_format_of,
    prompt_text,
)
from synthflow.models.llms.api import Payload
from synthflow.models.llms.base import ChatType, GenerateOutput

_SERVERLESS_HEADERS = {"x-wait-for-model": "true", "x-use-cache": "false"}
"""Wait for a cold model instead of a 503; no server-side cache, which would make every
generation of a prompt the same image (synthflow has its own cache)."""


class InferenceEndpointsImageGeneration(ImageGenerationModel):
    """Images from a text-to-image model on Hugging Face: ``model`` alone is a Hub model id on the
    serverless Inference API (``POST {base}/models/{model}``); ``base_url`` is a dedicated
    Inference Endpoint (or any server of the task), called at its root.

    The request is ``{"inputs": <prompt>, "parameters": {...}}`` and the answer the image's bytes
    (JPEG or PNG), kept as a base64 string. ``generation_kwargs`` are the parameters:
    ``negative_prompt``, ``height``, ``width``, ``num_inference_steps``, ``guidance_scale``,
    ``seed``, ... One image per request: several generations are several requests (with
    ``seed + i`` when a seed is set). The token is ``api_key``, else ``HF_TOKEN``, else
    ``HUGGING_FACE_HUB_TOKEN``. distilabel's ``model_id`` is ``model``. ``HF_INFERENCE_ENDPOINT``
    (huggingface_hub's variable) replaces the serverless API's root.
    """

    provider: ClassVar[str] = "huggingface-images"
    default_base_url: ClassVar[str] = "https://api-inference.huggingface.co"
    api_key_env: ClassVar[str | None] = "HF_TOKEN"
    api_key_envs: ClassVar[tuple[str, ...]] = ("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN")
    base_url_env: ClassVar[str | None] = "HF_INFERENCE_ENDPOINT"  # the serverless API's root
    supports_n: ClassVar[bool] = False
    field_aliases: ClassVar[dict[str, str]] = {"model_id": "model"}

    model: str = Field(
        default="",
        description="A Hub model id (serverless); optional with base_url, where it only names "
        "the model.",
    )

    @model_validator(mode="after")
    def _model_or_endpoint(self) -> Self:
        if not self.model and not self.base_url:
            raise ValueError(
                "InferenceEndpointsImageGeneration needs model_id=... (a Hub model id, for the "
                "serverless API) or base_url=... (an Inference Endpoint)"
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
        headers = {"authorization": f"Bearer {api_key}"} if api_key else {}
        return {**headers, **_SERVERLESS_HEADERS} if self.serverless else headers

    def build_request(self, messages: ChatType, num_generations: int) -> tuple[str, Payload]:
        payload: Payload = {"inputs": prompt_text(messages)}
        if self.generation_kwargs:
            payload["parameters"] = dict(self.generation_kwargs)
        return (f"/models/{self.model}" if self.serverless else ""), payload

    async def send(self, path: str, payload: Payload, headers: dict[str, str]) -> JSONResponse:
        headers = {**headers, "accept": "image/png, image/jpeg, image/*"}
        status, response_headers, content = await self._client().request_raw(
            "POST", path, payload, headers
        )
        return JSONResponse(status, response_headers, content)

    def parse_response(self, data: Any) -> GenerateOutput:
        if not isinstance(data, bytes):
            raise TypeError(f"the answer is a {type(data).__name__}, not image bytes")
        if image_format_of(data) is None:
            # A server may answer 200 with JSON (an error, or base64 in a field).
            try:
                body = orjson.loads(data)
            except orjson.JSONDecodeError:
                raise LLMResponseError(
                    f"the answer is not an image (it starts with {data[:16]!r})"
                ) from None
            raise LLMResponseError(f"the answer is not an image: {str(body)[:200]}")
        return GenerateOutput(generations=[base64.b64encode(data).decode()])
