"""Build and run pipelines: ``from synthflow.pipeline import Pipeline``."""

from synthflow.pipeline.pipeline import Pipeline
from synthflow.pipeline.stats import StepStats

__all__ = ["Pipeline", "StepStats"]
