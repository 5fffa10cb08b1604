"""distilabel's module path ``distilabel.steps.columns.merge``: the same classes as
``synthflow.steps.columns``."""

from synthflow.steps.columns import MergeColumns

__all__ = ["MergeColumns"]
