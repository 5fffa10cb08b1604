"""Build and run pipelines: ``from synthflow.pipeline import Pipeline``."""

from synthflow.pipeline.pipeline import Pipeline, RayPipeline

# Through distilabel's module of the same name, so that the module is loaded here, before the
# package's attribute ``routing_batch_function`` is bound: importing the module later would
# otherwise rebind that attribute to the module.
from synthflow.pipeline.routing_batch_function import routing_batch_function, sample_n_steps
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
