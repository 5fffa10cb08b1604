"""LLM tasks: ``from synthflow.steps.tasks import Task, TextGeneration, EvolInstruct, ...``."""

from synthflow.steps.base import METADATA_COLUMN
from synthflow.steps.tasks.backtranslation import InstructionBacktranslation
from synthflow.steps.tasks.base import ERROR_COLUMN, Task
from synthflow.steps.tasks.evolution import EvolComplexity, EvolInstruct, EvolQuality
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
from synthflow.steps.tasks.text_generation import ChatGeneration, TextGeneration
from synthflow.steps.tasks.typing import ChatItem, ChatType

__all__ = [
    "ERROR_COLUMN",
    "METADATA_COLUMN",
    "ChatGeneration",
    "ChatItem",
    "ChatType",
    "EvolComplexity",
    "EvolInstruct",
    "EvolQuality",
    "GenerateLongTextMatchingData",
    "GenerateSentencePair",
    "GenerateShortTextMatchingData",
    "GenerateTextClassificationData",
    "GenerateTextRetrievalData",
    "InstructionBacktranslation",
    "SelfInstruct",
    "StructuredGeneration",
    "Task",
    "TextClassification",
    "TextGeneration",
]
