"""LocalLLM: the shared base of models that run in this process (transformers, vLLM, llama.cpp).

A local model computes, it doesn't wait: generation holds the CPU or GPU, and ``agenerate`` runs
it synchronously (``blocking``). Give the task ``executor="process"`` so that it runs in a worker
process that loads the model once (``workers=1`` per GPU), or ``executor="thread"``, where the
generation runs in the worker thread (torch and the native back ends release the GIL while they
compute) and its answers still go through the run's response cache and accounting, which a
worker process can't reach. On the event loop (the default ``"loop"``) every call blocks the
loop, and every other step of the pipeline with it, for as long as it generates.

Concurrent ``agenerate`` calls are coalesced: a task's worker starts the rows of its batch at
once, each call queues its conversation and yields once, and the first one to run again
generates for up to ``max_batch_size`` queued conversations in one call of the model.

With ``structured_output`` set, every answer is checked against the schema and a bad one is
re-asked (with the validation error) up to ``structured_retries`` times, as for API models.
"""

from __future__ import annotations

import gc
import threading
from abc import abstractmethod
from contextlib import suppress
from dataclasses import dataclass
from typing import Any, ClassVar

import anyio
import anyio.lowlevel
import orjson
from pydantic import Field, PrivateAttr

from synthflow.errors import LLMError
from synthflow.models.callpath.structured import StructuredOutputLLM
from synthflow.models.llms.base import CacheIdentity, ChatType, GenerateOutput
from synthflow.models.llms.magpie import user_turn_prompt
from synthflow.runtime_parameters import RuntimeParameter

DEFAULT_MAX_NEW_TOKENS = 512
"""Tokens generated per answer when ``generation_kwargs`` sets no ``max_new_tokens``."""

SCHEMA_HINT = (
    "Answer with only a JSON value that follows this JSON schema, and nothing else: {schema}"
)


def release_gpu_memory() -> None:
    """Return cached GPU memory to the driver after a model is dropped (no-op without torch)."""
    try:
        import torch
    except ImportError:
        return
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def missing_extra(cls_name: str, extra: str, packages: str) -> ImportError:
    """The error raised when a local model's optional dependency is not installed."""
    return ImportError(
        f"{cls_name} needs the '{extra}' extra: pip install 'synthflow[{extra}]' "
        f"(or: pip install {packages})"
    )


def plain_prompt(messages: ChatType) -> str:
    """A chat template for tokenizers that have none: ``Role: content`` turns, then
    ``Assistant:``."""
    turns = [f"{str(m.get('role', 'user')).capitalize()}: {text_of(m)}" for m in messages]
    return "\n\n".join([*turns, "Assistant:"])


RAW_PROMPT_ROLE = "synthflow:raw-prompt"
"""The role of the one message of a conversation that is a raw prompt to complete as it is
(Magpie's user turns), not chat turns to render with a chat template."""


def raw_prompt(messages: ChatType) -> str | None:
    """The raw prompt ``messages`` carries (see ``RAW_PROMPT_ROLE``), or None."""
    if len(messages) == 1 and messages[0].get("role") == RAW_PROMPT_ROLE:
        return str(messages[0].get("content", ""))
    return None


PLAIN_PROMPT_STOP = "\n\nUser:"
"""Where an answer ends under ``plain_prompt``: a base model otherwise writes the next turn."""


def text_of(message: dict[str, Any]) -> str:
    content = message.get("content")
    if isinstance(content, list):  # content parts: keep the text ones
        return "".join(str(p.get("text", "")) for p in content if isinstance(p, dict))
    return "" if content is None else str(content)


def cut_at_stop(text: str, stops: list[str]) -> str:
    """``text`` up to the first stop string (which is not included)."""
    cut = min((i for i in (text.find(s) for s in stops if s) if i >= 0), default=-1)
    return text if cut < 0 else text[:cut]


def stop_list(value: Any) -> list[str]:
    if value is None:
        return []
    return [value] if isinstance(value, str) else [str(s) for s in value]


class _Runtime:
    """What ``load()`` acquires. Never pickled: a copy sent to a worker process arrives unloaded
    and loads its own."""

    def __init__(self) -> None:
        self.model: Any = None
        self.tokenizer: Any = None
        self.lock = threading.Lock()  # one generation at a time, should threads share the model
        self.pending: list[_Request] = []

    def __reduce__(self) -> tuple[type[_Runtime], tuple[()]]:
        return (_Runtime, ())


@dataclass(slots=True, eq=False)
class _Request:
    messages: ChatType
    num_generations: int
    output: GenerateOutput | None = None
    error: BaseException | None = None

    @property
    def done(self) -> bool:
        return self.output is not None or self.error is not None


