"""distilabel's module path ``distilabel.models.llms.together``: the classes of
``synthflow.models.llms.openai``."""

from synthflow.models.llms.openai import TogetherLLM

__all__ = ["TogetherLLM"]
