"""distilabel's module path ``distilabel.models.llms.llamacpp``: the classes of
``synthflow.models.llms.local.llama_cpp``."""

from synthflow.models.llms.local.llama_cpp import LlamaCppLLM

__all__ = ["LlamaCppLLM"]
