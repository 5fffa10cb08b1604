"""Image generation models, as ``distilabel.models.image_generation``.

Each is an LLM whose generations are images (base64 strings), on the API clients' call path:
``OpenAIImageGeneration`` (``POST /images/generations``) and
``InferenceEndpointsImageGeneration`` (Hugging Face text-to-image). The ``ImageGeneration`` task
writes them to its ``image`` column.
"""

from synthflow.models.image_generation.base import AsyncImageGenerationModel, ImageGenerationModel
from synthflow.models.image_generation.huggingface import InferenceEndpointsImageGeneration
from synthflow.models.image_generation.openai import OpenAIImageGeneration

__all__ = [
    "AsyncImageGenerationModel",
    "ImageGenerationModel",
    "InferenceEndpointsImageGeneration",
    "OpenAIImageGeneration",
]
