"""LLM clients: ``from synthflow.llms import OfflineLLM, OpenAILLM, ...``."""

from synthflow.llms.base import LLM, ChatType, GenerateOutput, Usage
from synthflow.llms.offline import OfflineLLM

__all__ = ["LLM", "ChatType", "GenerateOutput", "OfflineLLM", "Usage"]
