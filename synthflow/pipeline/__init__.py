"""Build and run pipelines: ``from synthflow.pipeline import Pipeline``."""

from synthflow.pipeline.pipeline import Pipeline, RayPipeline
from synthflow.pipeline.routing import routing_batch_function, sample_n_steps
from synthflow.pipeline.stats import StepStats
from synthflow.pipeline.templates import InstructionResponsePipeline

__all__ = [
    "InstructionResponsePipeline",
    "Pipeline",
    "RayPipeline",
    "StepStats",
    "routing_batch_function",
    "sample_n_steps",
]
