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
    from synthflow.steps.tasks.apigen import (
        APIGenExecutionChecker,
        APIGenGenerator,
        APIGenSemanticChecker,
    )
    from synthflow.steps.tasks.argilla_labeller import ArgillaLabeller
    from synthflow.steps.tasks.backtranslation import InstructionBacktranslation
    from synthflow.steps.tasks.clair import CLAIR
    from synthflow.steps.tasks.deita_scorers import ComplexityScorer, QualityScorer
    from synthflow.steps.tasks.evolution import EvolComplexity, EvolInstruct, EvolQuality
    from synthflow.steps.tasks.evolution_generators import (
        EvolComplexityGenerator,
        EvolInstructGenerator,
    )
    from synthflow.steps.tasks.generate_embeddings import GenerateEmbeddings
    from synthflow.steps.tasks.generator_task import GeneratorTask
    from synthflow.steps.tasks.genstruct import Genstruct
    from synthflow.steps.tasks.image_generation import ImageGeneration, ImageTask
    from synthflow.steps.tasks.magpie import Magpie, MagpieGenerator
    from synthflow.steps.tasks.math_shepherd import (
        FormatPRM,
        MathShepherdCompleter,
        MathShepherdGenerator,
    )
    from synthflow.steps.tasks.pair_rm import PairRM
    from synthflow.steps.tasks.prometheus_eval import PrometheusEval
    from synthflow.steps.tasks.self_instruct import SelfInstruct
    from synthflow.steps.tasks.structured_generation import StructuredGeneration
    from synthflow.steps.tasks.text_classification import TextClassification
    from synthflow.steps.tasks.text_clustering import TextClustering
    from synthflow.steps.tasks.text_embeddings import (
        GenerateLongTextMatchingData,
        GenerateSentencePair,
        GenerateShortTextMatchingData,
        GenerateTextClassificationData,
        GenerateTextRetrievalData,
    )
    from synthflow.steps.tasks.text_embeddings_sources import (
        BitextRetrievalGenerator,
        EmbeddingTaskGenerator,
        MonolingualTripletGenerator,
    )
    from synthflow.steps.tasks.text_generation_with_image import TextGenerationWithImage
    from synthflow.steps.tasks.ultrafeedback import UltraFeedback
    from synthflow.steps.tasks.urial import URIAL

_CATALOG: dict[str, str] = {
    "APIGenExecutionChecker": "apigen",
    "APIGenGenerator": "apigen",
    "APIGenSemanticChecker": "apigen",
    "ArgillaLabeller": "argilla_labeller",
    "BitextRetrievalGenerator": "text_embeddings_sources",
    "CLAIR": "clair",
    "ComplexityScorer": "deita_scorers",
    "EmbeddingTaskGenerator": "text_embeddings_sources",
    "EvolComplexity": "evolution",
    "EvolComplexityGenerator": "evolution_generators",
    "EvolInstruct": "evolution",
    "EvolInstructGenerator": "evolution_generators",
    "EvolQuality": "evolution",
    "FormatPRM": "math_shepherd",
    "GenerateEmbeddings": "generate_embeddings",
    "GenerateLongTextMatchingData": "text_embeddings",
    "GenerateSentencePair": "text_embeddings",
    "GenerateShortTextMatchingData": "text_embeddings",
    "GenerateTextClassificationData": "text_embeddings",
    "GenerateTextRetrievalData": "text_embeddings",
    "GeneratorTask": "generator_task",
    "Genstruct": "genstruct",
    "ImageGeneration": "image_generation",
    "ImageTask": "image_generation",
    "InstructionBacktranslation": "backtranslation",
    "Magpie": "magpie",
    "MagpieGenerator": "magpie",
    "MathShepherdCompleter": "math_shepherd",
    "MathShepherdGenerator": "math_shepherd",
    "MonolingualTripletGenerator": "text_embeddings_sources",
    "PairRM": "pair_rm",
    "PrometheusEval": "prometheus_eval",
    "QualityScorer": "deita_scorers",
    "SelfInstruct": "self_instruct",
    "StructuredGeneration": "structured_generation",
    "TextClassification": "text_classification",
    "TextClustering": "text_clustering",
    "TextGenerationWithImage": "text_generation_with_image",
    "URIAL": "urial",
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
    "CLAIR",
    "ERROR_COLUMN",
    "METADATA_COLUMN",
    "URIAL",
    "APIGenExecutionChecker",
    "APIGenGenerator",
    "APIGenSemanticChecker",
    "ArgillaLabeller",
    "BitextRetrievalGenerator",
    "ChatGeneration",
    "ChatItem",
    "ChatType",
    "ComplexityScorer",
    "EmbeddingTaskGenerator",
    "EvolComplexity",
    "EvolComplexityGenerator",
    "EvolInstruct",
    "EvolInstructGenerator",
    "EvolQuality",
    "FormatPRM",
    "GenerateEmbeddings",
    "GenerateLongTextMatchingData",
    "GenerateSentencePair",
    "GenerateShortTextMatchingData",
    "GenerateTextClassificationData",
    "GenerateTextRetrievalData",
    "GeneratorTask",
    "Genstruct",
    "ImageGeneration",
    "ImageTask",
    "InstructionBacktranslation",
    "Magpie",
    "MagpieGenerator",
    "MathShepherdCompleter",
    "MathShepherdGenerator",
    "MonolingualTripletGenerator",
    "PairRM",
    "PrometheusEval",
    "QualityScorer",
    "SelfInstruct",
    "StructuredGeneration",
    "Task",
    "TextClassification",
    "TextClustering",
    "TextGeneration",
    "TextGenerationWithImage",
    "UltraFeedback",
    "task",
]
