"""Model clients, as ``distilabel.models``: ``from synthflow.models import OpenAILLM``.

    synthflow.models.llms              LLM clients (API clients; in-process models in llms/local/)
    synthflow.models.embeddings        embedding models
    synthflow.models.image_generation  image generation models
    synthflow.models.callpath          the call path every client shares (HTTP, limits, retries,
                                       cache, accounting, structured output)

Every name is imported on first use (``synthflow._lazy``): importing one client, or a module
of this package, doesn't import the others.
"""

from typing import TYPE_CHECKING

from synthflow._lazy import lazy_exports

if TYPE_CHECKING:
    from synthflow.models.embeddings import (
        Embeddings,
        HiddenState,
        InferenceEndpointsEmbeddings,
        LlamaCppEmbeddings,
        OpenAIEmbeddings,
        SentenceTransformerEmbeddings,
        vLLMEmbeddings,
    )
    from synthflow.models.image_generation import (
        AsyncImageGenerationModel,
        ImageGenerationModel,
        InferenceEndpointsImageGeneration,
        OpenAIImageGeneration,
    )
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

_HOMES = {
    "AsyncImageGenerationModel": "synthflow.models.image_generation",
    "ImageGenerationModel": "synthflow.models.image_generation",
    "InferenceEndpointsImageGeneration": "synthflow.models.image_generation",
    "OpenAIImageGeneration": "synthflow.models.image_generation",
    "AsyncLLM": "synthflow.models.llms",
    "ClientvLLM": "synthflow.models.llms",
    "CudaDevicePlacementMixin": "synthflow.models.llms",
    "MixtureOfAgentsLLM": "synthflow.models.llms",
    "MlxLLM": "synthflow.models.llms",
    "Embeddings": "synthflow.models.embeddings",
    "HiddenState": "synthflow.models.embeddings",
    "InferenceEndpointsEmbeddings": "synthflow.models.embeddings",
    "LlamaCppEmbeddings": "synthflow.models.embeddings",
    "vLLMEmbeddings": "synthflow.models.embeddings",
    "OpenAIEmbeddings": "synthflow.models.embeddings",
    "SentenceTransformerEmbeddings": "synthflow.models.embeddings",
    "APILLM": "synthflow.models.llms",
    "LLM": "synthflow.models.llms",
    "AnthropicLLM": "synthflow.models.llms",
    "AnyscaleLLM": "synthflow.models.llms",
    "AzureOpenAILLM": "synthflow.models.llms",
    "ChatType": "synthflow.models.llms",
    "CohereLLM": "synthflow.models.llms",
    "GeminiLLM": "synthflow.models.llms",
    "GenerateOutput": "synthflow.models.llms",
    "GroqLLM": "synthflow.models.llms",
    "InferenceEndpointsLLM": "synthflow.models.llms",
    "LiteLLM": "synthflow.models.llms",
    "LlamaCppLLM": "synthflow.models.llms",
    "LocalLLM": "synthflow.models.llms",
    "MistralLLM": "synthflow.models.llms",
    "OfflineLLM": "synthflow.models.llms",
    "OllamaLLM": "synthflow.models.llms",
    "OpenAILLM": "synthflow.models.llms",
    "TogetherLLM": "synthflow.models.llms",
    "TransformersLLM": "synthflow.models.llms",
    "Usage": "synthflow.models.llms",
    "VertexAILLM": "synthflow.models.llms",
    "vLLM": "synthflow.models.llms",
}

__getattr__, __dir__ = lazy_exports(__name__, _HOMES)

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
    "InferenceEndpointsEmbeddings",
    "InferenceEndpointsImageGeneration",
    "InferenceEndpointsLLM",
    "LiteLLM",
    "LlamaCppEmbeddings",
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
    "vLLMEmbeddings",
]
