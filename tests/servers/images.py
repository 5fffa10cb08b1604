"""Image generation routes on the test server: OpenAI's ``/v1/images/generations`` (base64 or
URLs served from ``/files/``) and Hugging Face text-to-image (the image's bytes)."""

from __future__ import annotations

import base64
import zlib
from typing import Any

from tests.servers import Handler, Reply, Request


def png(label: str) -> bytes:
    """A tiny PNG whose bytes depend on ``label`` (a 1x1 grey image, its level from the label)."""
    level = zlib.crc32(label.encode()) % 256

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return len(data).to_bytes(4, "big") + body + zlib.crc32(body).to_bytes(4, "big")

    header = (1).to_bytes(4, "big") * 2 + bytes([8, 0, 0, 0, 0])
    pixels = zlib.compress(bytes([0, level]))
    return (
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", pixels) + chunk(b"IEND", b"")
    )


def openai_images() -> Handler:
    """Answers ``n`` images of the prompt, as ``b64_json`` or, with ``response_format: url``, as
    URLs on this server."""

    def handler(request: Request) -> Reply:
        if request.path.startswith("/files/"):
            label = request.path.removeprefix("/files/").removesuffix(".png")
            return Reply(raw=png(label), headers={"content-type": "image/png"})
        if not request.path.endswith("/images/generations"):
            return Reply(status=404, body={"error": {"message": f"no route {request.path}"}})
        body: dict[str, Any] = request.json
        prompt, n = str(body["prompt"]), int(body.get("n", 1))
        host = request.headers.get("host", "")
        data = []
        for i in range(n):
            label = f"{prompt}-{i}".replace(" ", "_")
            if body.get("response_format") == "url":
                data.append({"url": f"http://{host}/files/{label}.png"})
            else:
                data.append({"b64_json": base64.b64encode(png(label)).decode()})
        return Reply(body={"created": 1, "data": data})

    return handler


def hf_text_to_image() -> Handler:
    """Answers the image's bytes for ``{"inputs": prompt, "parameters": {...}}``; the label holds
    the prompt and the seed, so each generation is another image."""

    def handler(request: Request) -> Reply:
        body: dict[str, Any] = request.json
        seed = (body.get("parameters") or {}).get("seed")
        return Reply(raw=png(f"{body['inputs']}-{seed}"), headers={"content-type": "image/png"})

    return handler
