"""ImageGeneration with OpenAIImageGeneration and InferenceEndpointsImageGeneration against
loopback servers that speak the real routes."""

from __future__ import annotations

import base64
from pathlib import Path

import pytest

from synthflow.errors import OutputParseError
from synthflow.models.image_generation import (
    ImageGenerationModel,
    InferenceEndpointsImageGeneration,
    OpenAIImageGeneration,
)
from synthflow.pipeline import Pipeline
from synthflow.steps import LoadDataFromDicts
from synthflow.steps.tasks import ERROR_COLUMN, ImageGeneration
from synthflow.testing import OfflineLLM
from tests.servers import Reply, fake_api
from tests.servers.images import hf_text_to_image, openai_images, png


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


# -- reading answers ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("answer", "image"),
    [
        (b64(png("cat")), b64(png("cat"))),
        (f"data:image/png;base64,{b64(png('cat'))}", b64(png("cat"))),
        (b64(b"\xff\xd8\xff\xe0 a jpeg"), b64(b"\xff\xd8\xff\xe0 a jpeg")),
        (b64(b"RIFF\x00\x00\x00\x00WEBPVP8 "), b64(b"RIFF\x00\x00\x00\x00WEBPVP8 ")),
    ],
)
def test_an_image_answer_is_kept_as_base64(answer: str, image: str) -> None:
    task = ImageGeneration(llm=OfflineLLM())
    assert task.format_output(answer, {"prompt": "a cat"}) == {"image": image}


@pytest.mark.parametrize(
    "answer",
    [None, "", "A picture of a cat.", b64(b"just some text"), "not base64 at all!", "RIFFxxxx"],
)
def test_an_answer_that_is_not_an_image_fails(answer: str | None) -> None:
    with pytest.raises(OutputParseError, match="not a base64 image"):
        ImageGeneration(llm=OfflineLLM()).format_output(answer, {"prompt": "a cat"})


def test_distilabel_names() -> None:
    model = InferenceEndpointsImageGeneration(model_id="black-forest-labs/FLUX.1-schnell")
    task = ImageGeneration(image_generation_model=model)
    assert task.llm is model and task.image_generation_model is model
    assert task.inputs == ["prompt"] and task.outputs == ["image", "model_name"]
    assert ImageGeneration(llm=model, save_artifacts=True).outputs == [
        "image",
        "image_path",
        "model_name",
    ]
    assert isinstance(model, ImageGenerationModel)


# -- OpenAI ---------------------------------------------------------------------------------


def test_openai_images_in_a_pipeline(transport: str) -> None:
    with fake_api(openai_images()) as api:
        model = OpenAIImageGeneration(
            model="dall-e-2",
            base_url=f"{api.url}/v1",
            api_key="sk-test",
            generation_kwargs={"size": "256x256", "response_format": "b64_json"},
        )
        with Pipeline(name="images") as pipeline:
            load = LoadDataFromDicts(data=[{"prompt": "a cat"}, {"prompt": "a dog"}])
            load >> ImageGeneration(name="draw", image_generation_model=model, num_generations=2)
        rows = list(pipeline.run(progress=False)["default"]["train"])
    assert len(api.requests) == 2
    body = api.requests[0].json
    assert body["n"] == 2 and body["size"] == "256x256" and body["model"] == "dall-e-2"
    assert api.requests[0].headers["authorization"] == "Bearer sk-test"
    images = {(r["prompt"], r["image"]) for r in rows}
    assert images == {
        (p, b64(png(f"{p}-{i}".replace(" ", "_")))) for p in ("a cat", "a dog") for i in (0, 1)
    }
    assert {r["model_name"] for r in rows} == {"dall-e-2"}


def test_openai_image_urls_are_downloaded() -> None:
    with fake_api(openai_images()) as api:
        model = OpenAIImageGeneration(
            model="dall-e-2", base_url=f"{api.url}/v1", generation_kwargs={"response_format": "url"}
        )
        model.load()
        [output] = model.generate(["a white cat"], num_generations=2)
    assert output == {"images": [b64(png("a_white_cat-0")), b64(png("a_white_cat-1"))]}
    assert [r.path for r in api.requests].count("/files/a_white_cat-1.png") == 1


