"""ImageGeneration: an image per prompt from an image generation model (distilabel's task)."""

from __future__ import annotations

import base64
import hashlib
from pathlib import Path
from typing import Any

import anyio
from pydantic import Field, model_validator

from synthflow.errors import OutputParseError
from synthflow.models.image_generation.base import decode_image, image_format_of
from synthflow.models.llms.base import ChatType
from synthflow.steps.base import Row
from synthflow.steps.tasks.base import Task

_EXTENSIONS = {"jpeg": "jpeg", "jpg": "jpeg", "png": "png", "webp": "webp", "gif": "gif"}


class ImageTask(Task):
    """Base of tasks whose model makes images: distilabel's ``image_generation_model=`` is the
    task's ``llm`` (any ``ImageGenerationModel``), and a row's prompt is one user message."""

    @model_validator(mode="before")
    @classmethod
    def _image_generation_model_is_llm(cls, data: Any) -> Any:
        if isinstance(data, dict) and "image_generation_model" in data:
            data = dict(data)
            model = data.pop("image_generation_model")
            if data.get("llm") is not None:
                raise ValueError(
                    f"{cls.__name__} got image_generation_model= and llm=, one model: pass one"
                )
            data["llm"] = model
        return data

    @property
    def image_generation_model(self) -> Any:
        """distilabel's name of the task's model."""
        return self.llm


class ImageGeneration(ImageTask):
    """Generates an image for each ``prompt`` with an image generation model
    (``OpenAIImageGeneration``, ``InferenceEndpointsImageGeneration``), given as
    ``image_generation_model=`` (or ``llm=``).

    Input columns:
        - prompt (str): what the image shows.

    Output columns:
        - image (str): the image as a base64 string (turn it into a PIL image after the run with
          ``datasets``' ``Image`` feature, or save it with ``save_artifacts``).
        - image_path (str): where the image was saved, ``artifacts/<step>/images/<md5 of the
          prompt>.<format>`` (only with ``save_artifacts=True``).
        - model_name (str): the model that made it.

    With ``save_artifacts=True`` each image is also saved as a file among the run's artifacts
    (``distiset.artifacts``, carried by ``save_to_disk`` and ``push_to_hub``), in its own format,
    or converted to ``image_format`` when that is another one (needs Pillow). An answer that is
    not a base64 image (PNG, JPEG, GIF or WebP, or a ``data:image/...`` URL) fails its row.
    """

    save_artifacts: bool = Field(
        default=False, description="Also save each image as a file among the run's artifacts."
    )
    image_format: str = Field(
        default="JPEG",
        description="The format of saved images: JPEG, PNG, WEBP, GIF (an image in another "
        "format is converted, with Pillow).",
    )

    @property
    def inputs(self) -> list[str]:
        return ["prompt"]

    @property
    def outputs(self) -> list[str]:
        return (
            ["image", "image_path", "model_name"]
            if self.save_artifacts
            else ["image", "model_name"]
        )

    def format_input(self, row: Row) -> ChatType:
        return [{"role": "user", "content": str(row["prompt"])}]

    def format_output(self, output: str | None, row: Row) -> dict[str, Any]:
        if not output or decode_image(output) is None:
            shown = "nothing" if not output else repr(output[:40])
            raise OutputParseError(f"the model answered {shown}, not a base64 image")
        return {"image": output.split(",", 1)[1] if output.startswith("data:") else output}

    async def process_row(self, row: Row) -> list[Row]:
        rows = await super().process_row(row)
        if self.save_artifacts:
            for made in rows:
                image = made.get("image")
                made["image_path"] = (
                    await anyio.to_thread.run_sync(self._save, str(made["prompt"]), image)
                    if image
                    else None
                )
        return rows

    def _save(self, prompt: str, image: str) -> str | None:
        """Save ``image`` among the artifacts; its path relative to the run's data, or None
        outside a run (nothing is saved there)."""
        data = base64.b64decode(image)
        wanted = _EXTENSIONS.get(self.image_format.lower(), self.image_format.lower())
        actual = image_format_of(data) or wanted
        if actual != wanted:
            data = _convert(data, self.image_format)
        name = f"{hashlib.md5(prompt.encode()).hexdigest()}.{wanted}"

        def write(directory: Path) -> None:
            (directory / name).write_bytes(data)

        if self.artifacts_directory is None:
            return None
        self.save_artifact("images", write, metadata={"type": "image"})
        return f"artifacts/{self.name}/images/{name}"


def _convert(data: bytes, image_format: str) -> bytes:
    try:
        from PIL import Image
    except ImportError:
        raise OutputParseError(
            f"saving an image as {image_format} needs Pillow (pip install pillow), or set "
            "image_format to the format the model answers in"
        ) from None
    import io

    out = io.BytesIO()
    with Image.open(io.BytesIO(data)) as image:
        image.convert("RGB" if image_format.upper() in ("JPEG", "JPG") else image.mode).save(
            out, format=image_format.upper().replace("JPG", "JPEG")
        )
    return out.getvalue()
