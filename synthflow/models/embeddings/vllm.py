"""vLLMEmbeddings: an embedding model on vLLM's offline engine (``vllm.LLM``), in this process.

Untested on real hardware: vLLM needs a GPU, and none was available where this was written. Its
tests run it against a stand-in ``vllm`` module that records what it is given.
"""

from __future__ import annotations

from typing import Any

from pydantic import Field

from synthflow.models.embeddings.local import LocalEmbeddings
from synthflow.models.llms.local.base import missing_extra
from synthflow.runtime_parameters import RuntimeParameter


class vLLMEmbeddings(LocalEmbeddings):
    """Embeddings from a model served by vLLM's offline engine (``pip install
    'synthflow[vllm]'`` and a GPU).

    Use it in ``EmbeddingGeneration(..., executor="process", workers=1)``: the worker loads the
    engine once and keeps the GPU. The engine batches the texts of each call itself, so a large
    ``input_batch_size`` keeps the GPU busy. ``model`` is a Hub id or a directory; ``dtype``,
    ``trust_remote_code``, ``quantization``, ``revision``, ``enforce_eager``, ``seed`` and
    ``extra_kwargs`` (for example ``{"task": "embed"}`` on vLLM versions that ask for it) go to
    ``vllm.LLM``. Vectors come from ``LLM.embed`` (``LLM.encode`` on older versions).
    """

    model: str = Field(description="A Hugging Face Hub model id, or a directory with a model.")
    dtype: str = Field(default="auto", description="The weights' type ('auto', 'float16', ...).")
    trust_remote_code: bool = Field(
        default=False, description="Run the model repository's own code (only if you trust it)."
    )
    quantization: str | None = Field(default=None, description="vLLM's quantization method.")
    revision: str | None = Field(default=None, description="A branch, tag or commit on the Hub.")
    enforce_eager: bool = Field(default=True, description="Skip CUDA graph capture.")
    seed: int = Field(default=0, description="The engine's random seed.")
    extra_kwargs: RuntimeParameter[dict[str, Any]] = Field(
        default_factory=dict, description="More keyword arguments for vllm.LLM."
    )

    @property
    def model_name(self) -> str:
        return self.model

    def engine_arguments(self) -> dict[str, Any]:
        """The keyword arguments ``load()`` gives ``vllm.LLM`` besides the model."""
        return {
            "dtype": self.dtype,
            "trust_remote_code": self.trust_remote_code,
            "quantization": self.quantization,
            "revision": self.revision,
            "enforce_eager": self.enforce_eager,
            "seed": self.seed,
            **self.extra_kwargs,
        }

    def load_model(self) -> Any:
        try:
            import vllm
        except ImportError as exc:
            raise missing_extra("vLLMEmbeddings", "vllm", "vllm") from exc
        return vllm.LLM(self.model, **self.engine_arguments())

    def embed(self, model: Any, texts: list[str]) -> list[Any]:
        embed = getattr(model, "embed", None) or model.encode
        return [output.outputs.embedding for output in embed(texts, use_tqdm=False)]
