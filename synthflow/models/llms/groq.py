"""distilabel's module path ``distilabel.models.llms.groq``: the classes of
``synthflow.models.llms.openai``."""

from synthflow.models.llms.openai import GroqLLM

__all__ = ["GroqLLM"]
