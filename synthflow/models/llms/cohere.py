"""Cohere's v2 Chat API (``POST {base_url}/v2/chat``).

Messages keep the chat shape (roles system, user, assistant, tool); text and ``image_url`` parts
are the same as OpenAI's and pass through unchanged. Generation kwargs are renamed where Cohere
names them differently (``max_new_tokens`` -> ``max_tokens``, ``top_p`` -> ``p``, ``top_k`` ->
``k``, ``stop`` -> ``stop_sequences``); ``temperature``, ``seed``, ``logprobs`` and the rest
pass through. One completion per request: APILLM sends ``num_generations`` requests.
Structured output uses the native JSON-schema mode (``response_format``), and APILLM still
validates each answer.
"""

from __future__ import annotations

import os
from typing import Any, ClassVar, TypedDict

from synthflow.models.llms.api import APILLM, Payload
from synthflow.models.llms.base import ChatType, GenerateOutput, NoAnswer, NoAnswerKind, Usage
from synthflow.models.llms.generation_kwargs import Stop

# synthflow's generation kwarg -> the name in the request body. Others pass through unchanged.
_RENAMES = {"max_new_tokens": "max_tokens", "top_p": "p", "top_k": "k", "stop": "stop_sequences"}


class CohereGenerationKwargs(TypedDict, total=False):
    """The v2 Chat API's fields, under synthflow's names or Cohere's (``p``, ``k``...)."""

    temperature: float
    max_new_tokens: int
    max_tokens: int
    top_p: float
    p: float
    top_k: int
    k: int
    seed: int | float  # distilabel types it as a float
    stop: Stop
    stop_sequences: list[str]
    frequency_penalty: float
    presence_penalty: float
    raw_prompting: bool
    logprobs: bool
    safety_mode: str
    tools: list[dict[str, Any]]
    tool_choice: str
    strict_tools: bool
    documents: list[Any]
    citation_options: dict[str, Any]
    thinking: dict[str, Any]
    extra_body: dict[str, Any]


class CohereLLM(APILLM):
    """Command models through the v2 Chat API. The key is read from ``CO_API_KEY``, else
    ``COHERE_API_KEY``."""

    provider: ClassVar[str] = "cohere"
    default_base_url: ClassVar[str] = "https://api.cohere.com"
    api_key_env: ClassVar[str | None] = "CO_API_KEY"
    base_url_env: ClassVar[str | None] = "CO_API_URL"
    fallback_api_key_env: ClassVar[str] = "COHERE_API_KEY"
    api_key_envs: ClassVar[tuple[str, ...]] = ("CO_API_KEY", "COHERE_API_KEY")
    supports_n: ClassVar[bool] = False
    generation_kwargs_spec: ClassVar[type | None] = CohereGenerationKwargs

    def resolved_api_key(self) -> str | None:
        return super().resolved_api_key() or os.environ.get(self.fallback_api_key_env) or None

    def auth_headers(self, api_key: str | None) -> dict[str, str]:
        return {"authorization": f"Bearer {api_key}"} if api_key else {}

    def build_request(self, messages: ChatType, num_generations: int) -> tuple[str, Payload]:
        # An empty assistant turn (a re-ask after an empty answer) is left out: the API wants
        # content in every turn.
        turns = [m for m in messages if m.get("role") != "assistant" or m.get("content")]
        payload: Payload = {"model": self.model, "messages": turns}
        for key, value in self.body_kwargs():
            if key == "stop" and isinstance(value, str):
                value = [value]
            payload[_RENAMES.get(key, key)] = value
        if self.structured_output is not None:
            payload["response_format"] = {
                "type": "json_object",
                "json_schema": self.structured_output,
            }
        return "/v2/chat", payload

    def parse_response(self, data: Any) -> GenerateOutput:
        content = data["message"].get("content") or []
        if isinstance(content, str):
            texts = [content]
        else:
            texts = [part["text"] for part in content if part.get("type") == "text"]
        finish = data.get("finish_reason")
        no_answer: dict[int, NoAnswer] = {}
        if finish == "ERROR":  # generation failed part way: what came is not an answer
            no_answer[0] = NoAnswer("empty", "finish_reason 'ERROR'")
            texts = []
        elif not texts:
            kind: NoAnswerKind = "truncated" if finish == "MAX_TOKENS" else "empty"
            no_answer[0] = NoAnswer(kind, f"finish_reason {finish!r}")
        usage = data.get("usage") or {}
        tokens = usage.get("tokens") or usage.get("billed_units") or {}
        logprobs = data.get("logprobs")
        return GenerateOutput(
            generations=["".join(texts) if texts else None],
            usage=Usage(
                int(tokens.get("input_tokens") or 0), int(tokens.get("output_tokens") or 0)
            ),
            logprobs=None if logprobs is None else [logprobs],
            no_answer=no_answer,
        )
