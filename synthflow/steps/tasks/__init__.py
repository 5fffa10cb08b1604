"""LLM tasks: ``from synthflow.steps.tasks import Task, TextGeneration, UltraFeedback``."""

from synthflow.steps.base import METADATA_COLUMN
from synthflow.steps.tasks.base import ERROR_COLUMN, Task
from synthflow.steps.tasks.deita_scorers import ComplexityScorer, QualityScorer
from synthflow.steps.tasks.generate_embeddings import GenerateEmbeddings
from synthflow.steps.tasks.pair_rm import PairRM
from synthflow.steps.tasks.prometheus_eval import PrometheusEval
from synthflow.steps.tasks.text_generation import ChatGeneration, TextGeneration
from synthflow.steps.tasks.ultrafeedback import UltraFeedback

__all__ = [
    "ERROR_COLUMN",
    "METADATA_COLUMN",
    "ChatGeneration",
    "ComplexityScorer",
    "GenerateEmbeddings",
    "PairRM",
    "PrometheusEval",
    "QualityScorer",
    "Task",
    "TextGeneration",
    "UltraFeedback",
]
