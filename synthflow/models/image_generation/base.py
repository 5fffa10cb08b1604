"""ImageGenerationModel: the base of image generation clients (distilabel's name).

An image model is an LLM whose generations are images: the prompt is the text of the last
message, and each generation is one image as a base64 string. So image calls take the same call
path as text (the endpoint's limiter, retries, the response cache, accounting), and the
``ImageGeneration`` task reads them like any answer.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Sequence
from typing import Any

from synthflow.models.llms.api import APILLM
from synthflow.models.llms.base import ChatType

IMAGE_SIGNATURES: dict[bytes, str] = {
    b"\x89PNG\r\n\x1a\n": "png",
    b"\xff\xd8\xff": "jpeg",
    b"GIF87a": "gif",
    b"GIF89a": "gif",
    b"RIFF": "webp",  # RIFF....WEBP; checked further in image_format_of
}
"""The first bytes of the image formats image APIs answer with."""


def image_format_of(data: bytes) -> str | None:
    """'png', 'jpeg', 'gif' or 'webp' by the file's first bytes; None when it isn't one."""
    for signature, name in IMAGE_SIGNATURES.items():
        if data.startswith(signature):
            if name == "webp" and data[8:12] != b"WEBP":
                return None
            return name
    return None


def decode_image(text: str) -> bytes | None:
    """The image a base64 string holds (a ``data:image/...;base64,`` URL too), or None when it
    isn't base64 of an image."""
    if text.startswith("data:image/") and "," in text:
        text = text.split(",", 1)[1]
    try:
        data = base64.b64decode(text.strip(), validate=True)
    except (binascii.Error, ValueError):
        return None
    return data if image_format_of(data) else None


def prompt_text(messages: ChatType) -> str:
    """The prompt of an image request: the text of the last message."""
    if not messages:
        return ""
    content = messages[-1].get("content")
    if isinstance(content, list):
        return "".join(str(p.get("text", "")) for p in content if isinstance(p, dict))
    return "" if content is None else str(content)


class ImageGenerationModel(APILLM):
    """Base class of image generation clients: ``generate(["a white cat"])`` returns
    distilabel's shape, ``[{"images": ["<base64>", ...]}]``, one entry per prompt.

    Subclasses implement the request (``build_request``, with ``prompt_text(messages)`` as the
    prompt) and read each image as a base64 string into ``GenerateOutput.generations``.
    """

    def generate(
        self, inputs: Sequence[str | ChatType], num_generations: int = 1, **kwargs: Any
    ) -> list[dict[str, Any]]:
        conversations: list[ChatType] = [
            [{"role": "user", "content": prompt}] if isinstance(prompt, str) else prompt
            for prompt in inputs
        ]
        outputs = super().generate(conversations, num_generations, **kwargs)
        return [{"images": output["generations"]} for output in outputs]


AsyncImageGenerationModel = ImageGenerationModel
"""distilabel's base of async image models; every synthflow model is async."""
