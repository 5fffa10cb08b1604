"""TextGenerationWithImage: TextGeneration with an image sent alongside the prompt."""

from __future__ import annotations

import base64
import binascii
import io
from typing import Any, Literal

from pydantic import Field

from synthflow.steps.base import Row
from synthflow.steps.tasks.text_generation import TextGeneration
from synthflow.steps.tasks.typing import ChatType

ImageType = Literal["url", "base64", "PIL"]

# The first bytes of the image formats vision APIs take, to label a base64 image's data URL.
_SIGNATURES: tuple[tuple[bytes, str], ...] = (
    (b"\x89PNG\r\n\x1a\n", "image/png"),
    (b"\xff\xd8\xff", "image/jpeg"),
    (b"GIF87a", "image/gif"),
    (b"GIF89a", "image/gif"),
    (b"RIFF", "image/webp"),
)


class TextGenerationWithImage(TextGeneration):
    """Answers a prompt about an image: the prompt (the ``instruction`` column, or ``template``
    rendered with ``columns``, as in ``TextGeneration``) and the row's ``image`` go in one user
    message as OpenAI content parts (``text`` and ``image_url``), which synthflow's clients
    convert for their APIs (OpenAI and compatible servers, Anthropic, Gemini, Ollama, Cohere,
    Inference Endpoints). The model must take images.

    ``image_type`` says what the ``image`` column holds:
        - ``"url"`` (default): an ``http(s)://`` URL or a ``data:`` URL, sent as it is.
        - ``"base64"``: base64-encoded image bytes, sent as a ``data:`` URL whose media type is
          read from the bytes (PNG, JPEG, GIF, WebP; JPEG when unknown). A ``data:`` URL is sent
          as it is.
        - ``"PIL"``: a ``PIL.Image.Image``, encoded in its own format (PNG when it has none).
        Raw ``bytes`` are taken with any of them.

    Input columns:
        - ``columns`` (default ``instruction``): the prompt's columns.
        - image (str | PIL.Image.Image | bytes): the image, as ``image_type`` says.

    Output columns:
        - generation (str): the model's answer.
        - model_name (str): the model that wrote it.

    A row whose image doesn't match ``image_type`` fails alone (null outputs, the reason in
    ``synthflow_error``). The answer is kept as the model wrote it.
    """

    image_type: ImageType = Field(
        default="url",
        description="What the 'image' column holds: 'url' (http(s) or data: URL), 'base64' "
        "(encoded bytes) or 'PIL' (a PIL image).",
    )

    @property
    def inputs(self) -> list[str]:
        return [*self.columns, "image"]

    def format_input(self, row: Row) -> ChatType:
        messages = super().format_input(row)
        prompt = messages[-1]["content"]
        messages[-1] = {
            "role": "user",
            "content": [
                {"type": "text", "text": prompt},
                {
                    "type": "image_url",
                    "image_url": {"url": image_url(row["image"], self.image_type)},
                },
            ],
        }
        return messages


def image_url(image: Any, image_type: ImageType) -> str:
    """The URL to send for an image held as ``image_type`` says (see TextGenerationWithImage)."""
    if isinstance(image, bytes | bytearray):
        return _data_url(bytes(image))
    if image_type == "PIL":
        save = getattr(image, "save", None)
        if save is None:
            raise TypeError(
                f"image_type='PIL' needs a PIL image in 'image', got {type(image).__name__}; "
                "set image_type to 'url' or 'base64' for text"
            )
        buffer = io.BytesIO()
        save(buffer, format=getattr(image, "format", None) or "PNG")
        return _data_url(buffer.getvalue())
    if not isinstance(image, str) or not image.strip():
        raise TypeError(
            f"image_type={image_type!r} needs a string in 'image', got {type(image).__name__}; "
            "use image_type='PIL' for PIL images"
        )
    text: str = image.strip()
    if image_type == "url" or text.startswith("data:"):
        if not text.startswith(("http://", "https://", "data:")):
            raise ValueError(
                f"'image' is not an http(s) or data: URL ({text[:40]!r}); set "
                "image_type='base64' for base64-encoded images"
            )
        return text
    try:
        head = base64.b64decode(text[:64] + "=" * (-len(text[:64]) % 4), validate=False)
    except (binascii.Error, ValueError):
        head = b""
    return f"data:{_media_type(head)};base64,{text}"


def _data_url(data: bytes) -> str:
    return f"data:{_media_type(data)};base64,{base64.b64encode(data).decode('ascii')}"


def _media_type(head: bytes) -> str:
    for signature, media_type in _SIGNATURES:
        if head.startswith(signature):
            return media_type
    return "image/jpeg"
