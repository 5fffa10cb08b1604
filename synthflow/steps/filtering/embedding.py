"""distilabel's module path ``distilabel.steps.filtering.embedding``: the classes of
``synthflow.steps.deduplication``."""

from synthflow.steps.deduplication import EmbeddingDedup

__all__ = ["EmbeddingDedup"]
