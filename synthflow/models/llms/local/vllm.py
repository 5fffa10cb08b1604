"""vLLM's offline engine (``vllm.LLM``), run in this process.

Untested on real hardware: vLLM needs a GPU, and none was available where this was written. The
code follows vLLM's documented offline API (``LLM(...)``, ``LLM.get_tokenizer()``,
``LLM.generate(prompts, sampling_params, use_tqdm=False)``, ``SamplingParams``); its tests run it
against a stand-in module that records what it is given. Check it on a GPU before relying on it.
"""

from __future__ import annotations

from typing import Any, ClassVar, TypedDict

from pydantic import Field

from synthflow.errors import LLMError
from synthflow.models.llms.base import ChatType, GenerateOutput, Usage
from synthflow.models.llms.generation_kwargs import Stop
from synthflow.models.llms.local.base import (
    DEFAULT_MAX_NEW_TOKENS,
    PLAIN_PROMPT_STOP,
    HubModelLLM,
    missing_extra,
    plain_prompt,
    raw_prompt,
    release_gpu_memory,
    stop_list,
)
from synthflow.models.llms.magpie import MagpieSettings, UserTurnWriter
from synthflow.runtime_parameters import RuntimeParameter


class vLLMGenerationKwargs(TypedDict, total=False):
    """distilabel's names, and the usual ``SamplingParams`` fields; any other field goes in
    ``extra_sampling_params``."""

    max_new_tokens: int
    max_tokens: int
    min_tokens: int
    temperature: float
    do_sample: bool
    top_p: float
    top_k: int
    min_p: float
    presence_penalty: float
    frequency_penalty: float
    repetition_penalty: float
    seed: int
    stop: Stop
    stop_token_ids: list[int]
    include_stop_str_in_output: bool
    ignore_eos: bool
    skip_special_tokens: bool
    logprobs: int
    prompt_logprobs: int
    logits_processors: list[Any]
    echo: bool  # distilabel's (the prompt before the answer): taken, not used
    extra_sampling_params: dict[str, Any]


