"""LLM clients: ``from synthflow.models.llms import OpenAILLM, AnthropicLLM, vLLM, ...``.

API clients (one module per wire protocol: ``openai``, ``anthropic``, ``cohere``, ``gemini``,
``huggingface``, ``ollama``) speak HTTP through the shared call path in
``synthflow.models.callpath``, with no vendor SDK. ``local/`` holds the models that run through an
optional library in this process (``TransformersLLM``, ``vLLM``, ``LlamaCppLLM``, ``LiteLLM``,
``MlxLLM``); importing them here is cheap, and their ``load()`` says what to ``pip install`` when
it is missing. ``ClientvLLM`` (``client_vllm``) adds raw completion for Magpie to the OpenAI
protocol; ``MixtureOfAgentsLLM`` (``moa``) combines other LLMs into one.
"""

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
