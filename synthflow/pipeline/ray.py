"""distilabel's module path ``distilabel.pipeline.ray``: the ``RayPipeline`` of
``synthflow.pipeline.pipeline`` (what ``Pipeline.ray()`` gives)."""

from synthflow.pipeline.pipeline import RayPipeline

__all__ = ["RayPipeline"]
