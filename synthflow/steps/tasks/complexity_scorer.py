"""distilabel's module path ``distilabel.steps.tasks.complexity_scorer``: the classes of
``synthflow.steps.tasks.deita_scorers``."""

from synthflow.steps.tasks.deita_scorers import ComplexityScorer

__all__ = ["ComplexityScorer"]
