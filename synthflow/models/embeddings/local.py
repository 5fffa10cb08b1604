"""Embedding models that run in this process through an optional library (vLLM, llama.cpp).

Encoding holds the CPU or GPU: give the step that uses one ``executor="process"``, so that each
worker process loads its own copy of the model once and the pipeline's event loop never waits on
it. The library is imported in ``load()``, never when this module is; a pickled model (sent to a
worker) arrives unloaded.
"""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Sequence
from typing import Any

from pydantic import PrivateAttr

from synthflow.models.embeddings.base import Embeddings, Vector


class Loaded:
    """A loaded model. It never travels: a pickled copy arrives empty and loads its own."""

    def __init__(self) -> None:
        self.model: Any = None

    def __reduce__(self) -> tuple[type[Loaded], tuple[()]]:
        return (Loaded, ())


class LocalEmbeddings(Embeddings):
    """The shared lifecycle of in-process embedding models: ``load_model`` once, ``embed``
    with the loaded model, ``unload`` drops it and frees the GPU's cached memory."""

    _loaded: Loaded = PrivateAttr(default_factory=Loaded)

    @property
    def loaded(self) -> bool:
        return self._loaded.model is not None

    @abstractmethod
    def load_model(self) -> Any:
        """Import the library and build the model (it says what to install when missing)."""

    @abstractmethod
    def embed(self, model: Any, texts: list[str]) -> list[Any]:
        """The loaded ``model``'s vectors for ``texts``, in order."""

    def load(self) -> None:
        if not self.loaded:
            self._loaded.model = self.load_model()

    def unload(self) -> None:
        model, self._loaded.model = self._loaded.model, None
        close = getattr(model, "close", None)
        if callable(close):
            close()
        from synthflow.models.llms.local.base import release_gpu_memory

        release_gpu_memory()

    def encode(self, inputs: Sequence[str]) -> list[Vector]:
        model = self._loaded.model
        if model is None:
            raise RuntimeError(f"{type(self).__name__} is not loaded: call load() first")
        texts = list(inputs)
        if not texts:
            return []
        vectors = self.embed(model, texts)
        if len(vectors) != len(texts):
            raise ValueError(
                f"{type(self).__name__} got {len(vectors)} embeddings for {len(texts)} texts"
            )
        return [_floats(type(self).__name__, vector) for vector in vectors]


def _floats(owner: str, vector: Any) -> Vector:
    values = vector.tolist() if hasattr(vector, "tolist") else list(vector)
    if values and isinstance(values[0], list):
        raise ValueError(
            f"{owner}: the model gives one vector per token, not per text: use an embedding "
            "model that pools (or set its pooling)"
        )
    return [float(x) for x in values]
