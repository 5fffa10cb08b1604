"""distilabel's module path ``distilabel.models.llms.litellm``: the classes of
``synthflow.models.llms.local.litellm``."""

from synthflow.models.llms.local.litellm import LiteLLM

__all__ = ["LiteLLM"]
