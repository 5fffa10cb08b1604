"""APILLM: the base of every LLM reached over HTTP.

A provider module implements three things: the auth headers, the request body for a
conversation, and how to read the response body. Everything else is shared and happens here, in
this order, around each HTTP request:

    structured-output re-ask (bounded)
      └── retries (tenacity; 429, 5xx, timeouts, resets, unreadable bodies, missing answers)
            └── the endpoint's rate limiter (concurrency, RPM/TPM buckets; a 429 lowers
                  │   the in-flight ceiling or pauses the endpoint, as it tells)
                  └── one HTTP request (synthflow.models.callpath._http), its answers checked
                      (synthflow.models.callpath.answers: no text is a failed call, never a value)

One limiter serves each endpoint and API key, shared by every step and LLM object that uses them.
API keys are ``SecretStr``: never serialized, logged, or shown in errors.
"""

from __future__ import annotations

import importlib
import os
import time
from abc import abstractmethod
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any, ClassVar, Self

import anyio
from pydantic import Field, PrivateAttr, SecretStr, model_validator

from synthflow.audit import Exposure, host_of
from synthflow.errors import (
    FATAL_STATUSES,
    LLMConnectionError,
    LLMEmptyAnswerError,
    LLMError,
    LLMResponseError,
    LLMStatusError,
    first_error,
)
from synthflow.exposure_rules import api_endpoint, resolved_url
from synthflow.models.callpath._http import HTTPClient, JSONResponse, transport_name
from synthflow.models.callpath.answers import AnswerPool, empty_answer_error, samples
from synthflow.models.callpath.limiter import EndpointLimiter, endpoint_key, get_limiter
from synthflow.models.callpath.retry import call_with_retries, retry_after_from_headers
from synthflow.models.callpath.structured import StructuredOutputLLM
from synthflow.models.llms.base import CacheIdentity, ChatType, GenerateOutput, Usage
from synthflow.runtime_parameters import RuntimeParameter

if TYPE_CHECKING:
    from synthflow.models.callpath.batch_wire import BatchWire

Payload = dict[str, Any]


