"""SentenceTransformerEmbeddings: a ``sentence-transformers`` model in this process.

Encoding holds the CPU or GPU, so give the step that uses it ``executor="process"``: each worker
process loads its own copy of the model once. ``sentence_transformers`` (and torch with it) is
imported in ``load()``, never when this module is.
"""

from __future__ import annotations

import inspect
from collections.abc import Sequence
from typing import Any, Literal

from pydantic import Field, PrivateAttr, SecretStr

from synthflow.models.embeddings.base import Embeddings, Vector
from synthflow.runtime_parameters import RuntimeParameter

Precision = Literal["float32", "int8", "uint8", "binary", "ubinary"]


class _Loaded:
    """The loaded model. It never travels: a pickled copy (sent to a worker process) arrives
    empty and loads its own."""

    def __init__(self) -> None:
        self.model: Any = None

    def __reduce__(self) -> tuple[type[_Loaded], tuple[()]]:
        return (_Loaded, ())


class SentenceTransformerEmbeddings(Embeddings):
    """Embeddings from a ``sentence-transformers`` model, run locally.

    Needs ``pip install 'synthflow[sentence-transformers]'``. ``model`` is a Hugging Face Hub
    id or a directory holding a saved model. Use it in a step with ``executor="process"`` (one
    worker per GPU): each worker loads the model once, and encoding does not block the
    pipeline's event loop.

    Runtime parameters: ``device`` and ``normalize_embeddings``.
    """

    model: str = Field(description="A Hugging Face Hub model id, or a directory with a model.")
    device: RuntimeParameter[str | None] = Field(
        default=None,
        description="Where the model runs: 'cpu', 'cuda', 'cuda:1', 'mps'; None picks a GPU "
        "when there is one.",
    )
    prompts: dict[str, str] | None = Field(
        default=None, description="Named prompts put before each text, e.g. {'query': '...'}."
    )
    default_prompt_name: str | None = Field(
        default=None, description="The prompt of 'prompts' used for every text, if any."
    )
    trust_remote_code: bool = Field(
        default=False, description="Run the model repository's own code (only if you trust it)."
    )
    revision: str | None = Field(default=None, description="A branch, tag or commit on the Hub.")
    token: SecretStr | None = Field(
        default=None,
        exclude=True,
        description="Hugging Face token for a private model; HF_TOKEN or the saved login when "
        "unset. Never written to the pipeline's YAML.",
    )
    truncate_dim: int | None = Field(
        default=None, ge=1, description="Keep only the first dimensions of each vector."
    )
    model_kwargs: dict[str, Any] | None = Field(
        default=None, description="More keyword arguments for the transformers model."
    )
    tokenizer_kwargs: dict[str, Any] | None = Field(
        default=None, description="More keyword arguments for the tokenizer."
    )
    config_kwargs: dict[str, Any] | None = Field(
        default=None, description="More keyword arguments for the model's configuration."
    )
    precision: Precision | None = Field(
        default="float32",
        description="The vectors' type: 'float32', or quantized 'int8', 'uint8', 'binary', "
        "'ubinary' (whole numbers).",
    )
    normalize_embeddings: RuntimeParameter[bool] = Field(
        default=True, description="Scale every vector to length 1."
    )

    _loaded: _Loaded = PrivateAttr(default_factory=_Loaded)

    @property
    def model_name(self) -> str:
        return self.model

    @property
    def loaded(self) -> bool:
        return self._loaded.model is not None

    def load(self) -> None:
        if self.loaded:
            return
        try:
            from sentence_transformers import SentenceTransformer
        except ImportError as exc:
            raise ImportError(
                "SentenceTransformerEmbeddings needs the 'sentence-transformers' extra: "
                "pip install 'synthflow[sentence-transformers]'"
            ) from exc
        kwargs: dict[str, Any] = {
            "device": self.device,
            "prompts": self.prompts,
            "default_prompt_name": self.default_prompt_name,
            "trust_remote_code": self.trust_remote_code,
            "revision": self.revision,
            "token": self.token.get_secret_value() if self.token is not None else None,
            "truncate_dim": self.truncate_dim,
            "model_kwargs": self.model_kwargs,
            "config_kwargs": self.config_kwargs,
        }
        # sentence-transformers 6 renamed the tokenizer's keyword arguments to processor_kwargs.
        parameters = inspect.signature(SentenceTransformer.__init__).parameters
        tokenizer_keyword = (
            "processor_kwargs" if "processor_kwargs" in parameters else ("tokenizer_kwargs")
        )
        kwargs[tokenizer_keyword] = self.tokenizer_kwargs
        self._loaded.model = SentenceTransformer(self.model, **kwargs)

    def unload(self) -> None:
        self._loaded.model = None
        from synthflow.models.llms.local.base import release_gpu_memory

        release_gpu_memory()

    def encode(self, inputs: Sequence[str]) -> list[Vector]:
        model = self._loaded.model
        if model is None:
            raise RuntimeError("SentenceTransformerEmbeddings is not loaded: call load() first")
        texts = list(inputs)
        if not texts:
            return []
        vectors = model.encode(
            texts,
            batch_size=len(texts),
            convert_to_numpy=True,
            precision=self.precision or "float32",
            normalize_embeddings=self.normalize_embeddings,
            show_progress_bar=False,
        )
        result: list[Vector] = vectors.tolist()
        return result
