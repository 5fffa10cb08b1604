"""LLM tasks: ``from synthflow.steps.tasks import Task, TextGeneration, UltraFeedback``."""

from synthflow.steps.base import METADATA_COLUMN
from synthflow.steps.tasks.base import ERROR_COLUMN, Task
from synthflow.steps.tasks.clair import CLAIR
from synthflow.steps.tasks.deita_scorers import ComplexityScorer, QualityScorer
from synthflow.steps.tasks.generator_task import GeneratorTask
from synthflow.steps.tasks.genstruct import Genstruct
from synthflow.steps.tasks.math_shepherd import (
    FormatPRM,
    MathShepherdCompleter,
    MathShepherdGenerator,
)
from synthflow.steps.tasks.prometheus_eval import PrometheusEval
from synthflow.steps.tasks.text_embeddings_sources import (
    BitextRetrievalGenerator,
    EmbeddingTaskGenerator,
    MonolingualTripletGenerator,
)
from synthflow.steps.tasks.text_generation import ChatGeneration, TextGeneration
from synthflow.steps.tasks.ultrafeedback import UltraFeedback
from synthflow.steps.tasks.urial import URIAL

__all__ = [
    "CLAIR",
    "ERROR_COLUMN",
    "METADATA_COLUMN",
    "URIAL",
    "BitextRetrievalGenerator",
    "ChatGeneration",
    "ComplexityScorer",
    "EmbeddingTaskGenerator",
    "FormatPRM",
    "GeneratorTask",
    "Genstruct",
    "MathShepherdCompleter",
    "MathShepherdGenerator",
    "MonolingualTripletGenerator",
    "PrometheusEval",
    "QualityScorer",
    "Task",
    "TextGeneration",
    "UltraFeedback",
]
