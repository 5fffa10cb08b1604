"""LLM tasks: ``from synthflow.steps.tasks import Task, TextGeneration, EvolInstruct, ...``.

The catalog's task modules are imported when one of their names is first used, so importing
this package stays fast however large the catalog grows. A new task is one line in _CATALOG
(and in ``__all__`` and the TYPE_CHECKING imports, for type checkers).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from synthflow.steps.base import METADATA_COLUMN
from synthflow.steps.tasks.base import ERROR_COLUMN, Task
from synthflow.steps.tasks.decorator import task
from synthflow.steps.tasks.text_generation import ChatGeneration, TextGeneration
from synthflow.steps.tasks.typing import ChatItem, ChatType

if TYPE_CHECKING:
    from synthflow.steps.tasks.backtranslation import InstructionBacktranslation
    from synthflow.steps.tasks.deita_scorers import ComplexityScorer, QualityScorer
    from synthflow.steps.tasks.evolution import EvolComplexity, EvolInstruct, EvolQuality
    from synthflow.steps.tasks.prometheus_eval import PrometheusEval
    from synthflow.steps.tasks.self_instruct import SelfInstruct
    from synthflow.steps.tasks.structured_generation import StructuredGeneration
    from synthflow.steps.tasks.text_classification import TextClassification
    from synthflow.steps.tasks.text_embeddings import (
        GenerateLongTextMatchingData,
        GenerateSentencePair,
        GenerateShortTextMatchingData,
        GenerateTextClassificationData,
        GenerateTextRetrievalData,
    )
    from synthflow.steps.tasks.ultrafeedback import UltraFeedback

_CATALOG: dict[str, str] = {
    "ComplexityScorer": "deita_scorers",
    "EvolComplexity": "evolution",
    "EvolInstruct": "evolution",
    "EvolQuality": "evolution",
    "GenerateLongTextMatchingData": "text_embeddings",
    "GenerateSentencePair": "text_embeddings",
    "GenerateShortTextMatchingData": "text_embeddings",
    "GenerateTextClassificationData": "text_embeddings",
    "GenerateTextRetrievalData": "text_embeddings",
    "InstructionBacktranslation": "backtranslation",
    "PrometheusEval": "prometheus_eval",
    "QualityScorer": "deita_scorers",
    "SelfInstruct": "self_instruct",
    "StructuredGeneration": "structured_generation",
    "TextClassification": "text_classification",
    "UltraFeedback": "ultrafeedback",
}
"""Catalog task name -> the module of this package that defines it."""


def __getattr__(name: str) -> Any:
    module = _CATALOG.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__() -> list[str]:
    return sorted(__all__)


__all__ = [
    "ERROR_COLUMN",
    "METADATA_COLUMN",
    "ChatGeneration",
    "ChatItem",
    "ChatType",
    "ComplexityScorer",
    "EvolComplexity",
    "EvolInstruct",
    "EvolQuality",
    "GenerateLongTextMatchingData",
    "GenerateSentencePair",
    "GenerateShortTextMatchingData",
    "GenerateTextClassificationData",
    "GenerateTextRetrievalData",
    "InstructionBacktranslation",
    "PrometheusEval",
    "QualityScorer",
    "SelfInstruct",
    "StructuredGeneration",
    "Task",
    "TextClassification",
    "TextGeneration",
    "UltraFeedback",
    "task",
]
