"""distilabel's module path ``distilabel.steps.filtering.minhash``: the classes of
``synthflow.steps.deduplication``."""

from synthflow.steps.deduplication import MinHashDedup

__all__ = ["MinHashDedup"]
