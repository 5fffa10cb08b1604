"""distilabel's module path ``distilabel.steps.tasks.apigen.semantic_checker``: the classes of
``synthflow.steps.tasks.apigen``."""

from synthflow.steps.tasks.apigen import APIGenSemanticChecker

__all__ = ["APIGenSemanticChecker"]
