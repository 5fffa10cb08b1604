"""distilabel's module path ``distilabel.steps.tasks.instruction_backtranslation``: the classes of
``synthflow.steps.tasks.backtranslation``."""

from synthflow.steps.tasks.backtranslation import InstructionBacktranslation

__all__ = ["InstructionBacktranslation"]
