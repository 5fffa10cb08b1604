"""distilabel's module path ``distilabel.steps.generators.utils``: the same classes as
``synthflow.steps.generators``."""

from synthflow.steps.generators import make_generator_step

__all__ = ["make_generator_step"]
