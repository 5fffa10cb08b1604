"""distilabel's module path ``distilabel.steps.tasks.apigen.generator``: the classes of
``synthflow.steps.tasks.apigen``."""

from synthflow.steps.tasks.apigen import APIGenGenerator

__all__ = ["APIGenGenerator"]
