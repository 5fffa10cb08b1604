"""distilabel's module path ``distilabel.steps.columns.group``: the same classes as
``synthflow.steps.columns``."""

from synthflow.steps.columns import GroupColumns

__all__ = ["GroupColumns"]
