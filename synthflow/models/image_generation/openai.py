"""OpenAI's image API (``POST {base_url}/images/generations``), and servers that speak it."""

from __future__ import annotations

import base64
from typing import Any, ClassVar

import anyio

from synthflow.errors import LLMResponseError
from synthflow.models.callpath._http import JSONResponse
from synthflow.models.image_generation.base import ImageGenerationModel, prompt_text
from synthflow.models.llms.api import Payload
from synthflow.models.llms.base import ChatType, GenerateOutput, NoAnswer, Usage


class OpenAIImageGeneration(ImageGenerationModel):
    """Images from OpenAI (``dall-e-2``, ``dall-e-3``, ``gpt-image-1``) or a compatible server.

    ``base_url`` defaults to OpenAI's (or ``OPENAI_BASE_URL``); the key is ``api_key`` or
    ``OPENAI_API_KEY``. ``generation_kwargs`` go into the request body as they are: ``size``,
    ``quality``, ``style``, ``response_format`` (``"b64_json"`` or ``"url"``; unset, the API's
    default), ``background``, ``output_format``, ... Images answered as URLs are downloaded
    within the same attempt, so each generation is the image as a base64 string. ``dall-e-3``
    makes one image per request: several generations are several requests.
    """

    provider: ClassVar[str] = "openai-images"
    default_base_url: ClassVar[str] = "https://api.openai.com/v1"
    api_key_env: ClassVar[str | None] = "OPENAI_API_KEY"
    base_url_env: ClassVar[str | None] = "OPENAI_BASE_URL"
    supports_n: ClassVar[bool] = True

    def auth_headers(self, api_key: str | None) -> dict[str, str]:
        return {"authorization": f"Bearer {api_key}"} if api_key else {}

    async def agenerate(self, messages: ChatType, *, num_generations: int = 1) -> GenerateOutput:
        if num_generations > 1 and self.model.startswith("dall-e-3"):
            return await self._fan_out(messages, num_generations)
        return await super().agenerate(messages, num_generations=num_generations)

    def build_request(self, messages: ChatType, num_generations: int) -> tuple[str, Payload]:
        payload: Payload = {"model": self.model, "prompt": prompt_text(messages)}
        if num_generations != 1:
            payload["n"] = num_generations
        payload.update(self.generation_kwargs)
        return "/images/generations", payload

    async def send(self, path: str, payload: Payload, headers: dict[str, str]) -> JSONResponse:
        response = await super().send(path, payload, headers)
        data = response.data
        items = data.get("data") if isinstance(data, dict) else None
        urls = [
            (i, item["url"])
            for i, item in enumerate(items or [])
            if isinstance(item, dict) and not item.get("b64_json") and item.get("url")
        ]
        if not urls:
            return response
        assert isinstance(items, list)  # urls came from it
        # Download what the API answered as URLs (they expire within the hour).
        downloaded: dict[int, str] = {}

        async def fetch(i: int, url: str) -> None:
            _, _, content = await self._client().request_raw("GET", url)
            downloaded[i] = base64.b64encode(content).decode()

        async with anyio.create_task_group() as tg:
            for i, url in urls:
                tg.start_soon(fetch, i, url)
        for i, image in downloaded.items():
            items[i] = {**items[i], "b64_json": image}
        return response

    def parse_response(self, data: Any) -> GenerateOutput:
        items = data["data"]
        if not isinstance(items, list):
            raise TypeError("'data' is not a list of images")
        generations: list[str | None] = []
        no_answer: dict[int, NoAnswer] = {}
        for i, item in enumerate(items):
            image = item.get("b64_json") if isinstance(item, dict) else None
            if not isinstance(image, str) or not image:
                no_answer[i] = NoAnswer("empty", "no b64_json or url")
                image = None
            generations.append(image)
        usage = data.get("usage") or {}
        if not isinstance(usage, dict):
            raise LLMResponseError("'usage' is not an object")
        return GenerateOutput(
            generations=generations,
            usage=Usage(int(usage.get("input_tokens") or 0), int(usage.get("output_tokens") or 0)),
            no_answer=no_answer,
        )