class LocalLLM(StructuredOutputLLM):
    """Base of LLMs that run a model in this process.

    Subclasses implement ``load()`` (storing what they load on ``self._runtime``), ``model_name``
    and ``generate_batch``, the blocking call of the model. ``agenerate`` batches concurrent
    calls and enforces ``structured_output``; see the module docstring.
    """

    blocking: ClassVar[bool] = True

    native_structured_output: ClassVar[bool] = False
    """The backend constrains decoding to the schema; when False the schema goes in the prompt."""

    max_batch_size: RuntimeParameter[int] = Field(
        default=8,
        ge=1,
        description="Conversations generated together in one call of the model; concurrent "
        "agenerate calls are coalesced up to this size.",
    )

    _runtime: _Runtime = PrivateAttr(default_factory=_Runtime)

    def cache_identity(self) -> CacheIdentity:
        return CacheIdentity(
            type(self).__name__,
            self.model_name,
            dict(self.generation_kwargs),
            self.structured_output,
        )

    @property
    def loaded(self) -> bool:
        return self._runtime.model is not None

    def unload(self) -> None:
        self._runtime.model = self._runtime.tokenizer = None
        gc.collect()

    @abstractmethod
    def generate_batch(
        self, conversations: list[ChatType], num_generations: int
    ) -> list[GenerateOutput]:
        """Generate ``num_generations`` answers for each conversation, in one blocking call of
        the model; one output per conversation, in order."""

    # -- the call path ----------------------------------------------------------------------

    async def agenerate(self, messages: ChatType, *, num_generations: int = 1) -> GenerateOutput:
        prompt = messages
        if self.structured_output is not None and not self.native_structured_output:
            prompt = _with_schema_hint(messages, self.structured_output)
        output = await self._coalesced(prompt, num_generations)
        return await self.enforce_schema(prompt, output, self._ask_once)

    async def _ask_once(self, messages: ChatType) -> GenerateOutput:
        return await self._coalesced(messages, 1)

    async def agenerate_batch(
        self, conversations: list[ChatType], *, num_generations: int = 1
    ) -> list[GenerateOutput]:
        """``agenerate`` for several conversations; the model sees them in batches."""
        outputs: list[GenerateOutput] = [GenerateOutput([]) for _ in conversations]

        async def one(i: int, messages: ChatType) -> None:
            outputs[i] = await self.agenerate(messages, num_generations=num_generations)

        async with anyio.create_task_group() as tg:
            for i, messages in enumerate(conversations):
                tg.start_soon(one, i, messages)
        return outputs

    async def _user_turn(
        self,
        messages: ChatType,
        num_generations: int,
        template: str | None,
        chat_template: str | None = None,
    ) -> GenerateOutput:
        """Magpie's next user turn after ``messages``: the raw prompt (the conversation in the
        tokenizer's chat format, then the pre-query ``template``) completed as it is."""
        if not self.loaded:
            raise LLMError(f"{type(self).__name__} is not loaded: call load() first")
        tokenizer = self._runtime.tokenizer
        renders = chat_template or getattr(tokenizer, "chat_template", None)
        prompt = user_turn_prompt(
            messages, template or "", tokenizer if renders else None, chat_template=chat_template
        )
        return await self._coalesced(
            [{"role": RAW_PROMPT_ROLE, "content": prompt}], num_generations
        )

    async def _coalesced(self, messages: ChatType, num_generations: int) -> GenerateOutput:
        if not self.loaded:
            raise LLMError(f"{type(self).__name__} is not loaded: call load() first")
        request = _Request(messages, num_generations)
        runtime = self._runtime
        runtime.pending.append(request)
        try:
            # Let the calls started alongside this one queue their conversations too.
            await anyio.lowlevel.checkpoint()
        except BaseException:
            with suppress(ValueError):  # taken into a batch meanwhile: its answer goes unused
                runtime.pending.remove(request)
            raise
        while not request.done:
            with runtime.lock:
                # Batches run under the lock, so here an unanswered request is still pending.
                if not request.done:
                    self._run_batch(self._take_batch())
        if request.error is not None:
            raise request.error
        assert request.output is not None
        return request.output

    def _take_batch(self) -> list[_Request]:
        pending = self._runtime.pending
        n = pending[0].num_generations
        batch = [r for r in pending if r.num_generations == n][: self.max_batch_size]
        for request in batch:
            pending.remove(request)  # in place: other calls append to this very list
        return batch

    def _run_batch(self, batch: list[_Request]) -> None:
        n = batch[0].num_generations
        try:
            outputs = self.generate_batch([r.messages for r in batch], n)
        except Exception as exc:
            if len(batch) == 1:
                batch[0].error = exc
                return
            # One bad conversation (too long, say) must not fail its batchmates.
            for request in batch:
                try:
                    request.output = self.generate_batch([request.messages], n)[0]
                except Exception as single:
                    request.error = single
            return
        for request, output in zip(batch, outputs, strict=True):
            request.output = output


def _with_schema_hint(messages: ChatType, schema: dict[str, Any]) -> ChatType:
    if not messages or not isinstance(messages[-1].get("content"), str):
        return messages
    last = messages[-1]
    hint = SCHEMA_HINT.format(schema=orjson.dumps(schema).decode())
    return [*messages[:-1], {**last, "content": f"{last['content']}\n\n{hint}"}]


class HubModelLLM(LocalLLM):
    """A local model named by a Hugging Face Hub id (or a directory) at a revision: the fields
    and the cache identity that ``TransformersLLM`` and ``vLLM`` share."""

    model: str = Field(description="A Hugging Face Hub model id or a local directory.")
    revision: str | None = Field(default=None, description="A branch, tag or commit on the Hub.")
    tokenizer: str | None = Field(
        default=None, description="Where the tokenizer is, when not with the model."
    )

    @property
    def model_name(self) -> str:
        return self.model

    def cache_identity(self) -> CacheIdentity:
        identity = super().cache_identity()
        if not self.revision:
            return identity
        return identity._replace(model=f"{identity.model}@{self.revision}")
