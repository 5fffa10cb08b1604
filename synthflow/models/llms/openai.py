"""OpenAI's chat completions API, and the providers that speak it.

``OpenAILLM`` with ``base_url`` also serves vLLM, SGLang, the llama.cpp server, Ollama's ``/v1``,
LM Studio and TGI's messages API. The presets below only change the base URL, the auth header and
the API-key environment variable.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar, TypedDict

from pydantic import Field, model_validator

from synthflow.models.callpath.structured import schema_name
from synthflow.models.llms.api import APILLM, Payload
from synthflow.models.llms.base import ChatType, GenerateOutput, NoAnswer, NoAnswerKind, Usage
from synthflow.models.llms.generation_kwargs import Stop

if TYPE_CHECKING:
    from synthflow.models.callpath.batch_wire import BatchWire

# synthflow's generation kwarg -> the name in the request body. Others pass through unchanged.
_RENAMES = {"max_new_tokens": "max_tokens"}


class OpenAIGenerationKwargs(TypedDict, total=False):
    """Chat completions' request fields (and synthflow's ``max_new_tokens``). A server's own
    fields (vLLM's ``top_k``, ``min_p``, ``repetition_penalty``...) go in ``extra_body``."""

    temperature: float
    max_new_tokens: int
    max_tokens: int
    max_completion_tokens: int
    top_p: float
    stop: Stop
    seed: int
    frequency_penalty: float
    presence_penalty: float
    logprobs: bool
    top_logprobs: int
    logit_bias: dict[str | int, float]
    user: str
    response_format: dict[str, Any]
    reasoning_effort: str
    verbosity: str
    tools: list[dict[str, Any]]
    tool_choice: str | dict[str, Any]
    parallel_tool_calls: bool
    metadata: dict[str, Any]
    store: bool
    service_tier: str
    modalities: list[str]
    audio: dict[str, Any]
    prediction: dict[str, Any]
    web_search_options: dict[str, Any]
    prompt_cache_key: str
    safety_identifier: str
    echo: bool  # distilabel's, for text prompts: chat requests don't send it
    extra_body: dict[str, Any]


class OpenAILLM(APILLM):
    """Chat completions (``POST {base_url}/chat/completions``)."""

    provider: ClassVar[str] = "openai"
    default_base_url: ClassVar[str] = "https://api.openai.com/v1"
    api_key_env: ClassVar[str | None] = "OPENAI_API_KEY"
    base_url_env: ClassVar[str | None] = "OPENAI_BASE_URL"
    supports_n: ClassVar[bool] = True
    renames: ClassVar[dict[str, str]] = _RENAMES
    generation_kwargs_spec: ClassVar[type | None] = OpenAIGenerationKwargs
    unsent_generation_kwargs: ClassVar[frozenset[str]] = frozenset({"echo"})

    has_batch_api: ClassVar[bool] = True
    """The provider speaks OpenAI's Batch API (``use_offline_batch_generation``)."""

    def auth_headers(self, api_key: str | None) -> dict[str, str]:
        return {"authorization": f"Bearer {api_key}"} if api_key else {}

    def offline_batch_wire(self) -> BatchWire | None:
        if not self.has_batch_api:
            return None
        from synthflow.models.llms.openai_batch import OpenAIBatchWire

        return OpenAIBatchWire(self)

    def chat_path(self) -> str:
        return "/chat/completions"

    def build_request(self, messages: ChatType, num_generations: int) -> tuple[str, Payload]:
        payload: Payload = {"model": self.model, "messages": messages}
        if num_generations != 1:
            payload["n"] = num_generations
        for key, value in self.body_kwargs():
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
        choices = sorted(data.get("choices") or [], key=lambda c: c.get("index", 0))
        generations: list[str | None] = []
        no_answer: dict[int, NoAnswer] = {}
        for i, choice in enumerate(choices):
            text, why = read_choice(choice)
            generations.append(text)
            if why is not None:
                no_answer[i] = why
        logprobs = [c.get("logprobs") for c in choices]
        usage = data.get("usage") or {}
        return GenerateOutput(
            generations=generations,
            usage=Usage(
                int(usage.get("prompt_tokens") or 0), int(usage.get("completion_tokens") or 0)
            ),
            logprobs=logprobs if any(lp is not None for lp in logprobs) else None,
            no_answer=no_answer,
        )


def read_choice(choice: dict[str, Any]) -> tuple[str | None, NoAnswer | None]:
    """A chat-completions choice's text, or None and why: a refusal (``message.refusal``), a
    content filter (``finish_reason: content_filter``, even with partial text), or no content."""
    message = choice.get("message") or {}
    finish = choice.get("finish_reason")
    refusal = message.get("refusal")
    if refusal:
        return None, NoAnswer("refused", str(refusal))
    if finish == "content_filter":
        return None, NoAnswer("filtered", "finish_reason 'content_filter'")
    content = message.get("content")
    if content is None:
        kind: NoAnswerKind = "truncated" if finish == "length" else "empty"
        return None, NoAnswer(kind, f"finish_reason {finish!r}")
    if isinstance(content, list):  # some servers send parts (reasoning, then text)
        texts = [p["text"] for p in content if isinstance(p, dict) and p.get("type") == "text"]
        if not texts:
            return None, NoAnswer("empty", f"no text part; finish_reason {finish!r}")
        return "".join(texts), None
    if not isinstance(content, str):
        raise TypeError(f"message content is a {type(content).__name__}, not text")
    return content, None


class AzureOpenAILLM(OpenAILLM):
    """Azure OpenAI: ``model`` is the deployment name; ``base_url`` the resource endpoint
    (``https://NAME.openai.azure.com``, or ``AZURE_OPENAI_ENDPOINT``)."""

    has_batch_api: ClassVar[bool] = False
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


class TogetherGenerationKwargs(OpenAIGenerationKwargs, total=False):
    top_k: int
    min_p: float
    repetition_penalty: float


class TogetherLLM(OpenAILLM):
    """Together AI (which also takes ``top_k``, ``min_p`` and ``repetition_penalty``)."""

    has_batch_api: ClassVar[bool] = False
    provider: ClassVar[str] = "together"
    default_base_url: ClassVar[str] = "https://api.together.xyz/v1"
    api_key_env: ClassVar[str | None] = "TOGETHER_API_KEY"
    base_url_env: ClassVar[str | None] = "TOGETHER_BASE_URL"
    generation_kwargs_spec: ClassVar[type | None] = TogetherGenerationKwargs


class AnyscaleLLM(OpenAILLM):
    """Anyscale Endpoints."""

    has_batch_api: ClassVar[bool] = False
    provider: ClassVar[str] = "anyscale"
    default_base_url: ClassVar[str] = "https://api.endpoints.anyscale.com/v1"
    api_key_env: ClassVar[str | None] = "ANYSCALE_API_KEY"
    base_url_env: ClassVar[str | None] = "ANYSCALE_BASE_URL"


class GroqLLM(OpenAILLM):
    """Groq. Its API takes only n=1, so several generations are several requests."""

    provider: ClassVar[str] = "groq"
    default_base_url: ClassVar[str] = "https://api.groq.com/openai/v1"
    api_key_env: ClassVar[str | None] = "GROQ_API_KEY"
    base_url_env: ClassVar[str | None] = "GROQ_BASE_URL"
    base_url_env_path: ClassVar[str] = "/openai/v1"
    supports_n: ClassVar[bool] = False


class MistralGenerationKwargs(OpenAIGenerationKwargs, total=False):
    random_seed: int
    safe_prompt: bool


class MistralLLM(OpenAILLM):
    """Mistral AI (``seed`` is sent as its ``random_seed``). distilabel's ``endpoint`` (the API
    root) and ``max_concurrent_requests`` are ``base_url`` (with ``/v1``) and
    ``max_concurrency``."""

    has_batch_api: ClassVar[bool] = False
    provider: ClassVar[str] = "mistral"
    default_base_url: ClassVar[str] = "https://api.mistral.ai/v1"
    api_key_env: ClassVar[str | None] = "MISTRAL_API_KEY"
    base_url_env: ClassVar[str | None] = None
    renames: ClassVar[dict[str, str]] = {**_RENAMES, "seed": "random_seed"}
    generation_kwargs_spec: ClassVar[type | None] = MistralGenerationKwargs
    field_aliases: ClassVar[dict[str, str]] = {"max_concurrent_requests": "max_concurrency"}

    @model_validator(mode="before")
    @classmethod
    def _endpoint_is_base_url(cls, data: Any) -> Any:
        # distilabel's ``endpoint`` is the API's root; synthflow's base_url includes /v1.
        if not isinstance(data, dict) or data.get("endpoint") is None:
            return data
        data = dict(data)
        endpoint = str(data.pop("endpoint")).rstrip("/")
        if "base_url" in data:
            raise ValueError("MistralLLM got endpoint= and base_url=, one setting: pass one")
        data["base_url"] = endpoint if endpoint.endswith("/v1") else f"{endpoint}/v1"
        return data
