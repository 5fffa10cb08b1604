"""Embedding models: ``from synthflow.models.embeddings import Embeddings, OpenAIEmbeddings,
SentenceTransformerEmbeddings``.

Over HTTP (``api``: the LLM call path): ``OpenAIEmbeddings``, ``InferenceEndpointsEmbeddings``.
In this process (``local``: for the process pool): ``SentenceTransformerEmbeddings``,
``vLLMEmbeddings``, ``LlamaCppEmbeddings``.

The models are imported on first use, so that ``synthflow.steps`` (which holds the
``EmbeddingGeneration`` step) pulls in neither the HTTP stack nor a local-model library.
"""

import importlib
from typing import TYPE_CHECKING, Any

from synthflow.models.embeddings.base import Embeddings, Vector
from synthflow.models.embeddings.hidden_states import HiddenState

if TYPE_CHECKING:
    from synthflow.models.embeddings.huggingface import InferenceEndpointsEmbeddings
    from synthflow.models.embeddings.llama_cpp import LlamaCppEmbeddings
    from synthflow.models.embeddings.openai import OpenAIEmbeddings
    from synthflow.models.embeddings.sentence_transformers import SentenceTransformerEmbeddings
    from synthflow.models.embeddings.vllm import vLLMEmbeddings

__all__ = [
    "Embeddings",
    "HiddenState",
    "InferenceEndpointsEmbeddings",
    "LlamaCppEmbeddings",
    "OpenAIEmbeddings",
    "SentenceTransformerEmbeddings",
    "Vector",
    "vLLMEmbeddings",
]

_LAZY = {
    "InferenceEndpointsEmbeddings": "huggingface",
    "LlamaCppEmbeddings": "llama_cpp",
    "OpenAIEmbeddings": "openai",
    "SentenceTransformerEmbeddings": "sentence_transformers",
    "vLLMEmbeddings": "vllm",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        module = importlib.import_module(f"{__name__}.{_LAZY[name]}")
        return getattr(module, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
