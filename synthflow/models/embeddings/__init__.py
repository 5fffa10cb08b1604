"""Embedding models: ``from synthflow.models.embeddings import Embeddings, OpenAIEmbeddings,
SentenceTransformerEmbeddings``.

The models are imported on first use, so that ``synthflow.steps`` (which holds the
``EmbeddingGeneration`` step) pulls in neither the HTTP stack nor a local-model library.
"""

from typing import TYPE_CHECKING, Any

from synthflow.models.embeddings.base import Embeddings, Vector
from synthflow.models.embeddings.hidden_states import HiddenState

if TYPE_CHECKING:
    from synthflow.models.embeddings.openai import OpenAIEmbeddings
    from synthflow.models.embeddings.sentence_transformers import SentenceTransformerEmbeddings

__all__ = [
    "Embeddings",
    "HiddenState",
    "OpenAIEmbeddings",
    "SentenceTransformerEmbeddings",
    "Vector",
]


def __getattr__(name: str) -> Any:
    if name == "OpenAIEmbeddings":
        from synthflow.models.embeddings.openai import OpenAIEmbeddings

        return OpenAIEmbeddings
    if name == "SentenceTransformerEmbeddings":
        from synthflow.models.embeddings.sentence_transformers import SentenceTransformerEmbeddings

        return SentenceTransformerEmbeddings
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
