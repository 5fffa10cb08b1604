"""The LLM interface that tasks call.

An LLM is a pydantic model (so it serializes with its task) with one abstract coroutine,
``agenerate``: chat messages in, ``num_generations`` completions out, with token usage. Rate
limiting, retries, caching and accounting are not flags on this class; they wrap the call
(see ``synthflow.models.callpath.calls``).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal, NamedTuple

import anyio
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from synthflow.models.llms.generation_kwargs import check_generation_kwargs
from synthflow.runtime_parameters import RuntimeParameter

ChatMessage = dict[str, Any]
"""One chat message: ``{"role": "user", "content": "..."}``; content may be a list of parts."""
ChatType = list[ChatMessage]


@dataclass(slots=True)
class Usage:
    input_tokens: int = 0
    output_tokens: int = 0

    def __add__(self, other: Usage) -> Usage:
        return Usage(
            self.input_tokens + other.input_tokens, self.output_tokens + other.output_tokens
        )


NoAnswerKind = Literal["missing", "empty", "refused", "filtered", "truncated"]


@dataclass(frozen=True, slots=True)
class NoAnswer:
    """Why one generation came back without text, as the client read it from the response.

    ``kind``: ``missing`` (fewer choices than asked), ``empty`` (null content), ``refused`` (the
    model declined), ``filtered`` (a safety or content filter), ``truncated`` (the token limit
    was reached before any text). ``detail`` is the provider's finish reason or refusal text.
    """

    kind: NoAnswerKind
    detail: str = ""


@dataclass(slots=True)
class GenerateOutput:
    """What one call returns: one entry per generation (``None`` where the model gave nothing;
    ``no_answer`` maps such an index to the reason, when the client could tell it)."""

    generations: list[str | None]
    usage: Usage = field(default_factory=Usage)
    logprobs: list[Any] | None = None
    raw: Any = None
    retries: int = 0
    """Attempts beyond the first that the call needed."""
    rate_limited: int = 0
    """How many of its attempts were answered 429."""
    no_answer: dict[int, NoAnswer] = field(default_factory=dict)
    messages: list[dict[str, Any]] | None = None
    """The messages a task sent for this output (set by ``Task.generate``), kept so the row's
    ``raw_input_<task>`` needn't build them a second time."""


class CacheIdentity(NamedTuple):
    """What, besides the messages, decides an LLM's answer; the response cache keys on it."""

    provider: str
    model: str
    generation_kwargs: dict[str, Any]
    schema: dict[str, Any] | None
    endpoint: str | None = None
    """Where the answer comes from (an API's resolved base URL); None for in-process models."""


