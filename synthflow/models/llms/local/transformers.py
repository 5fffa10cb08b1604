"""TransformersLLM: a Hugging Face transformers model in this process (see ``LocalLLM``).

Run its task with ``executor="process"``: each worker loads the model once. Nothing heavy is
imported here: ``torch`` and ``transformers`` load in ``load()``.
"""

from __future__ import annotations

from typing import Any, ClassVar, TypedDict

from pydantic import Field, SecretStr, field_validator

from synthflow.errors import LLMError
from synthflow.models.llms.base import ChatType, GenerateOutput, Usage
from synthflow.models.llms.generation_kwargs import Stop
from synthflow.models.llms.local.base import (
    DEFAULT_MAX_NEW_TOKENS,
    PLAIN_PROMPT_STOP,
    HubModelLLM,
    cut_at_stop,
    missing_extra,
    plain_prompt,
    raw_prompt,
    release_gpu_memory,
    stop_list,
)
from synthflow.models.llms.magpie import MagpieSettings, UserTurnWriter


class TransformersGenerationKwargs(TypedDict, total=False):
    """distilabel's names, and the usual ``model.generate`` keywords; any other keyword of
    ``model.generate`` goes in ``extra_generate_kwargs``."""

    max_new_tokens: int
    max_tokens: int
    min_new_tokens: int
    temperature: float
    do_sample: bool
    top_p: float
    top_k: int
    min_p: float
    typical_p: float
    repetition_penalty: float
    no_repeat_ngram_size: int
    num_beams: int
    length_penalty: float
    seed: int
    stop: Stop
    extra_generate_kwargs: dict[str, Any]


class TransformersLLM(HubModelLLM, MagpieSettings, UserTurnWriter):
    """A Hugging Face ``transformers`` causal LM, run in this process.

    Needs ``pip install 'synthflow[transformers]'``. Use it in a task with ``executor="process"``
    (``workers=1`` per GPU): each worker loads the model once. On the event loop it works, but
    every generation blocks the loop and the whole pipeline while it runs.

    ``generation_kwargs``: ``max_new_tokens`` (or ``max_tokens``; default 512), ``temperature``
    (0 is greedy, above 0 samples; unset keeps the model's generation config, sampling when
    several generations are asked),
    ``do_sample``, ``top_p``, ``top_k``, ``seed``, ``stop`` (a string or list; the answer ends
    before it), ``repetition_penalty``, ``num_beams``... (``TransformersGenerationKwargs``);
    any other keyword of ``model.generate`` goes in ``extra_generate_kwargs``.
    Several greedy generations are one generation repeated. ``structured_output`` is enforced
    by validation and re-asking (no constrained decoding); the schema is added to the prompt.

    Magpie (``magpie_pre_query_template='llama3'``, ``'qwen2'`` or the text): a user turn is
    generated from the conversation rendered with the chat template, then the pre-query
    template, as raw text.
    """

    field_aliases: ClassVar[dict[str, str]] = {"device_map": "model_kwargs.device_map"}
    generation_kwargs_spec: ClassVar[type | None] = TransformersGenerationKwargs
    passthrough_generation_kwarg: ClassVar[str | None] = "extra_generate_kwargs"

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
    use_fast: bool = Field(default=True, description="Use the fast (Rust) tokenizer.")
    token: SecretStr | None = Field(
        default=None,
        exclude=True,
        description="Hugging Face token for gated models; HF_TOKEN is read when unset.",
    )

    @field_validator("device", mode="before")
    @classmethod
    def _gpu_index(cls, value: Any) -> Any:
        # distilabel also takes a GPU index, and None for "choose".
        if value is None:
            return "auto"
        return f"cuda:{value}" if isinstance(value, int) and not isinstance(value, bool) else value

    def load(self) -> None:
        if self.loaded:
            return
        torch, transformers = _import_transformers()
        common: dict[str, Any] = {
            "revision": self.revision,
            "trust_remote_code": self.trust_remote_code,
        }
        if self.token is not None:
            common["token"] = self.token.get_secret_value()
        tokenizer = transformers.AutoTokenizer.from_pretrained(
            self.tokenizer or self.model, use_fast=self.use_fast, **common
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
        release_gpu_memory()

    async def agenerate_user_turn(
        self, messages: ChatType, *, num_generations: int = 1
    ) -> GenerateOutput:
        return await self._user_turn(
            messages, num_generations, self.pre_query_template(), self.chat_template
        )

    def prompt(self, messages: ChatType) -> tuple[str, bool]:
        """The prompt text for a conversation, and whether it is the plain fallback template."""
        raw = raw_prompt(messages)
        if raw is not None:
            return raw, False
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
        if any(plain for _, plain in prompts):
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
        kwargs.update(kwargs.pop("extra_generate_kwargs", None) or {})
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
