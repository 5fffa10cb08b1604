"""The API-root environment variables distilabel's clients read (``GROQ_BASE_URL``,
``TOGETHER_BASE_URL``, ``ANYSCALE_BASE_URL``, and huggingface_hub's ``HF_INFERENCE_ENDPOINT``
for the serverless API): a pipeline written without ``base_url`` goes where they point."""

from __future__ import annotations

from typing import Any

import pytest

from synthflow.models import InferenceEndpointsLLM
from synthflow.models.llms import AnyscaleLLM, GroqLLM, TogetherLLM
from synthflow.pipeline import Pipeline
from synthflow.steps import LoadDataFromDicts
from synthflow.steps.tasks import TextGeneration
from tests.servers import fake_api
from tests.servers.chat import answer_text, completion


def generate(llm: Any) -> list[dict[str, Any]]:
    with Pipeline(name="env-roots") as pipeline:
        load = LoadDataFromDicts(data=[{"instruction": "Name a prime number."}])
        load >> TextGeneration(llm=llm)
    distiset = pipeline.run(use_cache=False)
    return list(distiset["default"]["train"])


@pytest.mark.parametrize(
    ("make", "env", "root", "key_env", "path"),
    [
        (
            lambda: GroqLLM(model="llama3-70b-8192"),
            "GROQ_BASE_URL",
            "",
            "GROQ_API_KEY",
            "/openai/v1/chat/completions",
        ),
        (
            lambda: TogetherLLM(model="m"),
            "TOGETHER_BASE_URL",
            "/v1",
            "TOGETHER_API_KEY",
            "/v1/chat/completions",
        ),
        (
            lambda: AnyscaleLLM(model="m"),
            "ANYSCALE_BASE_URL",
            "/v1",
            "ANYSCALE_API_KEY",
            "/v1/chat/completions",
        ),
        (
            lambda: InferenceEndpointsLLM(model_id="meta-llama/Meta-Llama-3.1-8B-Instruct"),
            "HF_INFERENCE_ENDPOINT",
            "",
            "HF_TOKEN",
            "/models/meta-llama/Meta-Llama-3.1-8B-Instruct/v1/chat/completions",
        ),
    ],
)
def test_a_provider_without_base_url_goes_where_its_variable_points(
    monkeypatch: pytest.MonkeyPatch, make: Any, env: str, root: str, key_env: str, path: str
) -> None:
    with fake_api(completion) as api:
        monkeypatch.setenv(env, api.url + root)
        monkeypatch.setenv(key_env, "test-key")
        rows = generate(make())
    assert api.paths() == [path]
    assert rows[0]["generation"] == answer_text("Name a prime number.", 0)


def test_groq_base_url_may_name_the_openai_path_itself(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GROQ_BASE_URL", "http://127.0.0.1:1/openai/v1/")
    assert GroqLLM(model="m").endpoint == "http://127.0.0.1:1/openai/v1"
    monkeypatch.delenv("GROQ_BASE_URL")
    assert GroqLLM(model="m").endpoint == "https://api.groq.com/openai/v1"