class vLLM(HubModelLLM, MagpieSettings, UserTurnWriter):
    """A model served by vLLM's offline engine in this process.

    Needs ``pip install 'synthflow[vllm]'`` and a GPU. Use it in a task with
    ``executor="process", workers=1``: the worker loads the engine once and keeps the GPU; on the
    event loop every generation blocks the loop and the whole pipeline while it runs. The
    engine schedules the ``max_batch_size`` conversations of each call itself, so a large
    ``input_batch_size`` on the task keeps the GPU busy.

    ``generation_kwargs`` become ``SamplingParams``: ``max_new_tokens`` (or ``max_tokens``;
    default 512), ``temperature``, ``top_p``, ``top_k``, ``seed``, ``stop``, ``min_p``,
    ``repetition_penalty``... (``vLLMGenerationKwargs``); any other ``SamplingParams`` field
    goes in ``extra_sampling_params``; ``do_sample=False`` means
    temperature 0, and several greedy generations are one answer repeated. Unset ones take
    vLLM's defaults, not the model's generation config.
    ``structured_output`` uses vLLM's guided decoding when the installed version has it
    (``StructuredOutputsParams``, or the older ``GuidedDecodingParams``); every answer is also
    validated and re-asked. Untested on real hardware (see the module docstring).

    distilabel's ``extra_kwargs``, ``seed``, ``tokenizer_mode``, ``tokenizer_revision`` and
    ``skip_tokenizer_init`` are accepted and go to ``vllm.LLM`` through ``engine_kwargs``.
    """

    native_structured_output: ClassVar[bool] = True
    generation_kwargs_spec: ClassVar[type | None] = vLLMGenerationKwargs
    passthrough_generation_kwarg: ClassVar[str | None] = "extra_sampling_params"
    # distilabel's settings: its extra_kwargs and these go to vllm.LLM as they are.
    field_aliases: ClassVar[dict[str, str]] = {
        "extra_kwargs": "engine_kwargs",
        **{
            name: f"engine_kwargs.{name}"
            for name in ("tokenizer_mode", "tokenizer_revision", "skip_tokenizer_init", "seed")
        },
    }

    dtype: str = Field(default="auto", description="'auto', 'bfloat16', 'float16' or 'float32'.")
    quantization: str | None = Field(
        default=None, description="The quantization method ('awq', 'gptq', 'fp8', ...)."
    )
    trust_remote_code: bool = Field(
        default=False, description="Run the model repository's own code (only if you trust it)."
    )
    tensor_parallel_size: int = Field(default=1, ge=1, description="GPUs to shard the model over.")
    gpu_memory_utilization: float = Field(
        default=0.9, gt=0, le=1, description="Share of GPU memory vLLM may take."
    )
    max_model_len: int | None = Field(
        default=None, ge=1, description="Context length; the model's own when unset."
    )
    chat_template: str | None = Field(
        default=None,
        description="A Jinja chat template replacing the tokenizer's. Without either, a plain "
        "'Role: content' template is used.",
    )
    engine_kwargs: dict[str, Any] = Field(
        default_factory=dict, description="More keyword arguments for vllm.LLM."
    )
    max_batch_size: RuntimeParameter[int] = Field(
        default=256,
        ge=1,
        description="Conversations handed to the engine in one generate call; concurrent "
        "agenerate calls are coalesced up to this size.",
    )

    def engine_arguments(self) -> dict[str, Any]:
        """The keyword arguments ``load()`` gives ``vllm.LLM``."""
        kwargs: dict[str, Any] = {
            "model": self.model,
            "tokenizer": self.tokenizer,
            "revision": self.revision,
            "dtype": self.dtype,
            "quantization": self.quantization,
            "trust_remote_code": self.trust_remote_code,
            "tensor_parallel_size": self.tensor_parallel_size,
            "gpu_memory_utilization": self.gpu_memory_utilization,
        }
        if self.max_model_len is not None:
            kwargs["max_model_len"] = self.max_model_len
        return {**kwargs, **self.engine_kwargs}

    def load(self) -> None:
        if self.loaded:
            return
        vllm = _import_vllm()
        engine = vllm.LLM(**self.engine_arguments())
        self._runtime.tokenizer = engine.get_tokenizer()
        self._runtime.model = engine

    def unload(self) -> None:
        super().unload()
        release_gpu_memory()

    def sampling_params(self, num_generations: int, *, plain: bool = False) -> Any:
        """The ``SamplingParams`` for one call: ``generation_kwargs`` mapped to vLLM's names.
        ``plain``: the prompt uses the plain fallback template, which adds a stop string."""
        vllm = _import_vllm()
        kwargs = dict(self.generation_kwargs)
        kwargs.update(kwargs.pop("extra_sampling_params", None) or {})
        kwargs.pop("echo", None)
        max_new = kwargs.pop("max_new_tokens", None)
        max_tokens = kwargs.pop("max_tokens", None)
        stops = stop_list(kwargs.pop("stop", None)) + ([PLAIN_PROMPT_STOP] if plain else [])
        if kwargs.pop("do_sample", True) is False:
            kwargs["temperature"] = 0.0
        params: dict[str, Any] = {
            **kwargs,
            "n": num_generations,
            "max_tokens": max_new or max_tokens or DEFAULT_MAX_NEW_TOKENS,
        }
        if stops:
            params["stop"] = stops
        if self.structured_output is not None:
            params.update(_guided_json(self.structured_output))
        return vllm.SamplingParams(**params)

    async def agenerate_user_turn(
        self, messages: ChatType, *, num_generations: int = 1
    ) -> GenerateOutput:
        return await self._user_turn(
            messages, num_generations, self.pre_query_template(), self.chat_template
        )

    def prompt_token_ids(self, messages: ChatType) -> tuple[list[int], bool]:
        """The prompt's token ids, and whether the plain fallback template made it. Tokenized
        here (not by the engine) so a template's BOS token is not added twice."""
        tokenizer = self._runtime.tokenizer
        raw = raw_prompt(messages)
        if raw is not None:  # Magpie's user turn: completed as it is
            return list(tokenizer.encode(raw, add_special_tokens=False)), False
        template = self.chat_template or getattr(tokenizer, "chat_template", None)
        if template:
            text = tokenizer.apply_chat_template(
                messages, chat_template=template, tokenize=False, add_generation_prompt=True
            )
        else:
            text = (getattr(tokenizer, "bos_token", None) or "") + plain_prompt(messages)
        return list(tokenizer.encode(text, add_special_tokens=False)), not template

    def generate_batch(
        self, conversations: list[ChatType], num_generations: int
    ) -> list[GenerateOutput]:
        engine = self._runtime.model
        if engine is None:
            raise LLMError("vLLM is not loaded: call load() first")
        prompts, plain = [], False
        for messages in conversations:
            ids, plain = self.prompt_token_ids(messages)
            prompts.append({"prompt_token_ids": ids})
        kwargs = self.generation_kwargs
        greedy = kwargs.get("temperature") == 0 or kwargs.get("do_sample") is False
        # Greedy samples are all the same answer; older vLLMs reject n > 1 without sampling.
        repeat = num_generations if greedy else 1
        params = self.sampling_params(num_generations // repeat, plain=plain)
        results = engine.generate(prompts, params, use_tqdm=False)
        outputs = []
        for prompt, result in zip(prompts, results, strict=True):
            completions = sorted(result.outputs, key=lambda c: getattr(c, "index", 0))
            texts: list[str | None] = [c.text for c in completions]
            produced = sum(len(c.token_ids) for c in completions)
            usage = Usage(len(prompt["prompt_token_ids"]), produced)
            outputs.append(GenerateOutput(generations=texts * repeat, usage=usage))
        return outputs


def _import_vllm() -> Any:
    try:
        import vllm
    except ImportError as exc:
        raise missing_extra("vLLM", "vllm", "vllm") from exc
    return vllm


def _guided_json(schema: dict[str, Any]) -> dict[str, Any]:
    """Constrain decoding to ``schema`` with what the installed vLLM offers; nothing when it
    has neither API (the answer is still validated and re-asked)."""
    try:
        from vllm.sampling_params import StructuredOutputsParams
    except ImportError:
        pass
    else:
        return {"structured_outputs": StructuredOutputsParams(json=schema)}
    try:
        from vllm.sampling_params import GuidedDecodingParams
    except ImportError:
        return {}
    return {"guided_decoding": GuidedDecodingParams(json=schema)}
