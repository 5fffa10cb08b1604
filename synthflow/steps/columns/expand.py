"""distilabel's module path ``distilabel.steps.columns.expand``: the same classes as
``synthflow.steps.columns``."""

from synthflow.steps.columns import ExpandColumns

__all__ = ["ExpandColumns"]
