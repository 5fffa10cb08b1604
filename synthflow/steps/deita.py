"""distilabel's module path ``distilabel.steps.deita``: the classes of
``synthflow.steps.selection``."""

from synthflow.steps.selection import DeitaFiltering

__all__ = ["DeitaFiltering"]
