"""distilabel's module path ``distilabel.steps.generators.data_sampler``: the class of
``synthflow.steps.sources``."""

from synthflow.steps.sources import DataSampler

__all__ = ["DataSampler"]
