"""distilabel's module path ``distilabel.steps.columns.combine``: the same classes as
``synthflow.steps.columns``."""

from synthflow.steps.columns import CombineOutputs

__all__ = ["CombineOutputs"]
