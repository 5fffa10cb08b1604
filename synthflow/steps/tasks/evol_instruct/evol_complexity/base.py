"""distilabel's module path ``distilabel.steps.tasks.evol_instruct.evol_complexity.base``:
the classes of
``synthflow.steps.tasks.evolution``."""

from synthflow.steps.tasks.evolution import EvolComplexity

__all__ = ["EvolComplexity"]
