"""distilabel's module path ``distilabel.steps.tasks.quality_scorer``: the classes of
``synthflow.steps.tasks.deita_scorers``."""

from synthflow.steps.tasks.deita_scorers import QualityScorer

__all__ = ["QualityScorer"]
