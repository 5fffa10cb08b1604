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
from typing import Any, ClassVar, Self

from pydantic import Field, PrivateAttr, model_validator

from synthflow.errors import LLMError
from synthflow.models.llms.api import Payload
from synthflow.models.llms.base import ChatType, GenerateOutput, NoAnswer, Usage
from synthflow.models.llms.magpie import (
    MagpieSettings,
    UserTurnWriter,
    load_tokenizer,
    user_turn_prompt,
)
from synthflow.models.llms.openai import OpenAIGenerationKwargs, OpenAILLM

_SERVERLESS_HEADERS = {
    # Wait for a cold model to load instead of answering 503 at once.
    "x-wait-for-model": "true",
    # The serverless API caches answers to identical requests, which would make several
    # generations of one prompt identical; synthflow has its own response cache.
    "x-use-cache": "false",
}


_TEXT_GENERATION_ONLY = (
    "do_sample",
    "repetition_penalty",
    "return_full_text",
    "top_k",
    "top_n_tokens",
    "typical_p",
    "watermark",
)
"""distilabel's generation kwargs for TGI's raw text-generation route, which the messages API
doesn't take (distilabel drops them too when it calls the chat route)."""


_RAW_RENAMES = {"max_tokens": "max_new_tokens", "stop_sequences": "stop"}
"""Generation kwargs under the names of TGI's raw text-generation route."""


class InferenceEndpointsGenerationKwargs(OpenAIGenerationKwargs, total=False):
    """The chat fields, and distilabel's names for TGI's (``stop_sequences`` is sent as
    ``stop``; the text-generation-only ones are taken and not sent)."""

    logit_bias: dict[str | int, float] | list[float]  # type: ignore[misc]  # distilabel's list
    stop_sequences: list[str]
    tool_prompt: str
    top_n_tokens: int
    do_sample: bool
    repetition_penalty: float
    return_full_text: bool
    top_k: int
    typical_p: float
    watermark: bool


