"""LLM clients: ``from synthflow.llms import OpenAILLM, AnthropicLLM, OfflineLLM, ...``.

API clients speak each provider's wire protocol over HTTP (no vendor SDK). Local-model clients
(``TransformersLLM``, ``vLLM``, ``LlamaCppLLM``) and ``LiteLLM`` need optional extras; importing
them here is cheap, and their ``load()`` says what to ``pip install`` when it is missing.
"""

from synthflow.llms.anthropic import AnthropicLLM
from synthflow.llms.api import APILLM
from synthflow.llms.base import LLM, ChatType, GenerateOutput, Usage
from synthflow.llms.cohere import CohereLLM
from synthflow.llms.gemini import GeminiLLM, VertexAILLM
from synthflow.llms.huggingface import InferenceEndpointsLLM
from synthflow.llms.litellm import LiteLLM
from synthflow.llms.llama_cpp import LlamaCppLLM
from synthflow.llms.local import LocalLLM
from synthflow.llms.offline import OfflineLLM
from synthflow.llms.ollama import OllamaLLM
from synthflow.llms.openai import (
    AnyscaleLLM,
    AzureOpenAILLM,
    GroqLLM,
    MistralLLM,
    OpenAILLM,
    TogetherLLM,
)
from synthflow.llms.transformers import TransformersLLM
from synthflow.llms.vllm import vLLM

__all__ = [
    "APILLM",
    "LLM",
    "AnthropicLLM",
    "AnyscaleLLM",
    "AzureOpenAILLM",
    "ChatType",
    "CohereLLM",
    "GeminiLLM",
    "GenerateOutput",
    "GroqLLM",
    "InferenceEndpointsLLM",
    "LiteLLM",
    "LlamaCppLLM",
    "LocalLLM",
    "MistralLLM",
    "OfflineLLM",
    "OllamaLLM",
    "OpenAILLM",
    "TogetherLLM",
    "TransformersLLM",
    "Usage",
    "VertexAILLM",
    "vLLM",
]
