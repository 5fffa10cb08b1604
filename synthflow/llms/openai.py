"""OpenAI's chat completions API, and the providers that speak it.

``OpenAILLM`` with ``base_url`` also serves vLLM, SGLang, the llama.cpp server, Ollama's ``/v1``,
LM Studio and TGI's messages API. The presets below only change the base URL, the auth header and
the API-key environment variable.
"""

from __future__ import annotations

from typing import Any, ClassVar

from pydantic import Field

from synthflow.llms.api import APILLM, Payload
from synthflow.llms.base import ChatType, GenerateOutput, Usage
from synthflow.llms.structured import schema_name

# synthflow's generation kwarg -> the name in the request body. Others pass through unchanged.
_RENAMES = {"max_new_tokens": "max_tokens"}


class OpenAILLM(APILLM):
    """Chat completions (``POST {base_url}/chat/completions``)."""

    provider: ClassVar[str] = "openai"
    default_base_url: ClassVar[str] = "https://api.openai.com/v1"
    api_key_env: ClassVar[str | None] = "OPENAI_API_KEY"
    base_url_env: ClassVar[str | None] = "OPENAI_BASE_URL"
    supports_n: ClassVar[bool] = True
    renames: ClassVar[dict[str, str]] = _RENAMES

    def auth_headers(self, api_key: str | None) -> dict[str, str]:
        return {"authorization": f"Bearer {api_key}"} if api_key else {}

    def chat_path(self) -> str:
        return "/chat/completions"

    def build_request(self, messages: ChatType, num_generations: int) -> tuple[str, Payload]:
        payload: Payload = {"model": self.model, "messages": messages}
        if num_generations != 1:
            payload["n"] = num_generations
        for key, value in self.generation_kwargs.items():
            payload[self.renames.get(key, key)] = value
        if self.structured_output is not None:
            payload["response_format"] = {
                "type": "json_schema",
                "json_schema": {
                    "name": schema_name(self.structured_output),
                    "schema": self.structured_output,
                },
            }
        return self.chat_path(), payload

    def parse_response(self, data: Any) -> GenerateOutput:
        choices = sorted(data["choices"], key=lambda c: c.get("index", 0))
        generations: list[str | None] = [c["message"].get("content") for c in choices]
        logprobs = [c.get("logprobs") for c in choices]
        usage = data.get("usage") or {}
        return GenerateOutput(
            generations=generations,
            usage=Usage(
                int(usage.get("prompt_tokens") or 0), int(usage.get("completion_tokens") or 0)
            ),
            logprobs=logprobs if any(lp is not None for lp in logprobs) else None,
        )


class AzureOpenAILLM(OpenAILLM):
    """Azure OpenAI: ``model`` is the deployment name; ``base_url`` the resource endpoint
    (``https://NAME.openai.azure.com``, or ``AZURE_OPENAI_ENDPOINT``)."""

    provider: ClassVar[str] = "azure-openai"
    default_base_url: ClassVar[str] = ""
    api_key_env: ClassVar[str | None] = "AZURE_OPENAI_API_KEY"
    base_url_env: ClassVar[str | None] = "AZURE_OPENAI_ENDPOINT"

    api_version: str = Field(default="2024-10-21", description="The Azure API version.")

    def requires_api_key(self) -> bool:
        return True

    def auth_headers(self, api_key: str | None) -> dict[str, str]:
        return {"api-key": api_key} if api_key else {}

    def chat_path(self) -> str:
        return f"/openai/deployments/{self.model}/chat/completions?api-version={self.api_version}"

    def build_request(self, messages: ChatType, num_generations: int) -> tuple[str, Payload]:
        path, payload = super().build_request(messages, num_generations)
        payload.pop("model")  # the deployment in the path names it
        return path, payload


class TogetherLLM(OpenAILLM):
    """Together AI."""

    provider: ClassVar[str] = "together"
    default_base_url: ClassVar[str] = "https://api.together.xyz/v1"
    api_key_env: ClassVar[str | None] = "TOGETHER_API_KEY"
    base_url_env: ClassVar[str | None] = None


class AnyscaleLLM(OpenAILLM):
    """Anyscale Endpoints."""

    provider: ClassVar[str] = "anyscale"
    default_base_url: ClassVar[str] = "https://api.endpoints.anyscale.com/v1"
    api_key_env: ClassVar[str | None] = "ANYSCALE_API_KEY"
    base_url_env: ClassVar[str | None] = None


class GroqLLM(OpenAILLM):
    """Groq. Its API takes only n=1, so several generations are several requests."""

    provider: ClassVar[str] = "groq"
    default_base_url: ClassVar[str] = "https://api.groq.com/openai/v1"
    api_key_env: ClassVar[str | None] = "GROQ_API_KEY"
    base_url_env: ClassVar[str | None] = None
    supports_n: ClassVar[bool] = False


class MistralLLM(OpenAILLM):
    """Mistral AI (``seed`` is sent as its ``random_seed``)."""

    provider: ClassVar[str] = "mistral"
    default_base_url: ClassVar[str] = "https://api.mistral.ai/v1"
    api_key_env: ClassVar[str | None] = "MISTRAL_API_KEY"
    base_url_env: ClassVar[str | None] = None
    renames: ClassVar[dict[str, str]] = {**_RENAMES, "seed": "random_seed"}
