"""Image generation models (``distilabel.models.image_generation``'s home under synthflow).

Empty for now: the image generation clients (``ImageGenerationModel``,
``OpenAIImageGeneration``, ``InferenceEndpointsImageGeneration``) arrive with the image issue.
"""

__all__: list[str] = []
