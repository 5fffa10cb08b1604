"""distilabel's module path ``distilabel.steps.generators.data``: the same classes as
``synthflow.steps.generators``."""

from synthflow.steps.generators import LoadDataFromDicts

__all__ = ["LoadDataFromDicts"]