class APILLM(StructuredOutputLLM):
    """Shared configuration and call path of HTTP API clients. See the module docstring."""

    provider: ClassVar[str] = "api"
    billed: ClassVar[bool] = True
    default_base_url: ClassVar[str] = ""
    api_key_env: ClassVar[str | None] = None
    api_key_envs: ClassVar[tuple[str, ...]] = ()
    """Every variable the key is read from, in order, when it is more than ``api_key_env``."""
    base_url_env: ClassVar[str | None] = None
    """The variable that overrides ``default_base_url`` (distilabel's name for it)."""
    base_url_env_path: ClassVar[str] = ""
    """The path synthflow's base URL adds to the root that ``base_url_env`` names, where
    distilabel's variable names the API's root (``GROQ_BASE_URL``)."""
    endpoint_form: ClassVar[str] = "as_given"
    """How the server takes the URL: ``synthflow.exposure_rules.URL_FORMS``."""
    supports_n: ClassVar[bool] = False
    """The API returns several completions per request (OpenAI's ``n``)."""
    passthrough_generation_kwarg: ClassVar[str | None] = "extra_body"
    unsent_generation_kwargs: ClassVar[frozenset[str]] = frozenset()
    """Kwargs taken (distilabel's pipelines pass them) but not sent: the API has no use for them."""

    model: str = Field(description="The model to call.")
    base_url: str | None = Field(
        default=None, description="The endpoint's base URL; the provider's default when unset."
    )
    api_key: SecretStr | None = Field(
        default=None,
        exclude=True,
        description="API key; read from the provider's environment variable when unset.",
    )
    timeout: RuntimeParameter[float] = Field(
        default=120.0, gt=0, description="Seconds before one request times out."
    )
    max_retries: RuntimeParameter[int] = Field(
        default=5, ge=0, description="Retries after a 429, 5xx, timeout or connection error."
    )
    retry_backoff: RuntimeParameter[float] = Field(
        default=1.0,
        ge=0,
        description="Seconds before the first retry (doubling, with jitter), and the endpoint "
        "pause after a 429 that has no Retry-After.",
    )
    max_concurrency: RuntimeParameter[int | None] = Field(
        default=None,
        ge=1,
        description="Requests in flight to this endpoint, across every step that uses it.",
    )
    requests_per_minute: RuntimeParameter[float | None] = Field(
        default=None, gt=0, description="Request budget per minute for this endpoint and key."
    )
    tokens_per_minute: RuntimeParameter[float | None] = Field(
        default=None, gt=0, description="Token budget per minute for this endpoint and key."
    )
    latency_adaptive: bool = Field(
        default=False,
        description="For self-hosted servers that never answer 429: grow concurrency only "
        "while latency stays flat.",
    )
    include_raw: bool = Field(
        default=False, description="Keep each raw response body in the output."
    )
    default_headers: dict[str, str] = Field(
        default_factory=dict, description="More HTTP headers sent with every request."
    )

    use_offline_batch_generation: RuntimeParameter[bool] = Field(
        default=False,
        description="Send the requests of a run as offline batches (OpenAI's Batch API, "
        "Anthropic's Message Batches), answered within 24 hours at half the price.",
    )
    offline_batch_generation_block_until_done: RuntimeParameter[float | None] = Field(
        default=None,
        ge=0,
        description="With offline batches: poll every this many seconds until they are done; "
        "None submits them and ends the run, and running it again collects them.",
    )
    offline_batch_generation_fallback: RuntimeParameter[bool] = Field(
        default=False,
        description="With offline batches: send a request whose batch errored, expired or "
        "was cancelled again as an ordinary call (at the full price) instead of failing its "
        "row.",
    )

    _http: HTTPClient | None = PrivateAttr(default=None)
    _limiter: tuple[tuple[Any, ...], EndpointLimiter] | None = PrivateAttr(default=None)
    _user_turns: bool = PrivateAttr(default=False)
    """Set on the copy ``raw_user_turns`` makes: its requests go to the server's raw
    completion route (a client that writes Magpie's user turns reads it in
    ``build_request``)."""

    # -- identity and configuration ---------------------------------------------------------

    @model_validator(mode="after")
    def _has_batch_api(self) -> Self:
        if self.use_offline_batch_generation and self.offline_batch_wire() is None:
            raise ValueError(
                f"{type(self).__name__} has no offline batch API synthflow speaks (OpenAILLM, "
                "GroqLLM and AnthropicLLM have one): remove use_offline_batch_generation"
            )
        return self

    def offline_batch_wire(self) -> BatchWire | None:
        """The provider's batch API, for ``use_offline_batch_generation``; None: it has none."""
        return None

    @property
    def model_name(self) -> str:
        return self.model

    def cache_identity(self) -> CacheIdentity:
        # The resolved endpoint (argument, environment variable or default): another server
        # never answers from this one's cache.
        return CacheIdentity(
            self.provider,
            self.model,
            dict(self.generation_kwargs),
            self.structured_output,
            self.endpoint,
        )

    @property
    def endpoint(self) -> str:
        return resolved_url(
            self.base_url,
            self.base_url_env,
            self.default_base_url,
            self.endpoint_form,
            env_path=self.base_url_env_path,
        )

    def resolved_api_key(self) -> str | None:
        if self.api_key is not None:
            return self.api_key.get_secret_value()
        if self.api_key_env:
            return os.environ.get(self.api_key_env) or None
        return None

    def key_env_names(self) -> tuple[str, ...]:
        """The environment variables ``resolved_api_key`` reads, in order."""
        return self.api_key_envs or ((self.api_key_env,) if self.api_key_env else ())

    def provider_hosts(self) -> tuple[str, ...]:
        """The provider's own hosts: where a key from its environment variable belongs."""
        return (host_of(self.default_base_url),) if self.default_base_url else ()

    def exposures(self, where: str) -> Iterator[Exposure]:
        facts = {
            "provider": self.provider,
            "base_url_env": self.base_url_env,
            "key_envs": self.key_env_names(),
            "own_hosts": self.provider_hosts(),
        }
        values = {"base_url": self.base_url, "api_key": self.api_key}
        yield api_endpoint(where, values, facts, url=self.endpoint)

    def load(self) -> None:
        if not self.endpoint:
            raise LLMError(f"{type(self).__name__} needs base_url=...")
        if self.requires_api_key() and self.resolved_api_key() is None:
            raise LLMError(
                f"{type(self).__name__} needs an API key: pass api_key=... or set "
                f"{self.api_key_env}"
            )
        # Import the HTTP transport here (a worker thread, before the run starts) rather than
        # inside the first request, where the event loop would stall on it.
        importlib.import_module(transport_name())

    def requires_api_key(self) -> bool:
        """Hosted endpoints need a key; a self-hosted one (another base_url) may not."""
        return bool(self.api_key_env) and self.endpoint == self.default_base_url.rstrip("/")

    # -- what a provider implements ---------------------------------------------------------

    @abstractmethod
    def auth_headers(self, api_key: str | None) -> dict[str, str]:
        """Headers that authenticate a request."""

    @abstractmethod
    def build_request(self, messages: ChatType, num_generations: int) -> tuple[str, Payload]:
        """The path (relative to the base URL, or absolute) and JSON body of one request.
        Generation kwargs come from ``body_kwargs()``; ``extra_body`` is merged in after."""

    def body_kwargs(self) -> list[tuple[str, Any]]:
        """The generation kwargs a request carries: all but the escape hatch (``extra_body``,
        merged into the body as it is) and the unsent ones."""
        skip, extra = self.unsent_generation_kwargs, self.passthrough_generation_kwarg
        return [
            (key, value)
            for key, value in self.generation_kwargs.items()
            if key != extra and key not in skip
        ]

    def prepared_request(self, messages: ChatType, num_generations: int) -> tuple[str, Payload]:
        """``build_request``, with ``generation_kwargs["extra_body"]`` merged into the body
        (mappings key by key, so ``{"options": {"num_gpu": 1}}`` adds to Ollama's options)."""
        path, payload = self.build_request(messages, num_generations)
        extra = self.generation_kwargs.get(self.passthrough_generation_kwarg or "")
        return path, (payload if not extra else _merged(payload, extra))

    @abstractmethod
    def parse_response(self, data: Any) -> GenerateOutput:
        """Read a 2xx body. May raise KeyError/TypeError/ValueError on an unexpected shape."""

    async def send(self, path: str, payload: Payload, headers: dict[str, str]) -> JSONResponse:
        """One HTTP request inside an attempt (under the limiter and retries): a JSON POST by
        default; a client whose answer is not JSON (an image) overrides it."""
        return await self._client().post_json(path, payload, headers)

    # -- the call path ----------------------------------------------------------------------

    async def raw_user_turns(self, messages: ChatType, num_generations: int) -> GenerateOutput:
        """``agenerate`` through a shallow copy with ``_user_turns`` set, sharing this client's
        HTTP connections and limiter (created first, so that the copy doesn't make its own)."""
        self._client()
        writer = self.model_copy(update={"structured_output": None})
        writer._user_turns = True
        return await writer.agenerate(messages, num_generations=num_generations)

    def _client(self) -> HTTPClient:
        if self._http is None:
            key = self.resolved_api_key()
            self._http = HTTPClient(self.endpoint, timeout=self.timeout, secret=key)
        return self._http

    limit_per_model: ClassVar[bool] = False
    """The provider's quotas are per model (Gemini), not per key: one limiter per model."""

    def limiter_endpoint(self) -> str:
        """What one rate budget covers: the endpoint, or the endpoint and model."""
        return f"{self.endpoint}#{self.model}" if self.limit_per_model else self.endpoint

    def limiter(self) -> EndpointLimiter:
        endpoint = self.limiter_endpoint()
        settings = {
            "max_concurrency": self.max_concurrency,
            "requests_per_minute": self.requests_per_minute,
            "tokens_per_minute": self.tokens_per_minute,
            "latency_adaptive": self.latency_adaptive,
            "base_pause": self.retry_backoff,
        }
        identity = (endpoint, self.resolved_api_key(), tuple(settings.values()))
        # Looked up on every request: remember it until the endpoint or a setting changes.
        if self._limiter is None or self._limiter[0] != identity:
            limiter = get_limiter(endpoint_key(endpoint, identity[1]), **settings)
            self._limiter = (identity, limiter)
        return self._limiter[1]

    async def aclose(self) -> None:
        if self._http is not None:
            http, self._http = self._http, None
            await http.aclose()

    async def agenerate(self, messages: ChatType, *, num_generations: int = 1) -> GenerateOutput:
        if self.use_offline_batch_generation:
            raise LLMError(
                f"{type(self).__name__}(use_offline_batch_generation=True) sends its requests as "
                "batches from a pipeline run (pipeline.run()): run it in a pipeline, or set "
                "use_offline_batch_generation=False to call it directly"
            )
        if num_generations == 1 or self.supports_n:
            output = await self._request(messages, num_generations)
        else:
            output = await self._fan_out(messages, num_generations)
        return await self.enforce_schema(messages, output, self._ask_once)

    async def _ask_once(self, messages: ChatType) -> GenerateOutput:
        return await self._request(messages, 1)

    async def _fan_out(self, messages: ChatType, n: int) -> GenerateOutput:
        outputs: list[GenerateOutput] = [GenerateOutput([]) for _ in range(n)]
        empty: list[LLMEmptyAnswerError] = []
        seed = self.generation_kwargs.get("seed")
        self._client()  # created before any copy below, so that they all share it

        async def one(i: int) -> None:
            caller = self
            if isinstance(seed, int) and i:
                # With a fixed seed every request would return the same text: the i-th of n
                # generations asks with seed + i (a shallow copy shares the HTTP client).
                kwargs = {**self.generation_kwargs, "seed": seed + i}
                caller = self.model_copy(update={"generation_kwargs": kwargs})
            try:
                outputs[i] = await caller._request(messages, 1)
            except LLMEmptyAnswerError as exc:
                # Not a reason to cancel the others: their answers are kept (and cached).
                empty.append(exc)
                kept = exc.output or GenerateOutput([])
                kept.retries, kept.rate_limited = exc.retries, exc.rate_limited
                outputs[i] = kept

        try:
            async with anyio.create_task_group() as tg:
                for i in range(n):
                    tg.start_soon(one, i)
        except BaseExceptionGroup as group:
            # One failed generation fails the call: report its error alone, with what the
            # generations that did finish cost.
            failure = first_error(group)
            if isinstance(failure, LLMError):
                done = _combine([out for out in outputs if out.generations])
                failure.usage = done.usage + (failure.usage or Usage())
                failure.retries += done.retries
                failure.rate_limited += done.rate_limited
            raise failure from failure.__cause__
        combined = _combine(outputs)
        if not empty:
            return combined
        reasons = [reason for exc in empty for reason in exc.reasons]
        error = empty_answer_error(type(self).__name__, n, len(empty), reasons, combined)
        raise error from empty[0]

    async def _request(self, messages: ChatType, num_generations: int) -> GenerateOutput:
        headers = {**self.default_headers, **self.auth_headers(self.resolved_api_key())}
        limiter = self.limiter()
        estimate = _estimate_tokens(messages, self.generation_kwargs, num_generations)
        counts = {"retries": 0, "rate_limited": 0}
        pool = AnswerPool(
            num_generations, who=type(self).__name__, sampling=samples(self.generation_kwargs)
        )

        def on_retry(exc: BaseException) -> None:
            counts["retries"] += 1
            if isinstance(exc, LLMStatusError) and exc.status_code == 429:
                counts["rate_limited"] += 1

        async def attempt() -> GenerateOutput:
            # A retry after an answer that lacked some generations asks only for those.
            path, payload = self.prepared_request(messages, pool.wanted)
            async with limiter.acquire(estimate) as permit:
                started = time.monotonic()
                try:
                    response = await self.send(path, payload, headers)
                except (LLMStatusError, LLMResponseError) as exc:
                    limiter.answered = True  # an error status or a garbled body: still an answer
                    if isinstance(exc, LLMStatusError) and exc.status_code == 429:
                        # Told while the permit is held: the limiter sees what was in flight.
                        retry_after = retry_after_from_headers(exc.headers, time.time())
                        exc.retry_delay = permit.rate_limited(retry_after, exc.headers)
                    raise
                limiter.answered = True
                limiter.update_from_headers(response.headers)
                output = self._read(response)
                permit.reconcile(output.usage.input_tokens + output.usage.output_tokens)
                limiter.on_success(time.monotonic() - started)
            return pool.add(output)

        try:
            output = await call_with_retries(
                attempt,
                max_attempts=self.max_retries + 1,
                base_delay=self.retry_backoff,
                limiter=limiter,
                on_retry=on_retry,
            )
        except LLMError as exc:  # the attempts still count
            exc.retries += counts["retries"]
            exc.rate_limited += counts["rate_limited"]
            if isinstance(exc, LLMStatusError) and exc.status_code in FATAL_STATUSES:
                exc.fatal = not limiter.succeeded
            if isinstance(exc, LLMConnectionError) and not limiter.answered:
                unreachable = LLMConnectionError(
                    f"{exc} (no request to {self.endpoint} has been answered yet: check "
                    "base_url, and that the server is running)"
                )
                unreachable.fatal, unreachable.retries = True, exc.retries
                unreachable.rate_limited = exc.rate_limited
                raise unreachable from exc
            raise
        output.retries = counts["retries"]
        output.rate_limited = counts["rate_limited"]
        return output

    def _read(self, response: JSONResponse) -> GenerateOutput:
        try:
            output = self.parse_response(response.data)
        except (KeyError, IndexError, TypeError, ValueError) as exc:
            raise LLMResponseError(
                f"{type(self).__name__} could not read the response: {type(exc).__name__}: {exc}"
            ) from exc
        if self.include_raw:
            output.raw = response.data
        return output


