"""distilabel's module path ``distilabel.models.llms.anyscale``: the classes of
``synthflow.models.llms.openai``."""

from synthflow.models.llms.openai import AnyscaleLLM

__all__ = ["AnyscaleLLM"]
