"""GGUF models through llama-cpp-python (``llama_cpp.Llama``), run in this process.

Its tests run it against a stand-in module: no GGUF model file is at hand where it was written,
so the real library has not run here.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar, TypedDict

from pydantic import Field

from synthflow.audit import Exposure
from synthflow.errors import LLMError
from synthflow.exposure_rules import model_file_loads
from synthflow.models.llms.base import ChatType, GenerateOutput, Usage
from synthflow.models.llms.generation_kwargs import Stop
from synthflow.models.llms.local.base import (
    DEFAULT_MAX_NEW_TOKENS,
    LocalLLM,
    missing_extra,
    stop_list,
)
from synthflow.models.llms.magpie import MagpieSettings

# synthflow's generation kwarg -> create_chat_completion's. Others pass through unchanged.
_RENAMES = {"max_new_tokens": "max_tokens", "repetition_penalty": "repeat_penalty"}


class LlamaCppGenerationKwargs(TypedDict, total=False):
    """distilabel's names, and the usual ``create_chat_completion`` keywords; any other goes in
    ``extra_generation_kwargs``."""

    max_new_tokens: int
    max_tokens: int
    temperature: float
    do_sample: bool
    top_p: float
    top_k: int
    min_p: float
    typical_p: float
    seed: int
    stop: Stop
    frequency_penalty: float
    presence_penalty: float
    repetition_penalty: float
    repeat_penalty: float
    logprobs: bool
    top_logprobs: int
    logit_bias: dict[str | int, float]
    mirostat_mode: int
    mirostat_tau: float
    mirostat_eta: float
    tfs_z: float
    extra_generation_kwargs: dict[str, Any]


class LlamaCppLLM(LocalLLM, MagpieSettings):
    """A GGUF model file run by llama.cpp (``pip install 'synthflow[llama-cpp]'``).

    Use it in a task with ``executor="process"``: each worker loads the model once. On the event
    loop every generation blocks the loop and the whole pipeline while it runs.

    llama.cpp answers one conversation at a time, and ``num_generations`` answers are that many
    calls (with ``seed``, the i-th uses ``seed + i`` so they differ). ``generation_kwargs``:
    ``max_new_tokens`` (or ``max_tokens``; default 512), ``temperature``, ``top_p``, ``top_k``,
    ``seed``, ``stop``, ``repetition_penalty``, ``min_p``, ``presence_penalty``...
    (``LlamaCppGenerationKwargs``); any other keyword of ``Llama.create_chat_completion`` goes
    in ``extra_generation_kwargs``.
    ``structured_output`` is enforced by llama.cpp's JSON-schema grammar
    (``response_format``), and every answer is validated and re-asked as well. distilabel's
    ``extra_kwargs``, ``n_batch`` and ``seed`` go to ``llama_cpp.Llama`` through ``model_kwargs``.
    """

    native_structured_output: ClassVar[bool] = True
    generation_kwargs_spec: ClassVar[type | None] = LlamaCppGenerationKwargs
    passthrough_generation_kwarg: ClassVar[str | None] = "extra_generation_kwargs"
    # distilabel's settings: its extra_kwargs and these go to llama_cpp.Llama as they are.
    field_aliases: ClassVar[dict[str, str]] = {
        "extra_kwargs": "model_kwargs",
        "n_batch": "model_kwargs.n_batch",
        "seed": "model_kwargs.seed",
    }

    model_path: str = Field(description="Path of the .gguf model file.")
    n_ctx: int = Field(default=4096, ge=0, description="Context length (0: the model's own).")
    n_gpu_layers: int = Field(
        default=0, ge=-1, description="Layers offloaded to the GPU (-1: all of them)."
    )
    chat_format: str | None = Field(
        default=None,
        description="llama-cpp-python's chat format ('chatml', 'llama-3', ...); unset: the "
        "template stored in the GGUF file.",
    )
    verbose: bool = Field(default=False, description="Let llama.cpp log to stderr.")
    tokenizer_id: str | None = Field(
        default=None, description="The model's tokenizer on the Hub (used by the Magpie tasks)."
    )
    model_kwargs: dict[str, Any] = Field(
        default_factory=dict, description="More keyword arguments for llama_cpp.Llama."
    )

    @property
    def model_name(self) -> str:
        return Path(self.model_path).name

    def model_arguments(self) -> dict[str, Any]:
        """The keyword arguments ``load()`` gives ``llama_cpp.Llama``."""
        kwargs: dict[str, Any] = {
            "model_path": self.model_path,
            "n_ctx": self.n_ctx,
            "n_gpu_layers": self.n_gpu_layers,
            "verbose": self.verbose,
        }
        if self.chat_format is not None:
            kwargs["chat_format"] = self.chat_format
        return {**kwargs, **self.model_kwargs}

    def exposures(self, where: str) -> Iterator[Exposure]:
        return model_file_loads(where, {"model_path": self.model_path}, {})

    def load(self) -> None:
        if self.loaded:
            return
        llama_cpp = _import_llama_cpp()
        self._runtime.model = llama_cpp.Llama(**self.model_arguments())

    def completion_arguments(self, generation: int = 0) -> dict[str, Any]:
        """The keyword arguments (besides ``messages``) of the ``generation``-th call of
        ``create_chat_completion`` for one conversation."""
        given = dict(self.generation_kwargs)
        given.update(given.pop("extra_generation_kwargs", None) or {})
        kwargs = {_RENAMES.get(k, k): v for k, v in given.items()}
        kwargs.setdefault("max_tokens", DEFAULT_MAX_NEW_TOKENS)
        if kwargs.pop("do_sample", True) is False:
            kwargs["temperature"] = 0.0
        if "stop" in kwargs:
            kwargs["stop"] = stop_list(kwargs["stop"])
        if kwargs.get("seed") is not None:
            kwargs["seed"] = int(kwargs["seed"]) + generation
        if self.structured_output is not None:
            kwargs["response_format"] = {"type": "json_object", "schema": self.structured_output}
        return kwargs

    def generate_batch(
        self, conversations: list[ChatType], num_generations: int
    ) -> list[GenerateOutput]:
        model = self._runtime.model
        if model is None:
            raise LLMError("LlamaCppLLM is not loaded: call load() first")
        outputs = []
        for messages in conversations:
            texts: list[str | None] = []
            usage = Usage()
            for i in range(num_generations):
                response = model.create_chat_completion(
                    messages=messages, **self.completion_arguments(i)
                )
                texts.append(response["choices"][0]["message"].get("content"))
                counts = response.get("usage") or {}
                usage = usage + Usage(
                    int(counts.get("prompt_tokens") or 0), int(counts.get("completion_tokens") or 0)
                )
            outputs.append(GenerateOutput(generations=texts, usage=usage))
        return outputs


def _import_llama_cpp() -> Any:
    try:
        import llama_cpp
    except ImportError as exc:
        raise missing_extra("LlamaCppLLM", "llama-cpp", "llama-cpp-python") from exc
    return llama_cpp
