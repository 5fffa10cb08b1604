"""Model clients, as ``distilabel.models``: ``from synthflow.models import OpenAILLM``.

    synthflow.models.llms              LLM clients (API clients; in-process models in llms/local/)
    synthflow.models.embeddings        embedding models
    synthflow.models.image_generation  image generation models
    synthflow.models.callpath          the call path every client shares (HTTP, limits, retries,
                                       cache, accounting, structured output)

The LLM clients import cheaply (no vendor SDKs); embedding models are imported on first use.
"""

from typing import TYPE_CHECKING, Any

from synthflow.models.embeddings import Embeddings, HiddenState
from synthflow.models.llms import (
    APILLM,
    LLM,
    AnthropicLLM,
    AnyscaleLLM,
    AsyncLLM,
    AzureOpenAILLM,
    ChatType,
    ClientvLLM,
    CohereLLM,
    CudaDevicePlacementMixin,
    GeminiLLM,
    GenerateOutput,
    GroqLLM,
    InferenceEndpointsLLM,
    LiteLLM,
    LlamaCppLLM,
    LocalLLM,
    MistralLLM,
    MixtureOfAgentsLLM,
    MlxLLM,
    OfflineLLM,
    OllamaLLM,
    OpenAILLM,
    TogetherLLM,
    TransformersLLM,
    Usage,
    VertexAILLM,
    vLLM,
)

if TYPE_CHECKING:
    from synthflow.models.embeddings import OpenAIEmbeddings, SentenceTransformerEmbeddings
    from synthflow.models.image_generation import (
        AsyncImageGenerationModel,
        ImageGenerationModel,
        InferenceEndpointsImageGeneration,
        OpenAIImageGeneration,
    )

__all__ = [
    "APILLM",
    "LLM",
    "AnthropicLLM",
    "AnyscaleLLM",
    "AsyncImageGenerationModel",
    "AsyncLLM",
    "AzureOpenAILLM",
    "ChatType",
    "ClientvLLM",
    "CohereLLM",
    "CudaDevicePlacementMixin",
    "Embeddings",
    "GeminiLLM",
    "GenerateOutput",
    "GroqLLM",
    "HiddenState",
    "ImageGenerationModel",
    "InferenceEndpointsImageGeneration",
    "InferenceEndpointsLLM",
    "LiteLLM",
    "LlamaCppLLM",
    "LocalLLM",
    "MistralLLM",
    "MixtureOfAgentsLLM",
    "MlxLLM",
    "OfflineLLM",
    "OllamaLLM",
    "OpenAIEmbeddings",
    "OpenAIImageGeneration",
    "OpenAILLM",
    "SentenceTransformerEmbeddings",
    "TogetherLLM",
    "TransformersLLM",
    "Usage",
    "VertexAILLM",
    "vLLM",
]

_LAZY_EMBEDDINGS = ("OpenAIEmbeddings", "SentenceTransformerEmbeddings")
_LAZY_IMAGE_GENERATION = (
    "AsyncImageGenerationModel",
    "ImageGenerationModel",
    "InferenceEndpointsImageGeneration",
    "OpenAIImageGeneration",
)


def __getattr__(name: str) -> Any:
    if name in _LAZY_EMBEDDINGS:
        from synthflow.models import embeddings

        return getattr(embeddings, name)
    if name in _LAZY_IMAGE_GENERATION:
        from synthflow.models import image_generation

        return getattr(image_generation, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
