"""distilabel's module path ``distilabel.steps.tasks.evol_instruct.base``: the classes of
``synthflow.steps.tasks.evolution``."""

from synthflow.steps.tasks.evolution import EvolInstruct

__all__ = ["EvolInstruct"]
