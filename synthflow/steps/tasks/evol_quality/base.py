"""distilabel's module path ``distilabel.steps.tasks.evol_quality.base``: the classes of
``synthflow.steps.tasks.evolution``."""

from synthflow.steps.tasks.evolution import EvolQuality

__all__ = ["EvolQuality"]
