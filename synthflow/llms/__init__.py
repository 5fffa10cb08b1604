"""LLM clients' old home: ``synthflow.llms`` re-exports ``synthflow.models.llms``.

Kept so that code written for the old layout (and distilabel's ``distilabel.llms``) keeps
working; its modules (``synthflow.llms.base``, ...) are the new ones under their old names.
"""

from typing import Any

from synthflow.models import llms as _models_llms

__all__ = list(_models_llms.__all__)


def __getattr__(name: str) -> Any:
    return getattr(_models_llms, name)


def __dir__() -> list[str]:
    return __all__
