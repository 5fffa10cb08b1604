"""distilabel's module path ``distilabel.steps.tasks.evol_instruct.generator``: the classes of
``synthflow.steps.tasks.evolution_generators``."""

from synthflow.steps.tasks.evolution_generators import EvolInstructGenerator

__all__ = ["EvolInstructGenerator"]
