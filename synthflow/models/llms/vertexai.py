"""distilabel's module path ``distilabel.models.llms.vertexai``: the classes of
``synthflow.models.llms.gemini``."""

from synthflow.models.llms.gemini import VertexAILLM

__all__ = ["VertexAILLM"]
