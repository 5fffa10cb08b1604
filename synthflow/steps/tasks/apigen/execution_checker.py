"""distilabel's module path ``distilabel.steps.tasks.apigen.execution_checker``: the classes of
``synthflow.steps.tasks.apigen``."""

from synthflow.steps.tasks.apigen import APIGenExecutionChecker

__all__ = ["APIGenExecutionChecker"]
