"""TextGenerationWithImage: the prompt and the row's image as OpenAI content parts."""

from __future__ import annotations

import base64
import io
from typing import Any

import pytest

from synthflow.llms import OpenAILLM
from synthflow.pipeline import Pipeline
from synthflow.serialization import to_text
from synthflow.steps import LoadDataFromDicts
from synthflow.steps.tasks import ERROR_COLUMN, TextGenerationWithImage
from synthflow.testing import FunctionLLM, OfflineLLM
from tests.servers import Reply, Request, fake_api

PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 24
PNG_B64 = base64.b64encode(PNG).decode()
URL = "https://example.com/cat.jpg"


class FakeImage:
    """Quacks like a PIL image: ``save(buffer, format=...)`` and ``format``."""

    format = "PNG"

    def save(self, buffer: io.BytesIO, format: str) -> None:
        assert format == "PNG"
        buffer.write(PNG)


def parts(text: str, url: str) -> list[dict[str, Any]]:
    return [
        {"type": "text", "text": text},
        {"type": "image_url", "image_url": {"url": url}},
    ]


def test_prompt_with_an_image_url() -> None:
    task = TextGenerationWithImage(llm=OfflineLLM(), system_prompt="Describe images.")
    assert task.inputs == ["instruction", "image"]
    assert task.outputs == ["generation", "model_name"]
    assert task.format_input({"instruction": "What's in it?", "image": URL}) == [
        {"role": "system", "content": "Describe images."},
        {"role": "user", "content": parts("What's in it?", URL)},
    ]


def test_prompt_from_a_template() -> None:
    task = TextGenerationWithImage(
        llm=OfflineLLM(), template="Count the {{ thing }}s.", columns=["thing"]
    )
    assert task.inputs == ["thing", "image"]
    messages = task.format_input({"thing": "cat", "image": URL})
    assert messages == [{"role": "user", "content": parts("Count the cats.", URL)}]


@pytest.mark.parametrize(
    ("image_type", "image", "url"),
    [
        ("base64", PNG_B64, f"data:image/png;base64,{PNG_B64}"),
        ("base64", "/9j/4AAQSkZJRg==", "data:image/jpeg;base64,/9j/4AAQSkZJRg=="),
        ("base64", f"data:image/png;base64,{PNG_B64}", f"data:image/png;base64,{PNG_B64}"),
        ("PIL", FakeImage(), f"data:image/png;base64,{PNG_B64}"),
        ("url", PNG, f"data:image/png;base64,{PNG_B64}"),
        ("url", f"  {URL}\n", URL),
    ],
)
def test_images_become_urls(image_type: Any, image: Any, url: str) -> None:
    task = TextGenerationWithImage(llm=OfflineLLM(), image_type=image_type)
    (message,) = task.format_input({"instruction": "Describe it.", "image": image})
    assert message["content"] == parts("Describe it.", url)


@pytest.mark.parametrize(
    ("image_type", "image", "error"),
    [
        ("url", "cat.jpg", "not an http"),
        ("url", None, "needs a string"),
        ("PIL", URL, "needs a PIL image"),
        ("base64", 42, "needs a string"),
    ],
)
def test_an_image_of_the_wrong_kind_says_how_to_fix_it(
    image_type: Any, image: Any, error: str
) -> None:
    task = TextGenerationWithImage(llm=OfflineLLM(), image_type=image_type)
    with pytest.raises((TypeError, ValueError), match=error):
        task.format_input({"instruction": "Describe it.", "image": image})


def test_a_pipeline_run_sends_the_parts_and_fails_bad_rows_alone() -> None:
    seen: list[Any] = []

    def vision(messages: Any) -> str:
        seen.append(messages[-1]["content"])
        return "A cat on a mat."

    with Pipeline(name="vision") as pipeline:
        data = LoadDataFromDicts(
            data=[
                {"instruction": "What's in it?", "image": URL},
                {"instruction": "What's in it?", "image": "not-a-url"},
            ]
        )
        data >> TextGenerationWithImage(name="describe", llm=FunctionLLM(fn=vision))
    rows = [dict(row) for row in pipeline.run(use_cache=False, progress=False)["default"]["train"]]
    assert rows[0]["generation"] == "A cat on a mat." and rows[0]["model_name"] == "function-llm"
    assert rows[1]["generation"] is None and "not an http" in rows[1][ERROR_COLUMN]
    assert seen == [parts("What's in it?", URL)]


def test_openai_receives_image_url_parts_on_the_wire() -> None:
    bodies: list[Any] = []

    def handler(request: Request) -> Reply:
        bodies.append(request.json)
        return Reply(
            body={
                "id": "c",
                "object": "chat.completion",
                "model": "gpt-4o-mini",
                "choices": [
                    {
                        "index": 0,
                        "message": {"role": "assistant", "content": "A cat."},
                        "finish_reason": "stop",
                    }
                ],
                "usage": {"prompt_tokens": 10, "completion_tokens": 2, "total_tokens": 12},
            }
        )

    with fake_api(handler) as api:
        llm = OpenAILLM(model="gpt-4o-mini", base_url=f"{api.url}/v1", api_key="sk-test")
        task = TextGenerationWithImage(llm=llm, image_type="base64")
        task.load()
        (rows,) = list(task.process([{"instruction": "What's in it?", "image": PNG_B64}]))
    assert rows[0]["generation"] == "A cat."
    assert bodies[0]["messages"] == [
        {"role": "user", "content": parts("What's in it?", f"data:image/png;base64,{PNG_B64}")}
    ]


def test_round_trips_through_yaml_with_the_same_signature() -> None:
    with Pipeline(name="vision-yaml") as pipeline:
        TextGenerationWithImage(
            name="describe",
            llm=OfflineLLM(),
            image_type="base64",
            template="Describe {{ subject }}.",
            columns="subject",
        )
    loaded = Pipeline.from_yaml(to_text(pipeline.dump(), "yaml"))
    assert loaded.signature == pipeline.signature
    task = loaded.steps["describe"]
    assert isinstance(task, TextGenerationWithImage) and task.image_type == "base64"
    assert task.inputs == ["subject", "image"]