class LLM(BaseModel, ABC):
    """Base class of every LLM client.

    Subclasses implement ``model_name`` and ``agenerate``. ``load()`` runs once before the first
    call (in the worker process, for local models) and ``unload()`` once after the last.
    """

    model_config = ConfigDict(
        arbitrary_types_allowed=True, validate_assignment=True, extra="forbid"
    )

    cacheable: ClassVar[bool] = True
    """Whether answers may be stored in the run's response cache (paid calls: yes)."""

    billed: ClassVar[bool] = False
    """Whether calls are billed by tokens (a provider's API), so a cost budget must price them.
    Local and offline models cost nothing per call."""

    blocking: ClassVar[bool] = False
    """Whether ``agenerate`` computes in the calling thread (a model run in this process)
    instead of awaiting an answer from elsewhere (an API). A task with ``executor="thread"``
    runs such a model's generation in its worker thread (the response cache and accounting
    still on the run's loop); a task with ``executor="process"`` may only run such a model."""

    generation_kwargs: RuntimeParameter[dict[str, Any]] = Field(
        default_factory=dict,
        description="Keyword arguments for generation: temperature, max_new_tokens, top_p, "
        "stop, seed, ...",
    )

    generation_kwargs_spec: ClassVar[type | None] = None
    """The generation kwargs this client's API takes and their types: a ``TypedDict``
    (``total=False``). ``generation_kwargs`` are checked against it whenever they are set (see
    ``synthflow.models.llms.generation_kwargs``); None takes any, unchecked."""

    unsupported_generation_kwargs: ClassVar[dict[str, str]] = {}
    """Kwargs the API lacks, and why (shown in the error): ``{"seed": "the API has no seed"}``."""

    passthrough_generation_kwarg: ClassVar[str | None] = None
    """The generation kwarg whose mapping goes to the provider unchecked (the escape hatch for
    fields synthflow doesn't know): ``"extra_body"`` for HTTP APIs."""

    @field_validator("generation_kwargs")
    @classmethod
    def _check_generation_kwargs(cls, value: dict[str, Any]) -> dict[str, Any]:
        check_generation_kwargs(
            cls.__name__,
            cls.generation_kwargs_spec,
            value,
            unsupported=cls.unsupported_generation_kwargs,
            passthrough=cls.passthrough_generation_kwarg,
        )
        return value

    field_aliases: ClassVar[dict[str, str]] = {}
    """distilabel's names for this class's settings, which the constructor (and a saved
    pipeline) accepts: ``{"model_id": "model"}``; ``"engine_kwargs.seed"`` puts the value under
    that key of a dict field."""

    @model_validator(mode="before")
    @classmethod
    def _accept_distilabel_names(cls, data: Any) -> Any:
        if isinstance(data, dict):
            names = _DISTILABEL_ONLY.keys() & data.keys() - cls.model_fields.keys()
            for name in names:
                # distilabel saves every LLM with these set to "off" (jobs_ids: null, ...):
                # such a value asks for nothing and is dropped; any other is refused.
                if data[name] not in (None, False):
                    raise ValueError(f"{cls.__name__}({name}=...): {_DISTILABEL_ONLY[name]}")
            if names:
                data = {k: v for k, v in data.items() if k not in names}
        return rename_fields(data, cls.field_aliases, cls.__name__)

    def load(self) -> None:
        """Acquire resources (clients, weights). Called once before the first ``agenerate``."""

    def unload(self) -> None:
        """Release what ``load`` acquired."""

    async def aclose(self) -> None:
        """Close async resources (HTTP clients). Called by the engine after the run."""

    def cache_identity(self) -> CacheIdentity:
        """What, besides the messages, decides the answer: provider, model, generation kwargs,
        output schema, endpoint. The response cache keys on it."""
        return CacheIdentity(
            type(self).__name__, self.model_name, dict(self.generation_kwargs), None
        )

    @property
    @abstractmethod
    def model_name(self) -> str:
        """The model's name, as recorded in the ``model_name`` output column."""

    @abstractmethod
    async def agenerate(self, messages: ChatType, *, num_generations: int = 1) -> GenerateOutput:
        """Generate ``num_generations`` completions for one conversation.

        Reads ``self.generation_kwargs``. Raises an exception (ideally ``LLMError``) on failure;
        the calling task applies its error policy.
        """

    # -- distilabel's synchronous front ----------------------------------------------------

    def generate(
        self, inputs: list[ChatType], num_generations: int = 1, **kwargs: Any
    ) -> list[dict[str, Any]]:
        """``num_generations`` completions for each conversation in ``inputs``, synchronously,
        in distilabel's shape: one ``{"generations": [...], "statistics": {"input_tokens":
        [n], "output_tokens": [m]}}`` per input (with ``"logprobs"`` when the model gave them).

        The calls run concurrently on a private event loop, and the LLM's async resources are
        closed before it returns. ``kwargs`` override ``generation_kwargs`` for this call only.
        """
        from synthflow._sync import run_sync

        async def all_of_them() -> list[GenerateOutput]:
            results: list[GenerateOutput | None] = [None] * len(inputs)

            async def one(i: int) -> None:
                results[i] = await self.agenerate(inputs[i], num_generations=num_generations)

            try:
                async with anyio.create_task_group() as tg:
                    for i in range(len(inputs)):
                        tg.start_soon(one, i)
            finally:
                await self.aclose()
            return [r for r in results if r is not None]

        saved = self.generation_kwargs
        if kwargs:
            self.generation_kwargs = {**saved, **kwargs}
        try:
            outputs = run_sync(all_of_them)
        finally:
            self.generation_kwargs = saved
        return [_distilabel_output(output) for output in outputs]

    def generate_outputs(
        self, inputs: list[ChatType], num_generations: int = 1, **kwargs: Any
    ) -> list[dict[str, Any]]:
        """distilabel's other name for ``generate``."""
        return self.generate(inputs, num_generations, **kwargs)


_NO_BATCH_API = (
    "only API LLMs whose provider has a batch API (OpenAILLM, GroqLLM, AnthropicLLM) take it; "
    "remove it"
)
_NO_PLACEMENT = (
    "synthflow doesn't assign GPUs to models; remove it and set CUDA_VISIBLE_DEVICES for the "
    "run (TransformersLLM: device=)"
)
_DISTILABEL_ONLY = {
    "use_offline_batch_generation": _NO_BATCH_API,
    "offline_batch_generation_block_until_done": _NO_BATCH_API,
    "jobs_ids": "synthflow keeps batch ids in the run directory; remove it",
    "cuda_devices": _NO_PLACEMENT,
    "disable_cuda_device_placement": _NO_PLACEMENT,
}
"""distilabel LLM settings with no counterpart here, and what to do instead."""


def rename_fields(data: Any, aliases: dict[str, str], owner: str) -> Any:
    """Constructor data with the ``aliases`` keys under their synthflow names (see
    ``LLM.field_aliases``); both names of one setting at once is an error."""
    if not isinstance(data, dict) or not aliases.keys() & data.keys():
        return data
    data = dict(data)
    for alias, target in aliases.items():
        if alias not in data:
            continue
        value = data.pop(alias)
        if value is None:  # distilabel's "not set": the synthflow default applies
            continue
        field_name, _, key = target.partition(".")
        if not key:
            if field_name in data:
                raise ValueError(f"{owner} got {alias}= and {field_name}=, one setting: pass one")
            data[field_name] = value
            continue
        inner = dict(data.get(field_name) or {})
        if key in inner:
            raise ValueError(f"{owner} got {alias}= and {field_name}[{key!r}]: pass one")
        data[field_name] = {**inner, key: value}
    return data


def _distilabel_output(output: GenerateOutput) -> dict[str, Any]:
    shaped: dict[str, Any] = {
        "generations": list(output.generations),
        "statistics": {
            "input_tokens": [output.usage.input_tokens],
            "output_tokens": [output.usage.output_tokens],
        },
    }
    if output.logprobs is not None:
        shaped["logprobs"] = output.logprobs
    return shaped
