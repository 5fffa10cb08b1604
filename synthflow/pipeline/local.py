"""distilabel's module path ``distilabel.pipeline.local``: the ``Pipeline`` of
``synthflow.pipeline.pipeline``."""

from synthflow.pipeline.pipeline import Pipeline

__all__ = ["Pipeline"]
