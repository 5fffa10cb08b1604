"""distilabel's module path ``distilabel.models.llms.mlx``: the classes of
``synthflow.models.llms.local.mlx``."""

from synthflow.models.llms.local.mlx import MlxLLM

__all__ = ["MlxLLM"]
