"""distilabel's module path ``distilabel.steps.columns.keep``: the same classes as
``synthflow.steps.columns``."""

from synthflow.steps.columns import KeepColumns

__all__ = ["KeepColumns"]
