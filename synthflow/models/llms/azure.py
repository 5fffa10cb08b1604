"""distilabel's module path ``distilabel.models.llms.azure``: the classes of
``synthflow.models.llms.openai``."""

from synthflow.models.llms.openai import AzureOpenAILLM

__all__ = ["AzureOpenAILLM"]