def _combine(outputs: list[GenerateOutput]) -> GenerateOutput:
    combined = GenerateOutput(generations=[], usage=Usage())
    logprobs: list[Any] = []
    for out in outputs:
        combined.generations.extend(out.generations)
        combined.usage = combined.usage + out.usage
        combined.retries += out.retries
        combined.rate_limited += out.rate_limited
        if out.logprobs:
            logprobs.extend(out.logprobs)
    combined.logprobs = logprobs or None
    combined.raw = [out.raw for out in outputs] if any(o.raw for o in outputs) else None
    return combined


def _estimate_tokens(messages: ChatType, kwargs: dict[str, Any], n: int) -> int:
    """A cheap upper-ish estimate for the TPM bucket (reconciled with real usage later)."""
    chars = sum(len(str(m.get("content", ""))) for m in messages)
    max_out = kwargs.get("max_new_tokens") or kwargs.get("max_tokens") or 256
    return chars // 4 + int(max_out) * n


def _merged(base: Payload, extra: dict[str, Any]) -> Payload:
    out = dict(base)
    for key, value in extra.items():
        inner = out.get(key)
        if isinstance(inner, dict) and isinstance(value, dict):
            out[key] = _merged(inner, value)
        else:
            out[key] = value
    return out


def generation_kwarg(kwargs: dict[str, Any], *names: str) -> Any:
    """The first of ``names`` present in ``kwargs`` (synthflow's name first, then aliases)."""
    for name in names:
        if name in kwargs:
            return kwargs[name]
    return None
