"""distilabel's module path ``distilabel.models.embeddings.llamacpp``: the classes of
``synthflow.models.embeddings.llama_cpp``."""

from synthflow.models.embeddings.llama_cpp import LlamaCppEmbeddings

__all__ = ["LlamaCppEmbeddings"]
