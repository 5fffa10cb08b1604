"""Anthropic's Messages API (``POST {base_url}/v1/messages``).

What differs from the chat-completions shape, and how it is bridged here:

- System messages go to the top-level ``system`` field (several are joined by a blank line).
- ``max_tokens`` is required: ``max_new_tokens``, else ``DEFAULT_MAX_TOKENS``.
- ``stop`` is sent as ``stop_sequences``; ``temperature``, ``top_p`` and ``top_k`` keep their
  names, and other generation kwargs (``metadata``, ``thinking``, ...) pass through unchanged;
  a kwarg set to None is left out.
- One completion per request: APILLM sends ``num_generations`` requests.
- Image parts in OpenAI's shape (``image_url`` with a ``data:`` or ``http(s)`` URL) become
  Anthropic image blocks. Anthropic-shaped blocks pass through unchanged.
- No JSON-schema mode is used: the schema is stated in the system prompt, and APILLM validates
  each answer and re-asks a bad one.
- No logprobs, seed or ``n``: the API has none, so asking for them is an error.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar, TypedDict

import orjson

from synthflow.errors import LLMError
from synthflow.models.llms.api import APILLM, Payload, generation_kwarg
from synthflow.models.llms.base import (
    ChatMessage,
    ChatType,
    GenerateOutput,
    NoAnswer,
    NoAnswerKind,
    Usage,
)
from synthflow.models.llms.generation_kwargs import Stop

if TYPE_CHECKING:
    from synthflow.models.callpath.batch_wire import BatchWire

API_VERSION = "2023-06-01"
DEFAULT_MAX_TOKENS = 1024

SCHEMA_INSTRUCTION = (
    "Answer with only a JSON value that follows this JSON schema, with no other text before "
    "or after it: {schema}"
)

_SYSTEM_ROLES = ("system", "developer")
_MAX_TOKENS_NAMES = ("max_new_tokens", "max_tokens")
_UNSUPPORTED = {
    "logprobs": "the Messages API returns no logprobs",
    "top_logprobs": "the Messages API returns no logprobs",
    "seed": "the Messages API has no seed",
    "n": "use num_generations (one request each)",
}


class AnthropicGenerationKwargs(TypedDict, total=False):
    temperature: float
    max_new_tokens: int
    max_tokens: int
    top_p: float
    top_k: int
    stop: Stop
    stop_sequences: list[str]
    metadata: dict[str, Any]
    thinking: dict[str, Any]
    tools: list[dict[str, Any]]
    tool_choice: dict[str, Any]
    service_tier: str
    extra_body: dict[str, Any]


class AnthropicLLM(APILLM):
    """Claude models through the Messages API. See the module docstring for the mapping."""

    provider: ClassVar[str] = "anthropic"
    default_base_url: ClassVar[str] = "https://api.anthropic.com"
    api_key_env: ClassVar[str | None] = "ANTHROPIC_API_KEY"
    base_url_env: ClassVar[str | None] = "ANTHROPIC_BASE_URL"
    supports_n: ClassVar[bool] = False
    generation_kwargs_spec: ClassVar[type | None] = AnthropicGenerationKwargs
    unsupported_generation_kwargs: ClassVar[dict[str, str]] = _UNSUPPORTED

    def offline_batch_wire(self) -> BatchWire | None:
        from synthflow.models.llms.anthropic_batch import AnthropicBatchWire

        return AnthropicBatchWire(self)

    def auth_headers(self, api_key: str | None) -> dict[str, str]:
        headers = {"anthropic-version": API_VERSION}
        if api_key:
            headers["x-api-key"] = api_key
        return headers

    def build_request(self, messages: ChatType, num_generations: int) -> tuple[str, Payload]:
        system: list[str] = []
        turns: list[ChatMessage] = []
        for message in messages:
            role, content = message.get("role"), message.get("content")
            if role in _SYSTEM_ROLES:
                system.append(_text_of(content))
            elif role == "assistant" and not content:
                continue  # the API rejects empty turns (a re-ask after an empty answer)
            else:
                turns.append({"role": role, "content": _to_blocks(content)})
        if self.structured_output is not None:
            schema = orjson.dumps(self.structured_output).decode()
            system.append(SCHEMA_INSTRUCTION.format(schema=schema))

        kwargs = self.generation_kwargs
        max_tokens = generation_kwarg(kwargs, *_MAX_TOKENS_NAMES)
        payload: Payload = {
            "model": self.model,
            "max_tokens": DEFAULT_MAX_TOKENS if max_tokens is None else max_tokens,
            "messages": turns,
        }
        if any(system):
            payload["system"] = "\n\n".join(part for part in system if part)
        for key, value in self.body_kwargs():
            if key in _MAX_TOKENS_NAMES or value is None:
                continue
            if key == "stop":
                payload["stop_sequences"] = [value] if isinstance(value, str) else list(value)
            else:
                payload[key] = value
        return "/v1/messages", payload

    def parse_response(self, data: Any) -> GenerateOutput:
        texts = [block["text"] for block in data["content"] if block.get("type") == "text"]
        stop = data.get("stop_reason")
        no_answer: dict[int, NoAnswer] = {}
        if stop == "refusal":  # what was written before the refusal is not an answer
            no_answer[0] = NoAnswer("refused", "".join(texts) or "stop_reason 'refusal'")
            texts = []
        elif not texts:
            kind: NoAnswerKind = "truncated" if stop == "max_tokens" else "empty"
            no_answer[0] = NoAnswer(kind, f"stop_reason {stop!r}")
        usage = data.get("usage") or {}
        # Prompt tokens served from or written to the prompt cache are reported apart.
        input_tokens = sum(
            int(usage.get(name) or 0)
            for name in ("input_tokens", "cache_creation_input_tokens", "cache_read_input_tokens")
        )
        return GenerateOutput(
            generations=["".join(texts) if texts else None],
            usage=Usage(input_tokens, int(usage.get("output_tokens") or 0)),
            no_answer=no_answer,
        )


def _text_of(content: Any) -> str:
    """The text of a system message, whose content may be a string or a list of text parts."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    return "\n".join(str(part.get("text", "")) for part in content if part.get("type") == "text")


def _to_blocks(content: Any) -> Any:
    if not isinstance(content, list):
        return "" if content is None else content
    return [_image_block(part) if part.get("type") == "image_url" else part for part in content]


def _image_block(part: dict[str, Any]) -> dict[str, Any]:
    image = part["image_url"]
    url = image["url"] if isinstance(image, dict) else image
    if not isinstance(url, str):
        raise LLMError(f"an image_url part needs a URL string, got {type(url).__name__}")
    if url.startswith(("http://", "https://")):
        return {"type": "image", "source": {"type": "url", "url": url}}
    if url.startswith("data:"):
        header, _, data = url[len("data:") :].partition(",")
        media_type, _, encoding = header.partition(";")
        if encoding == "base64" and media_type and data:
            return {
                "type": "image",
                "source": {"type": "base64", "media_type": media_type, "data": data},
            }
    raise LLMError(
        "AnthropicLLM takes images as base64 data URLs (data:image/png;base64,...) or "
        f"http(s) URLs, got {url[:40]!r}"
    )
