"""distilabel's module path ``distilabel.steps.tasks.evol_instruct.evol_complexity.generator``:
the classes of
``synthflow.steps.tasks.evolution_generators``."""

from synthflow.steps.tasks.evolution_generators import EvolComplexityGenerator

__all__ = ["EvolComplexityGenerator"]
