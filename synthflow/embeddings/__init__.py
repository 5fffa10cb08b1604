"""Embedding models: ``from synthflow.embeddings import Embeddings, OpenAIEmbeddings``."""

from synthflow.embeddings.base import Embeddings, Vector
from synthflow.embeddings.openai import OpenAIEmbeddings

__all__ = ["Embeddings", "OpenAIEmbeddings", "Vector"]
