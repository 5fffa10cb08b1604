"""LiteLLM: one adapter for the many providers that ``litellm.acompletion`` reaches.

A thin adapter: LiteLLM does the provider's wire format, its retries (``max_retries``) and its
timeouts; synthflow's endpoint rate limiter and structured-output re-asks are not applied. For
JSON output, pass ``response_format`` in ``generation_kwargs`` as the provider expects it.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, ClassVar, TypedDict

import anyio
from pydantic import Field, SecretStr

from synthflow.audit import Exposure
from synthflow.errors import (
    LLMConnectionError,
    LLMError,
    LLMResponseError,
    LLMStatusError,
    LLMTimeoutError,
)
from synthflow.exposure_rules import litellm_exposures
from synthflow.models.callpath.answers import require_answers
from synthflow.models.llms.base import LLM, CacheIdentity, ChatType, GenerateOutput, NoAnswer, Usage
from synthflow.models.llms.generation_kwargs import Stop
from synthflow.models.llms.local.base import missing_extra
from synthflow.models.llms.openai import read_choice
from synthflow.runtime_parameters import RuntimeParameter

# synthflow's generation kwarg -> LiteLLM's (OpenAI's) name. Others pass through unchanged.
_RENAMES = {"max_new_tokens": "max_tokens"}


class LiteLLMGenerationKwargs(TypedDict, total=False):
    """distilabel's names, and OpenAI's that LiteLLM maps to each provider; a provider's own
    field goes in ``extra_body``."""

    max_new_tokens: int
    max_tokens: int
    temperature: float
    top_p: float
    top_k: int
    stop: Stop
    seed: int
    presence_penalty: float
    frequency_penalty: float
    logit_bias: dict[str | int, float]
    logprobs: bool
    top_logprobs: int
    response_format: dict[str, Any]
    reasoning_effort: str
    tools: list[dict[str, Any]]
    tool_choice: str | dict[str, Any]
    functions: list[Any]
    function_call: str | dict[str, Any]
    user: str
    metadata: dict[str, Any]
    api_base: str
    api_version: str
    api_key: str
    model_list: list[Any]
    mock_response: str
    force_timeout: int | float
    custom_llm_provider: str
    drop_params: bool
    extra_headers: dict[str, str]
    extra_body: dict[str, Any]


class LiteLLM(LLM):
    """Any model LiteLLM can call, as ``"provider/model"`` (``pip install 'synthflow[litellm]'``).

    It waits on the network, so it belongs on the event loop (the default executor). Several
    generations are asked with ``n``; set ``supports_n=False`` for providers without it, and
    they become concurrent single calls. ``generation_kwargs`` go to ``litellm.acompletion``
    (``max_new_tokens`` as ``max_tokens``).
    """

    billed: ClassVar[bool] = True
    generation_kwargs_spec: ClassVar[type | None] = LiteLLMGenerationKwargs
    passthrough_generation_kwarg: ClassVar[str | None] = "extra_body"

    model: str = Field(description="The LiteLLM model string, e.g. 'openai/gpt-4o-mini'.")
    api_base: str | None = Field(default=None, description="The endpoint, when not the default.")
    api_key: SecretStr | None = Field(
        default=None,
        exclude=True,
        description="API key; LiteLLM reads the provider's environment variable when unset.",
    )
    timeout: RuntimeParameter[float] = Field(
        default=120.0, gt=0, description="Seconds before one request times out."
    )
    max_retries: RuntimeParameter[int] = Field(
        default=3, ge=0, description="Retries LiteLLM makes after a failed request."
    )
    supports_n: bool = Field(
        default=True, description="The provider returns several completions per request."
    )

    @property
    def model_name(self) -> str:
        return self.model

    def cache_identity(self) -> CacheIdentity:
        return CacheIdentity(
            "litellm", self.model, dict(self.generation_kwargs), None, self.api_base
        )

    def exposures(self, where: str) -> Iterator[Exposure]:
        values = {"model": self.model, "api_base": self.api_base, "api_key": self.api_key}
        return litellm_exposures(where, values, {})

    def load(self) -> None:
        _import_litellm()  # fail before the first row, not on it

    def request_arguments(self, messages: ChatType, num_generations: int) -> dict[str, Any]:
        """The keyword arguments of one ``litellm.acompletion`` call."""
        kwargs: dict[str, Any] = {"model": self.model, "messages": messages}
        if num_generations != 1:
            kwargs["n"] = num_generations
        for key, value in self.generation_kwargs.items():
            kwargs[_RENAMES.get(key, key)] = value
        kwargs["timeout"] = self.timeout
        kwargs["num_retries"] = self.max_retries
        if self.api_base is not None:
            kwargs["api_base"] = self.api_base
        if self.api_key is not None:
            kwargs["api_key"] = self.api_key.get_secret_value()
        return kwargs

    async def agenerate(self, messages: ChatType, *, num_generations: int = 1) -> GenerateOutput:
        output = await self._generate(messages, num_generations)
        return require_answers(output, num_generations, who=type(self).__name__)

    async def _generate(self, messages: ChatType, num_generations: int) -> GenerateOutput:
        if self.supports_n or num_generations == 1:
            output = await self._complete(messages, num_generations)
            # Some providers (or drop_params=True) answer fewer than n: ask for the rest.
            while len(output.generations) < num_generations:
                more = await self._complete(messages, num_generations - len(output.generations))
                if not more.generations:
                    break  # the shortfall fails the call (synthflow.models.callpath.answers)
                offset = len(output.generations)
                output.no_answer.update({offset + i: r for i, r in more.no_answer.items()})
                output.generations.extend(more.generations)
                output.usage = output.usage + more.usage
            return output
        outputs: list[GenerateOutput] = [GenerateOutput([]) for _ in range(num_generations)]

        async def one(i: int) -> None:
            outputs[i] = await self._complete(messages, 1)

        async with anyio.create_task_group() as tg:
            for i in range(num_generations):
                tg.start_soon(one, i)
        return GenerateOutput(
            generations=[out.generations[0] if out.generations else None for out in outputs],
            usage=sum((out.usage for out in outputs), Usage()),
            no_answer={
                i: out.no_answer.get(0) or NoAnswer("missing")
                for i, out in enumerate(outputs)
                if not out.generations or out.generations[0] is None
            },
        )

    async def _complete(self, messages: ChatType, num_generations: int) -> GenerateOutput:
        litellm = _import_litellm()
        try:
            response = await litellm.acompletion(
                **self.request_arguments(messages, num_generations)
            )
        except Exception as exc:
            raise _mapped(litellm, exc) from exc
        texts: list[str | None] = []
        no_answer: dict[int, NoAnswer] = {}
        try:
            choices = sorted(_get(response, "choices"), key=lambda c: _get(c, "index", 0) or 0)
            for i, choice in enumerate(choices):
                text, why = read_choice(_as_dict(choice))
                texts.append(text)
                if why is not None:
                    no_answer[i] = why
        except (AttributeError, KeyError, TypeError) as exc:
            raise LLMResponseError(f"LiteLLM could not read the response: {exc}") from exc
        usage = _get(response, "usage", None)
        return GenerateOutput(
            no_answer=no_answer,
            generations=texts,
            usage=Usage(
                int(_get(usage, "prompt_tokens", 0) or 0),
                int(_get(usage, "completion_tokens", 0) or 0),
            ),
        )


_MISSING = object()


def _as_dict(choice: Any) -> dict[str, Any]:
    """The fields of a LiteLLM choice that decide whether it is an answer, as a plain dict."""
    message = _get(choice, "message")
    return {
        "finish_reason": _get(choice, "finish_reason", None),
        "message": {
            "content": _get(message, "content", None),
            "refusal": _get(message, "refusal", None),
        },
    }


def _get(obj: Any, name: str, default: Any = _MISSING) -> Any:
    """A field of LiteLLM's response objects, which are read as attributes or as keys."""
    value = obj.get(name, default) if isinstance(obj, dict) else getattr(obj, name, default)
    if value is _MISSING:
        raise KeyError(name)
    return value


def _mapped(litellm: Any, exc: Exception) -> LLMError:
    """LiteLLM's exception as synthflow's (its retries are spent by now)."""
    message = f"LiteLLM {type(exc).__name__}: {exc}"
    timeout = getattr(litellm, "Timeout", None)
    if isinstance(timeout, type) and isinstance(exc, timeout):
        return LLMTimeoutError(message)
    connection = getattr(litellm, "APIConnectionError", None)
    if isinstance(connection, type) and isinstance(exc, connection):
        return LLMConnectionError(message)
    status = getattr(exc, "status_code", None)
    if isinstance(status, int):
        return LLMStatusError(message, status_code=status, body=str(exc))
    return LLMError(message)


def _import_litellm() -> Any:
    try:
        import litellm
    except ImportError as exc:
        raise missing_extra("LiteLLM", "litellm", "litellm") from exc
    return litellm
