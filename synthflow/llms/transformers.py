"""Local models in this process: ``LocalLLM`` (the shared base) and ``TransformersLLM``.

A local model computes, it doesn't wait: generation holds the CPU or GPU, and ``agenerate`` runs
it synchronously. Give the task ``executor="process"`` so that it runs in a worker process that
loads the model once (``workers=1`` per GPU); on the event loop (the default ``"loop"``) every
call blocks the loop, and every other step of the pipeline with it, for as long as it generates.

Concurrent ``agenerate`` calls are coalesced: a task's worker starts the rows of its batch at
once, each call queues its conversation and yields once, and the first one to run again
generates for up to ``max_batch_size`` queued conversations in one call of the model.

With ``structured_output`` set, every answer is checked against the schema and a bad one is
re-asked (with the validation error) up to ``structured_retries`` times, as for API models.

Nothing heavy is imported here: ``torch`` and ``transformers`` load in ``load()``.
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
from pydantic import BaseModel, Field, PrivateAttr, field_validator

from synthflow.errors import LLMError, LLMResponseError
from synthflow.llms.base import LLM, ChatType, GenerateOutput, Usage
from synthflow.llms.structured import REASK, schema_of, validation_error
from synthflow.runtime_parameters import RuntimeParameter

DEFAULT_MAX_NEW_TOKENS = 512
"""Tokens generated per answer when ``generation_kwargs`` sets no ``max_new_tokens``."""

SCHEMA_HINT = (
    "Answer with only a JSON value that follows this JSON schema, and nothing else: {schema}"
)


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


class LocalLLM(LLM):
    """Base of LLMs that run a model in this process.

    Subclasses implement ``load()`` (storing what they load on ``self._runtime``), ``model_name``
    and ``generate_batch``, the blocking call of the model. ``agenerate`` batches concurrent
    calls and enforces ``structured_output``; see the module docstring.
    """

    native_structured_output: ClassVar[bool] = False
    """The backend constrains decoding to the schema; when False the schema goes in the prompt."""

    max_batch_size: RuntimeParameter[int] = Field(
        default=8,
        ge=1,
        description="Conversations generated together in one call of the model; concurrent "
        "agenerate calls are coalesced up to this size.",
    )
    structured_output: dict[str, Any] | None = Field(
        default=None,
        description="A JSON schema (or a pydantic model class, stored as its schema) that "
        "every answer must follow.",
    )
    structured_retries: int = Field(
        default=2, ge=0, description="Re-asks after an answer that doesn't follow the schema."
    )

    _runtime: _Runtime = PrivateAttr(default_factory=_Runtime)
    _schema_model: type[BaseModel] | None = PrivateAttr(default=None)

    @field_validator("structured_output", mode="before")
    @classmethod
    def _to_schema(cls, value: Any) -> Any:
        if value is None or isinstance(value, dict):
            return value
        return schema_of(value)

    def __init__(self, **data: Any) -> None:
        model_cls = data.get("structured_output")
        super().__init__(**data)
        if isinstance(model_cls, type) and issubclass(model_cls, BaseModel):
            self._schema_model = model_cls

    def cache_identity(self) -> tuple[str, str, dict[str, Any], dict[str, Any] | None]:
        return (
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
        if self.structured_output is not None:
            output = await self._enforce_schema(prompt, output)
        return output

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

    async def _enforce_schema(self, messages: ChatType, output: GenerateOutput) -> GenerateOutput:
        schema = self.structured_output
        assert schema is not None
        schema_text = orjson.dumps(schema).decode()
        for i, text in enumerate(output.generations):
            error = validation_error(text, schema, self._schema_model)
            attempts = 0
            while error is not None:
                if attempts == self.structured_retries:
                    raise LLMResponseError(
                        f"the answer does not follow the output schema after {attempts} "
                        f"re-asks: {error}"
                    )
                attempts += 1
                reask = [
                    *messages,
                    {"role": "assistant", "content": text or ""},
                    {"role": "user", "content": REASK.format(error=error, schema=schema_text)},
                ]
                again = await self._coalesced(reask, 1)
                output.usage = output.usage + again.usage
                text = again.generations[0]
                error = validation_error(text, schema, self._schema_model)
            output.generations[i] = text
        return output


def _with_schema_hint(messages: ChatType, schema: dict[str, Any]) -> ChatType:
    if not messages or not isinstance(messages[-1].get("content"), str):
        return messages
    last = messages[-1]
    hint = SCHEMA_HINT.format(schema=orjson.dumps(schema).decode())
    return [*messages[:-1], {**last, "content": f"{last['content']}\n\n{hint}"}]


# -- Hugging Face transformers ---------------------------------------------------------------


class TransformersLLM(LocalLLM):
    """A Hugging Face ``transformers`` causal LM, run in this process.

    Needs ``pip install 'synthflow[transformers]'``. Use it in a task with ``executor="process"``
    (``workers=1`` per GPU): each worker loads the model once. On the event loop it works, but
    every generation blocks the loop and the whole pipeline while it runs.

    ``generation_kwargs``: ``max_new_tokens`` (or ``max_tokens``; default 512), ``temperature``
    (0 is greedy, above 0 samples; unset keeps the model's generation config, sampling when
    several generations are asked),
    ``do_sample``, ``top_p``, ``top_k``, ``seed``, ``stop`` (a string or list; the answer ends
    before it), and any other keyword of ``model.generate`` (``repetition_penalty``, ...).
    Several greedy generations are one generation repeated. ``structured_output`` is enforced
    by validation and re-asking (no constrained decoding); the schema is added to the prompt.
    """

    model: str = Field(description="A Hugging Face Hub model id or a local directory.")
    revision: str | None = Field(default=None, description="A branch, tag or commit on the Hub.")
    tokenizer: str | None = Field(
        default=None, description="Where the tokenizer is, when not with the model."
    )
    torch_dtype: str = Field(
        default="auto",
        description="'auto' (as the checkpoint says), or a torch dtype name: 'bfloat16', "
        "'float16', 'float32'.",
    )
    device: str = Field(
        default="auto",
        description="'cpu', 'cuda', 'cuda:1', 'mps', or 'auto' (CUDA, then MPS, then CPU). "
        "Ignored when model_kwargs sets a device_map.",
    )
    trust_remote_code: bool = Field(
        default=False, description="Run the model repository's own code (only if you trust it)."
    )
    chat_template: str | None = Field(
        default=None,
        description="A Jinja chat template replacing the tokenizer's. Without either, a plain "
        "'Role: content' template is used.",
    )
    model_kwargs: dict[str, Any] = Field(
        default_factory=dict,
        description="More keyword arguments for AutoModelForCausalLM.from_pretrained.",
    )

    @property
    def model_name(self) -> str:
        return self.model

    def cache_identity(self) -> tuple[str, str, dict[str, Any], dict[str, Any] | None]:
        kind, model, kwargs, schema = super().cache_identity()
        return (kind, f"{model}@{self.revision}" if self.revision else model, kwargs, schema)

    def load(self) -> None:
        if self.loaded:
            return
        torch, transformers = _import_transformers()
        common: dict[str, Any] = {
            "revision": self.revision,
            "trust_remote_code": self.trust_remote_code,
        }
        tokenizer = transformers.AutoTokenizer.from_pretrained(
            self.tokenizer or self.model, **common
        )
        tokenizer.padding_side = "left"  # decoder-only models continue from the right end
        if tokenizer.pad_token_id is None:
            if tokenizer.eos_token is None:
                raise LLMError(
                    f"the tokenizer of {self.model!r} has neither a pad nor an EOS token"
                )
            tokenizer.pad_token = tokenizer.eos_token
        kwargs = {**common, _dtype_keyword(transformers): _dtype(torch, self.torch_dtype)}
        model = transformers.AutoModelForCausalLM.from_pretrained(
            self.model, **kwargs, **self.model_kwargs
        )
        if "device_map" not in self.model_kwargs:
            model = model.to(_device(torch, self.device))
        model.eval()
        self._runtime.tokenizer, self._runtime.model = tokenizer, model

    def unload(self) -> None:
        super().unload()
        try:
            import torch
        except ImportError:
            return
        if torch.cuda.is_available():
            torch.cuda.empty_cache()

    def prompt(self, messages: ChatType) -> tuple[str, bool]:
        """The prompt text for a conversation, and whether it is the plain fallback template."""
        tokenizer = self._runtime.tokenizer
        template = self.chat_template or getattr(tokenizer, "chat_template", None)
        if not template:
            return (tokenizer.bos_token or "") + plain_prompt(messages), True
        text = tokenizer.apply_chat_template(
            messages, chat_template=template, tokenize=False, add_generation_prompt=True
        )
        return text, False

    def generate_batch(
        self, conversations: list[ChatType], num_generations: int
    ) -> list[GenerateOutput]:
        import torch

        tokenizer, model = self._runtime.tokenizer, self._runtime.model
        if model is None:
            raise LLMError("TransformersLLM is not loaded: call load() first")
        prompts = [self.prompt(messages) for messages in conversations]
        encoded = tokenizer(
            [text for text, _ in prompts],
            return_tensors="pt",
            padding=True,
            add_special_tokens=False,  # the template has them
            return_token_type_ids=False,
        ).to(model.device)
        prompt_length = encoded["input_ids"].shape[1]
        kwargs, seed, repeat = self._generate_kwargs(num_generations, model.generation_config)
        kwargs["pad_token_id"] = tokenizer.pad_token_id
        stops = stop_list(self.generation_kwargs.get("stop"))
        if prompts[0][1]:
            stops.append(PLAIN_PROMPT_STOP)
        if stops:
            kwargs["stopping_criteria"] = _stop_criteria(tokenizer, stops, prompt_length)
        if seed is not None:
            torch.manual_seed(int(seed))
        with torch.inference_mode():
            sequences = model.generate(**encoded, **kwargs)

        per_prompt = kwargs["num_return_sequences"]
        ends = _eos_ids(tokenizer, model.generation_config)
        outputs = []
        for i in range(len(conversations)):
            texts: list[str | None] = []
            produced = 0
            for j in range(per_prompt):
                ids = _trim(sequences[i * per_prompt + j, prompt_length:].tolist(), ends, tokenizer)
                produced += len(ids)
                texts.append(cut_at_stop(tokenizer.decode(ids, skip_special_tokens=True), stops))
            prompt_tokens = int(encoded["attention_mask"][i].sum())
            outputs.append(GenerateOutput(texts * repeat, Usage(prompt_tokens, produced)))
        return outputs

    def _generate_kwargs(
        self, num_generations: int, defaults: Any
    ) -> tuple[dict[str, Any], Any, int]:
        """``model.generate`` keywords from ``generation_kwargs``, the seed, and how many times
        each (greedy) answer is repeated."""
        kwargs = dict(self.generation_kwargs)
        max_new = kwargs.pop("max_new_tokens", None)
        max_tokens = kwargs.pop("max_tokens", None)
        kwargs["max_new_tokens"] = max_new or max_tokens or DEFAULT_MAX_NEW_TOKENS
        kwargs.pop("stop", None)
        seed = kwargs.pop("seed", None)
        temperature = kwargs.pop("temperature", None)
        do_sample = kwargs.pop("do_sample", None)
        if do_sample is None:
            if temperature is not None:
                do_sample = temperature > 0
            else:
                do_sample = bool(getattr(defaults, "do_sample", False)) or num_generations > 1
        kwargs["do_sample"] = do_sample
        repeat = 1
        if do_sample:
            if temperature is not None:
                kwargs["temperature"] = temperature
            kwargs["num_return_sequences"] = num_generations
        else:
            for name in ("temperature", "top_p", "top_k"):  # unused; unset to keep generate quiet
                kwargs[name] = None
            beams = int(kwargs.get("num_beams") or 1)
            kwargs["num_return_sequences"] = num_generations if beams >= num_generations else 1
            repeat = 1 if beams >= num_generations else num_generations
        return kwargs, seed, repeat


def _import_transformers() -> tuple[Any, Any]:
    try:
        import torch
        import transformers
    except ImportError as exc:
        raise missing_extra("TransformersLLM", "transformers", "transformers torch") from exc
    return torch, transformers


def _dtype_keyword(transformers: Any) -> str:
    """``from_pretrained`` calls it ``dtype`` since transformers 4.56, ``torch_dtype`` before."""
    major, minor = (int(part) for part in transformers.__version__.split(".")[:2])
    return "dtype" if (major, minor) >= (4, 56) else "torch_dtype"


def _dtype(torch: Any, name: str) -> Any:
    if name == "auto":
        return "auto"
    dtype = getattr(torch, name, None)
    if not isinstance(dtype, torch.dtype):
        raise LLMError(f"torch_dtype {name!r} is not a torch dtype (try 'bfloat16' or 'float32')")
    return dtype


def _device(torch: Any, device: str) -> str:
    if device != "auto":
        return device
    if torch.cuda.is_available():
        return "cuda"
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        return "mps"
    return "cpu"


def _eos_ids(tokenizer: Any, config: Any) -> set[int]:
    ids: set[int] = set()
    for value in (getattr(config, "eos_token_id", None), tokenizer.eos_token_id):
        if isinstance(value, int):
            ids.add(value)
        elif isinstance(value, list | tuple):
            ids.update(int(v) for v in value)
    return ids


def _trim(ids: list[int], ends: set[int], tokenizer: Any) -> list[int]:
    """The generated tokens up to the first end token, without the padding after it."""
    for i, token in enumerate(ids):
        if token in ends:
            return ids[: i + 1]
    pad = tokenizer.pad_token_id
    while ids and ids[-1] == pad:  # a row stopped by a stop string is padded to the longest
        ids = ids[:-1]
    return ids


def _stop_criteria(tokenizer: Any, stops: list[str], prompt_length: int) -> Any:
    """Stop each sequence once its decoded tail holds a stop string. transformers' own
    ``stop_strings`` needs a tokenizer whose vocabulary it can map; this works with any."""
    import torch
    from transformers import StoppingCriteria, StoppingCriteriaList

    window = max(len(s) for s in stops) + 4  # tokens: each decodes to at least one char, mostly

    class StopStrings(StoppingCriteria):  # type: ignore[misc,unused-ignore]
        def __call__(self, input_ids: Any, scores: Any, **kwargs: Any) -> Any:
            tails = tokenizer.batch_decode(
                input_ids[:, max(prompt_length, input_ids.shape[1] - window) :],
                skip_special_tokens=True,
            )
            done = [any(s in tail for s in stops) for tail in tails]
            return torch.tensor(done, dtype=torch.bool, device=input_ids.device)

    return StoppingCriteriaList([StopStrings()])
