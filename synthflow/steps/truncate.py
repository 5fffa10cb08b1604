"""distilabel's module path ``distilabel.steps.truncate``: the classes of
``synthflow.steps.formatting``."""

from synthflow.steps.formatting import TruncateTextColumn

__all__ = ["TruncateTextColumn"]
