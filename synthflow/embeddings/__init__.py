"""Embedding models' old home: ``synthflow.embeddings`` re-exports ``synthflow.models.embeddings``.

Kept so that code written for the old layout (and distilabel's ``distilabel.embeddings``) keeps
working; its modules (``synthflow.embeddings.base``, ...) are the new ones under their old names.
"""

from typing import Any

from synthflow.models import embeddings as _models_embeddings

__all__ = list(_models_embeddings.__all__)


def __getattr__(name: str) -> Any:
    return getattr(_models_embeddings, name)


def __dir__() -> list[str]:
    return __all__