class InferenceEndpointsLLM(OpenAILLM, MagpieSettings, UserTurnWriter):
    """A model on Hugging Face: ``model`` alone is a Hub model id on the serverless Inference API
    (``https://api-inference.huggingface.co/models/{model}/v1/chat/completions``); ``base_url``
    is a dedicated Inference Endpoint (or any TGI server), called at ``{base_url}/v1/chat/
    completions``, where ``model`` is optional and only names the model in the output.

    The token is ``api_key``, else ``HF_TOKEN``, else ``HUGGING_FACE_HUB_TOKEN``; the serverless
    API requires one. ``HF_INFERENCE_ENDPOINT`` (huggingface_hub's variable) replaces the
    serverless API's root, as it does for distilabel. A dedicated endpoint scaled to zero
    answers 503 while it starts (minutes): raise ``max_retries`` and ``retry_backoff`` for those.

    distilabel's settings work as there: ``model_id`` is ``model``; ``endpoint_name`` (with
    ``endpoint_namespace``, else the token's user) is a dedicated endpoint whose URL ``load()``
    looks up with ``huggingface_hub``; ``model_display_name`` is the ``model_name`` column.
    Tasks send chat messages, and the server applies the model's chat template to them, so the
    text-generation-only kwargs (``do_sample``, ``repetition_penalty``, ``top_k``, ...) are not
    sent; ``stop_sequences`` is sent as ``stop``.

    Magpie's user turns (``magpie_pre_query_template='llama3'``, ``'qwen2'`` or the text) go to
    TGI's raw text-generation route (``POST {base_url}/generate``, or the serverless
    ``/models/{model}``) with ``{"inputs": <raw prompt>, "parameters": {...}}``, where every
    generation kwarg is sent (``max_new_tokens``, ``temperature``, ``top_p``, ``top_k``,
    ``do_sample``, ``repetition_penalty``, ``stop``, ``seed``, ...). A system prompt or earlier
    turns are rendered in the Llama 3 or Qwen 2 format; a template of another format uses
    ``tokenizer_id``'s chat template (loaded by ``load()``; needs transformers).
    """

    provider: ClassVar[str] = "huggingface"
    default_base_url: ClassVar[str] = "https://api-inference.huggingface.co"
    api_key_env: ClassVar[str | None] = "HF_TOKEN"
    api_key_envs: ClassVar[tuple[str, ...]] = ("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN")
    # huggingface_hub's variable for the serverless API's root (distilabel's client reads it).
    base_url_env: ClassVar[str | None] = "HF_INFERENCE_ENDPOINT"
    supports_n: ClassVar[bool] = False
    field_aliases: ClassVar[dict[str, str]] = {"model_id": "model"}
    renames: ClassVar[dict[str, str]] = {**OpenAILLM.renames, "stop_sequences": "stop"}
    generation_kwargs_spec: ClassVar[type | None] = InferenceEndpointsGenerationKwargs

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
    tokenizer_id: str | None = Field(
        default=None, description="The model's tokenizer on the Hub (used by the Magpie tasks)."
    )
    model_display_name: str | None = Field(
        default=None, description="The name written in the model_name column."
    )

    _tokenizer: Any = PrivateAttr(default=None)

    @model_validator(mode="after")
    def _model_or_endpoint(self) -> Self:
        if not self.model and not self.base_url and not self.endpoint_name:
            raise ValueError(
                "InferenceEndpointsLLM needs model_id=... (a Hub model id, for the serverless "
                "API), endpoint_name=... or base_url=... (an Inference Endpoint)"
            )
        return self

    @property
    def serverless(self) -> bool:
        return not self.base_url and not self.endpoint_name

    @property
    def model_name(self) -> str:
        return self.model_display_name or self.model or self.endpoint_name or self.endpoint

    def load(self) -> None:
        if self.endpoint_name and not self.base_url:
            self.base_url = self._endpoint_url()
        super().load()
        # Only a template of another format needs the model's own chat template, to render a
        # system prompt or earlier turns before it.
        if self.tokenizer_id and not self.renders_without_tokenizer() and self._tokenizer is None:
            self._tokenizer = load_tokenizer(self.tokenizer_id)

    def _endpoint_url(self) -> str:
        try:
            from huggingface_hub import get_inference_endpoint
        except ImportError:
            raise LLMError(
                "InferenceEndpointsLLM(endpoint_name=...) looks the endpoint up with "
                "huggingface_hub: pip install huggingface_hub, or pass base_url=<its URL>"
            ) from None
        name, namespace = self.endpoint_name or "", self.endpoint_namespace
        try:
            found = get_inference_endpoint(name, namespace=namespace, token=self.resolved_api_key())
        except Exception as exc:
            raise LLMError(
                f"can't look up Inference Endpoint {name!r}: {exc}; check endpoint_name and "
                "endpoint_namespace, or pass base_url=<its URL>"
            ) from None
        if not found.url:
            raise LLMError(
                f"Inference Endpoint {name!r} has no URL (status {found.status!r}): resume it "
                "in the Hugging Face console, or pass base_url=<its URL>"
            )
        return str(found.url)

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
        if self._user_turns:
            return self._raw_request(messages)
        path, payload = super().build_request(messages, num_generations)
        for name in _TEXT_GENERATION_ONLY:
            payload.pop(name, None)
        payload["model"] = self.model or "tgi"  # TGI requires the field and ignores its value
        if self.structured_output is not None:
            payload["response_format"] = {"type": "json", "value": self.structured_output}
        return path, payload

    # -- Magpie: TGI's raw text-generation route ------------------------------------------

    async def agenerate_user_turn(
        self, messages: ChatType, *, num_generations: int = 1
    ) -> GenerateOutput:
        return await self.raw_user_turns(messages, num_generations)  # the raw route

    def _raw_request(self, messages: ChatType) -> tuple[str, Payload]:
        prompt = user_turn_prompt(messages, self.pre_query_template() or "", self._tokenizer)
        parameters: Payload = {"return_full_text": False, "details": True}
        for key, value in self.generation_kwargs.items():
            parameters[_RAW_RENAMES.get(key, key)] = value
        if isinstance(parameters.get("stop"), str):
            parameters["stop"] = [parameters["stop"]]
        if self.serverless:
            path = f"/models/{self.model}"
        else:
            root = self.endpoint.removesuffix("/v1")
            path = f"{root}/generate"
        return path, {"inputs": prompt, "parameters": parameters}

    def parse_response(self, data: Any) -> GenerateOutput:
        if not self._user_turns:
            return super().parse_response(data)
        # TGI answers one object; the serverless API a list of them.
        answer = data[0] if isinstance(data, list) else data
        text = answer["generated_text"]
        details = answer.get("details") or {}
        if not isinstance(text, str):
            raise TypeError(f"generated_text is a {type(text).__name__}, not text")
        no_answer: dict[int, NoAnswer] = {}
        if not text.strip() and details.get("finish_reason") == "length":
            no_answer[0] = NoAnswer("truncated", "finish_reason 'length'")
        prefill = details.get("prefill")
        usage = Usage(
            len(prefill) if isinstance(prefill, list) else 0,
            int(details.get("generated_tokens") or 0),
        )
        kept: str | None = None if no_answer else text
        return GenerateOutput(generations=[kept], usage=usage, no_answer=no_answer)
