"""Embedding models: ``from synthflow.embeddings import Embeddings, OpenAIEmbeddings``.

The HTTP client is imported on first use, so that ``synthflow.steps`` (which holds the
``EmbeddingGeneration`` step) does not pull in the HTTP stack.
"""

from typing import TYPE_CHECKING, Any

from synthflow.embeddings.base import Embeddings, Vector

if TYPE_CHECKING:
    from synthflow.embeddings.openai import OpenAIEmbeddings

__all__ = ["Embeddings", "OpenAIEmbeddings", "Vector"]


def __getattr__(name: str) -> Any:
    if name == "OpenAIEmbeddings":
        from synthflow.embeddings.openai import OpenAIEmbeddings

        return OpenAIEmbeddings
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
