"""LlamaCppEmbeddings: a GGUF embedding model through llama-cpp-python, in this process.

Its tests run it against a stand-in ``llama_cpp`` module: no GGUF model file is at hand where it
was written, so the real library has not run here.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import Field

from synthflow.models.embeddings.local import LocalEmbeddings
from synthflow.models.llms.local.base import missing_extra
from synthflow.runtime_parameters import RuntimeParameter


class LlamaCppEmbeddings(LocalEmbeddings):
    """Embeddings from a GGUF model run by llama.cpp (``pip install 'synthflow[llama-cpp]'``).

    As in distilabel, ``model`` is the GGUF file's name: in the directory ``model_path``, or
    in the Hub repository ``repo_id`` (downloaded by ``llama_cpp.Llama.from_pretrained``). Use
    it in ``EmbeddingGeneration(..., executor="process")``: each worker loads the model once.
    ``n_gpu_layers`` (-1: all), ``n_ctx``, ``n_batch``, ``seed``, ``verbose`` and
    ``extra_kwargs`` go to ``llama_cpp.Llama``; ``normalize_embeddings`` scales each vector to
    length 1.
    """

    model: str = Field(description="The GGUF file's name.")
    model_path: RuntimeParameter[str | None] = Field(
        default=None, description="The directory that holds the GGUF file."
    )
    repo_id: RuntimeParameter[str | None] = Field(
        default=None, description="The Hugging Face Hub repository that holds the GGUF file."
    )
    n_gpu_layers: RuntimeParameter[int] = Field(
        default=-1, ge=-1, description="Layers offloaded to the GPU (-1: all of them)."
    )
    n_ctx: int = Field(default=512, ge=0, description="Context length in tokens.")
    n_batch: int = Field(default=512, ge=1, description="Tokens evaluated at once.")
    seed: int = Field(default=4294967295, description="llama.cpp's seed (the default: random).")
    normalize_embeddings: RuntimeParameter[bool] = Field(
        default=False, description="Scale every vector to length 1."
    )
    verbose: RuntimeParameter[bool] = Field(
        default=False, description="Let llama.cpp log to stderr."
    )
    extra_kwargs: RuntimeParameter[dict[str, Any]] = Field(
        default_factory=dict, description="More keyword arguments for llama_cpp.Llama."
    )

    @property
    def model_name(self) -> str:
        return self.model

    def model_arguments(self) -> dict[str, Any]:
        """The keyword arguments ``load()`` gives ``llama_cpp.Llama`` besides the file."""
        return {
            "n_gpu_layers": self.n_gpu_layers,
            "seed": self.seed,
            "n_ctx": self.n_ctx,
            "n_batch": self.n_batch,
            "verbose": self.verbose,
            "embedding": True,
            **self.extra_kwargs,
        }

    def load_model(self) -> Any:
        if self.model_path is None and self.repo_id is None:
            raise ValueError(
                "LlamaCppEmbeddings needs model_path=<directory of the GGUF file> or "
                "repo_id=<Hub repository>, besides model=<file name>"
            )
        try:
            import llama_cpp
        except ImportError as exc:
            raise missing_extra("LlamaCppEmbeddings", "llama-cpp", "llama-cpp-python") from exc
        if self.repo_id is not None:
            return llama_cpp.Llama.from_pretrained(
                repo_id=self.repo_id, filename=self.model, **self.model_arguments()
            )
        return llama_cpp.Llama(
            model_path=str(Path(str(self.model_path)) / self.model), **self.model_arguments()
        )

    def embed(self, model: Any, texts: list[str]) -> list[Any]:
        vectors: list[Any] = model.embed(texts, normalize=self.normalize_embeddings)
        return vectors
