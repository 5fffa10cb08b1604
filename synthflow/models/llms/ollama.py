"""Ollama's native chat API (``POST {base_url}/api/chat``).

Ollama also serves OpenAI's chat completions at ``/v1`` (use ``OpenAILLM(base_url=...)``), but the
native API is the one that takes every sampling option, JSON-schema ``format``, images and
``keep_alive``.

Generation kwargs use synthflow's names or Ollama's options (``num_ctx``, ``repeat_penalty``,
``min_p``...; see ``OllamaGenerationKwargs``) and go into ``options`` (``max_new_tokens`` is
Ollama's ``num_predict``), except ``keep_alive``, ``think``, ``format``, ``logprobs`` and
``top_logprobs``, which are top-level request fields. distilabel's ``options`` mapping is merged
into ``options``; a kwarg set to None is left out; a field synthflow doesn't know goes in
``extra_body`` (``{"options": {...}}`` adds options). Note that Ollama's
default context window is small (a few thousand tokens) and silently truncates longer prompts:
set ``num_ctx`` for long inputs.
"""

from __future__ import annotations

from typing import Any, ClassVar, TypedDict

from pydantic import Field

from synthflow.errors import LLMError
from synthflow.exposure_rules import OLLAMA_PORT
from synthflow.models.llms.api import APILLM, Payload
from synthflow.models.llms.base import (
    ChatMessage,
    ChatType,
    GenerateOutput,
    NoAnswer,
    NoAnswerKind,
    Usage,
)
from synthflow.models.llms.generation_kwargs import Stop
from synthflow.models.llms.magpie import MagpieSettings

_OPTION_NAMES = {"max_new_tokens": "num_predict", "max_tokens": "num_predict"}
_TOP_LEVEL = frozenset({"keep_alive", "think", "format", "logprobs", "top_logprobs"})
DEFAULT_PORT = OLLAMA_PORT


class OllamaGenerationKwargs(TypedDict, total=False):
    """synthflow's names, Ollama's options, and the top-level fields of ``/api/chat``."""

    temperature: float
    max_new_tokens: int
    max_tokens: int
    num_predict: int
    top_p: float
    top_k: int
    min_p: float
    typical_p: float
    stop: Stop
    seed: int
    frequency_penalty: float
    presence_penalty: float
    repeat_penalty: float
    repeat_last_n: int
    penalize_newline: bool
    num_keep: int
    num_ctx: int
    num_batch: int
    num_gpu: int
    main_gpu: int
    num_thread: int
    use_mmap: bool
    numa: bool
    mirostat: int
    mirostat_tau: float
    mirostat_eta: float
    tfs_z: float
    options: dict[str, Any]
    keep_alive: str | int | float
    think: bool | str
    format: str | dict[str, Any]
    logprobs: bool
    top_logprobs: int
    extra_body: dict[str, Any]


class OllamaLLM(APILLM, MagpieSettings):
    """A model served by Ollama at ``base_url`` (distilabel's ``host``), which defaults to
    ``OLLAMA_HOST`` (``host:port``, with or without a scheme, as the Ollama CLI reads it), then
    ``http://localhost:11434``.

    No API key is needed (one given is sent as a bearer token, for a server behind a proxy).
    Ollama has no ``n``: several generations are several requests. Structured output is native:
    the JSON schema goes in ``format`` and constrains decoding. ``logprobs=True`` (recent Ollama
    versions) returns Ollama's per-token list for each generation.

    ``latency_adaptive`` is on by default: Ollama queues requests it can't serve yet (up to
    ``OLLAMA_NUM_PARALLEL`` run at once) instead of answering 429, so the only sign of overload
    is rising latency. The limiter starts with a few requests in flight and adds more only
    while latency stays flat, rather than piling every row's request into the server's queue
    (where each would wait, and time out, behind the others).
    """

    provider: ClassVar[str] = "ollama"
    default_base_url: ClassVar[str] = f"http://localhost:{DEFAULT_PORT}"
    base_url_env: ClassVar[str | None] = "OLLAMA_HOST"
    endpoint_form: ClassVar[str] = "ollama_host"  # a bare host, or host:port, as Ollama's own

    field_aliases: ClassVar[dict[str, str]] = {"host": "base_url"}
    generation_kwargs_spec: ClassVar[type | None] = OllamaGenerationKwargs

    tokenizer_id: str | None = Field(
        default=None,
        description="The model's tokenizer on the Hub (Magpie tasks; Ollama applies the chat "
        "template itself).",
    )
    latency_adaptive: bool = Field(
        default=True,
        description="Grow concurrency only while latency stays flat (Ollama queues instead of "
        "answering 429).",
    )

    def auth_headers(self, api_key: str | None) -> dict[str, str]:
        return {"authorization": f"Bearer {api_key}"} if api_key else {}

    def build_request(self, messages: ChatType, num_generations: int) -> tuple[str, Payload]:
        payload: Payload = {
            "model": self.model,
            "messages": [_message(m) for m in messages],
            "stream": False,
        }
        options: Payload = {}
        for key, value in self.body_kwargs():
            if value is None:
                continue
            if key == "options":  # distilabel's way: a mapping of options
                options.update(value)
                continue
            if key in _TOP_LEVEL:
                payload[key] = value
                continue
            if key == "stop" and isinstance(value, str):
                value = [value]
            options[_OPTION_NAMES.get(key, key)] = value
        if options:
            payload["options"] = options
        if self.structured_output is not None:
            payload["format"] = self.structured_output
        return "/api/chat", payload

    def parse_response(self, data: Any) -> GenerateOutput:
        message = data["message"]
        content = message.get("content")
        no_answer: dict[int, NoAnswer] = {}
        if content is None:
            done = data.get("done_reason")
            kind: NoAnswerKind = "truncated" if done == "length" else "empty"
            no_answer[0] = NoAnswer(kind, f"done_reason {done!r}")
        logprobs = data.get("logprobs")
        return GenerateOutput(
            generations=[content],
            usage=Usage(int(data.get("prompt_eval_count") or 0), int(data.get("eval_count") or 0)),
            logprobs=[logprobs] if logprobs is not None else None,
            no_answer=no_answer,
        )


def _message(message: ChatMessage) -> ChatMessage:
    """OpenAI-shaped content parts -> Ollama's text ``content`` and base64 ``images``."""
    if message.get("role") == "developer":
        message = {**message, "role": "system"}
    content = message.get("content")
    if not isinstance(content, list):
        return message
    texts: list[str] = []
    images: list[str] = list(message.get("images") or [])
    for part in content:
        kind = part.get("type") if isinstance(part, dict) else "text"
        if kind == "text":
            texts.append(part if isinstance(part, str) else part.get("text") or "")
        elif kind == "image_url":
            images.append(_base64_image(part["image_url"]))
        else:
            raise LLMError(f"OllamaLLM can't send a {kind!r} content part")
    out = {**message, "content": "\n".join(t for t in texts if t)}
    if images:
        out["images"] = images
    return out


def _base64_image(image: Any) -> str:
    url = image["url"] if isinstance(image, dict) else str(image)
    header, _, data = url.partition(",")
    if not (header.startswith("data:") and header.endswith(";base64")):
        raise LLMError(
            "OllamaLLM takes images as base64 data URLs (data:image/png;base64,...); "
            f"fetch {url[:80]} and encode it first"
        )
    return data