def test_dall_e_3_makes_one_image_per_request() -> None:
    with fake_api(openai_images()) as api:
        model = OpenAIImageGeneration(model="dall-e-3", base_url=f"{api.url}/v1")
        model.load()
        [output] = model.generate(["a cat"], num_generations=2)
    assert len(output["images"]) == 2
    assert [r.json.get("n", 1) for r in api.requests] == [1, 1]


# -- Hugging Face ---------------------------------------------------------------------------


def test_hf_text_to_image_in_a_pipeline_with_saved_artifacts(tmp_path: Path) -> None:
    with fake_api(hf_text_to_image()) as api:
        model = InferenceEndpointsImageGeneration(
            base_url=api.url, generation_kwargs={"num_inference_steps": 4, "seed": 7}
        )
        with Pipeline(name="hf-images") as pipeline:
            load = LoadDataFromDicts(data=[{"prompt": "a cat"}])
            load >> ImageGeneration(
                name="draw",
                image_generation_model=model,
                num_generations=2,
                save_artifacts=True,
                image_format="PNG",
            )
        distiset = pipeline.run(progress=False)
    rows = list(distiset["default"]["train"])
    # One image per request: the second generation asks with seed + 1.
    assert sorted(api.requests, key=lambda r: r.json["parameters"]["seed"]) and [
        r.json for r in sorted(api.requests, key=lambda r: r.json["parameters"]["seed"])
    ] == [{"inputs": "a cat", "parameters": {"num_inference_steps": 4, "seed": s}} for s in (7, 8)]
    assert {r.path for r in api.requests} == {"/"}
    assert sorted(r["image"] for r in rows) == sorted(b64(png(f"a cat-{s}")) for s in (7, 8))
    path = rows[0]["image_path"]
    assert path.startswith("artifacts/draw/images/") and path.endswith(".png")
    [artifact] = distiset.artifacts["draw"]
    saved = Path(artifact["path"]) / Path(path).name
    assert saved.read_bytes() in {png(f"a cat-{s}") for s in (7, 8)}


def test_a_json_answer_from_a_text_to_image_server_fails_the_row() -> None:
    with fake_api(lambda request: Reply(body={"error": "model is loading"})) as api:
        model = InferenceEndpointsImageGeneration(base_url=api.url, max_retries=0)
        task = ImageGeneration(image_generation_model=model)
        task.load()
        [row] = next(task.process([{"prompt": "a cat"}]))
    assert row["image"] is None
    assert "not an image" in row[ERROR_COLUMN]


# -- images in the Distiset ------------------------------------------------------------------


def test_transform_columns_to_image_as_in_distilabels_example(tmp_path: Path) -> None:
    # distilabel's examples/image_generation.py: generate, keep columns, then
    # distiset.transform_columns_to_image("image") before pushing.
    from datasets import Image

    with fake_api(openai_images()) as api:
        model = OpenAIImageGeneration(model="dall-e-2", base_url=f"{api.url}/v1", api_key="k")
        with Pipeline(name="pictures") as pipeline:
            load = LoadDataFromDicts(data=[{"persona": "a baker"}, {"persona": "a pilot"}])
            draw = ImageGeneration(
                name="flux", llm=model, input_mappings={"prompt": "persona"}, on_error="null"
            )
            load >> draw
        distiset = pipeline.run(progress=False).train_test_split(0.5, seed=0)
    assert distiset.transform_columns_to_image(["image", "no_such_column"]) is distiset

    saved = tmp_path / "out"
    distiset.save_to_disk(saved)
    for ds in (distiset, type(distiset).load_from_disk(saved)):
        for split in ("train", "test"):
            part = ds["default"][split]
            assert part.features["image"] == Image()
            raw = part.cast_column("image", Image(decode=False))  # no Pillow here to decode
            [row] = list(raw)
            assert row["image"]["bytes"] == png(row["persona"].replace(" ", "_") + "-0")


def test_transform_columns_to_image_refuses_text_that_is_no_image() -> None:
    from datasets import Dataset

    from synthflow.distiset import Distiset
    from synthflow.errors import DistisetError

    distiset = Distiset({"default": Dataset.from_list([{"image": None}, {"image": "a cat"}])})
    with pytest.raises(DistisetError) as info:
        distiset.transform_columns_to_image("image")
    assert str(info.value) == (
        "default/train row 1: column 'image' doesn't hold a base64 image; "
        "transform_columns_to_image takes the columns image generation tasks write"
    )
