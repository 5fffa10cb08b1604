"""LLM clients: ``from synthflow.models.llms import OpenAILLM, AnthropicLLM, vLLM, ...``.

API clients (one module per wire protocol: ``openai``, ``anthropic``, ``cohere``, ``gemini``,
``huggingface``, ``ollama``) speak HTTP through the shared call path in
``synthflow.models.callpath``, with no vendor SDK. ``local/`` holds the models that run through an
optional library in this process (``TransformersLLM``, ``vLLM``, ``LlamaCppLLM``, ``LiteLLM``,
``MlxLLM``); importing them here is cheap, and their ``load()`` says what to ``pip install`` when
it is missing. ``ClientvLLM`` (``client_vllm``) adds raw completion for Magpie to the OpenAI
protocol; ``MixtureOfAgentsLLM`` (``moa``) combines other LLMs into one.

Each name is imported on first use (``synthflow._lazy``), so loading one client doesn't load
the others.
"""

from typing import TYPE_CHECKING

from synthflow._lazy import lazy_exports

if TYPE_CHECKING:
    from synthflow.models.embeddings.hidden_states import HiddenState
    from synthflow.models.llms.anthropic import AnthropicLLM
    from synthflow.models.llms.api import APILLM
    from synthflow.models.llms.base import LLM, ChatType, GenerateOutput, Usage
    from synthflow.models.llms.client_vllm import ClientvLLM
    from synthflow.models.llms.cohere import CohereLLM
    from synthflow.models.llms.distilabel_bases import AsyncLLM, CudaDevicePlacementMixin
    from synthflow.models.llms.gemini import GeminiLLM, VertexAILLM
    from synthflow.models.llms.huggingface import InferenceEndpointsLLM
    from synthflow.models.llms.local.base import LocalLLM
    from synthflow.models.llms.local.litellm import LiteLLM
    from synthflow.models.llms.local.llama_cpp import LlamaCppLLM
    from synthflow.models.llms.local.mlx import MlxLLM
    from synthflow.models.llms.local.transformers import TransformersLLM
    from synthflow.models.llms.local.vllm import vLLM
    from synthflow.models.llms.moa import MixtureOfAgentsLLM
    from synthflow.models.llms.offline import OfflineLLM
    from synthflow.models.llms.ollama import OllamaLLM
    from synthflow.models.llms.openai import (
        AnyscaleLLM,
        AzureOpenAILLM,
        GroqLLM,
        MistralLLM,
        OpenAILLM,
        TogetherLLM,
    )

_HOMES = {
    "AnthropicLLM": "synthflow.models.llms.anthropic",
    "AnyscaleLLM": "synthflow.models.llms.openai",
    "AsyncLLM": "synthflow.models.llms.distilabel_bases",
    "APILLM": "synthflow.models.llms.api",
    "AzureOpenAILLM": "synthflow.models.llms.openai",
    "ChatType": "synthflow.models.llms.base",
    "ClientvLLM": "synthflow.models.llms.client_vllm",
    "CohereLLM": "synthflow.models.llms.cohere",
    "CudaDevicePlacementMixin": "synthflow.models.llms.distilabel_bases",
    "GeminiLLM": "synthflow.models.llms.gemini",
    "GenerateOutput": "synthflow.models.llms.base",
    "GroqLLM": "synthflow.models.llms.openai",
    "HiddenState": "synthflow.models.embeddings.hidden_states",
    "InferenceEndpointsLLM": "synthflow.models.llms.huggingface",
    "LiteLLM": "synthflow.models.llms.local.litellm",
    "LlamaCppLLM": "synthflow.models.llms.local.llama_cpp",
    "LLM": "synthflow.models.llms.base",
    "LocalLLM": "synthflow.models.llms.local.base",
    "MistralLLM": "synthflow.models.llms.openai",
    "MixtureOfAgentsLLM": "synthflow.models.llms.moa",
    "MlxLLM": "synthflow.models.llms.local.mlx",
    "OfflineLLM": "synthflow.models.llms.offline",
    "OllamaLLM": "synthflow.models.llms.ollama",
    "OpenAILLM": "synthflow.models.llms.openai",
    "TogetherLLM": "synthflow.models.llms.openai",
    "TransformersLLM": "synthflow.models.llms.local.transformers",
    "Usage": "synthflow.models.llms.base",
    "VertexAILLM": "synthflow.models.llms.gemini",
    "vLLM": "synthflow.models.llms.local.vllm",
}

__getattr__, __dir__ = lazy_exports(__name__, _HOMES)

__all__ = [
    "APILLM",
    "LLM",
    "AnthropicLLM",
    "AnyscaleLLM",
    "AsyncLLM",
    "AzureOpenAILLM",
    "ChatType",
    "ClientvLLM",
    "CohereLLM",
    "CudaDevicePlacementMixin",
    "GeminiLLM",
    "GenerateOutput",
    "GroqLLM",
    "HiddenState",
    "InferenceEndpointsLLM",
    "LiteLLM",
    "LlamaCppLLM",
    "LocalLLM",
    "MistralLLM",
    "MixtureOfAgentsLLM",
    "MlxLLM",
    "OfflineLLM",
    "OllamaLLM",
    "OpenAILLM",
    "TogetherLLM",
    "TransformersLLM",
    "Usage",
    "VertexAILLM",
    "vLLM",
]
