"""distilabel's module path ``distilabel.models.llms.mistral``: the classes of
``synthflow.models.llms.openai``."""

from synthflow.models.llms.openai import MistralLLM

__all__ = ["MistralLLM"]
