"""InferenceEndpointsLLM against a real HTTP server on 127.0.0.1 speaking TGI's Messages API."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import BaseModel

from synthflow.errors import LLMError
from synthflow.models.llms.huggingface import InferenceEndpointsLLM
from synthflow.pipeline import Pipeline
from synthflow.steps import LoadDataFromDicts
from synthflow.steps.tasks import ERROR_COLUMN, ChatGeneration
from tests.helpers import generate, run_texts
from tests.servers import FakeAPI, Reply, Request, fake_api, sequence

MODEL = "meta-llama/Llama-3.1-8B-Instruct"


def tgi(request: Request, texts: list[str] | None = None) -> Reply:
    body = request.json
    assert "n" not in body, "TGI has no n"
    content = body["messages"][-1]["content"]
    prompt = content if isinstance(content, str) else content[0]["text"]
    text = (texts or [f"answer to {prompt}"])[0]
    return Reply(
        body={
            "object": "chat.completion",
            "id": "",
            "created": 1,
            "model": MODEL,
            "system_fingerprint": "3.0.1-sha-abc",
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": text},
                    "logprobs": {"content": [{"token": "a", "logprob": -0.1, "top_logprobs": []}]}
                    if body.get("logprobs")
                    else None,
                    "finish_reason": "stop",
                }
            ],
            "usage": {"prompt_tokens": 12, "completion_tokens": 4, "total_tokens": 16},
        }
    )


def endpoint(api: FakeAPI, **kwargs: Any) -> InferenceEndpointsLLM:
    return InferenceEndpointsLLM(base_url=api.url, api_key="hf_test", retry_backoff=0.01, **kwargs)


def test_dedicated_endpoint_request_and_response_on_the_wire() -> None:
    kwargs = {"temperature": 0.7, "max_new_tokens": 64, "seed": 3, "stop": ["</s>"]}
    with fake_api(tgi) as api:
        distiset = run_texts(endpoint(api, generation_kwargs=kwargs), ["hello", "world"])

    rows = list(distiset["default"]["train"])
    assert [r["generation"] for r in rows] == ["answer to hello", "answer to world"]
    assert rows[0]["model_name"] == api.url  # an endpoint without a model is named by its URL
    (request,) = [r for r in api.requests if r.json["messages"][0]["content"] == "hello"]
    assert request.path == "/v1/chat/completions"
    assert request.headers["authorization"] == "Bearer hf_test"
    assert "x-use-cache" not in request.headers
    assert request.json == {
        "model": "tgi",
        "messages": [{"role": "user", "content": "hello"}],
        "temperature": 0.7,
        "max_tokens": 64,
        "seed": 3,
        "stop": ["</s>"],
    }
    stats = distiset.stats["gen"].llm
    assert (stats.requests, stats.input_tokens, stats.output_tokens) == (2, 24, 8)


def test_serverless_url_names_the_model_and_skips_the_server_cache(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    with fake_api(tgi) as api:
        monkeypatch.setattr(InferenceEndpointsLLM, "default_base_url", api.url)
        monkeypatch.setenv("HF_TOKEN", "hf_env")
        client = InferenceEndpointsLLM(model=MODEL, retry_backoff=0.01)
        distiset = run_texts(client, ["q"])
    assert distiset["default"]["train"][0]["model_name"] == MODEL
    request = api.requests[0]
    assert request.path == f"/models/{MODEL}/v1/chat/completions"
    assert request.headers["authorization"] == "Bearer hf_env"
    assert request.headers["x-wait-for-model"] == "true"
    assert request.headers["x-use-cache"] == "false"
    assert request.json["model"] == MODEL


def test_endpoint_urls_with_v1_and_named_models() -> None:
    with fake_api(tgi) as api:
        client = InferenceEndpointsLLM(base_url=f"{api.url}/v1/", model="my-model", api_key="k")
        generate(client)
    assert api.requests[0].path == "/v1/chat/completions"
    assert api.requests[0].json["model"] == "my-model"


def test_num_generations_are_separate_requests() -> None:
    with fake_api(tgi) as api:
        distiset = run_texts(endpoint(api), ["q"], num_generations=3, group_generations=True)
    assert distiset["default"]["train"][0]["generation"] == ["answer to q"] * 3
    assert len(api.requests) == 3
    stats = distiset.stats["gen"].llm
    assert (stats.input_tokens, stats.output_tokens) == (36, 12)


def test_images_and_logprobs_pass_through() -> None:
    image = {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}}
    messages = [{"role": "user", "content": [{"type": "text", "text": "what is it?"}, image]}]
    with fake_api(lambda r: tgi(r, ["a cat"])) as api, Pipeline() as pipeline:
        load = LoadDataFromDicts(data=[{"messages": messages}])
        load >> ChatGeneration(
            name="chat", llm=endpoint(api, generation_kwargs={"logprobs": True, "top_logprobs": 2})
        )
        rows = list(pipeline.run(progress=False)["default"]["train"])
    assert rows[0]["generation"] == "a cat"
    assert api.requests[0].json["messages"] == messages
    assert api.requests[0].json["logprobs"] is True
    assert api.requests[0].json["top_logprobs"] == 2


class Verdict(BaseModel):
    score: int
    reason: str


def test_structured_output_is_a_tgi_json_grammar_and_a_bad_answer_is_reasked() -> None:
    handler = sequence(
        lambda r: tgi(r, ['{"score": "high"}']),
        lambda r: tgi(r, ['{"score": 4, "reason": "clear"}']),
    )
    with fake_api(handler) as api:
        out = generate(endpoint(api, structured_output=Verdict), "rate")
    assert out.generations == ['{"score": 4, "reason": "clear"}']
    first, second = api.requests
    assert first.json["response_format"] == {
        "type": "json",
        "value": Verdict.model_json_schema(),
    }
    assert "not valid JSON for the required schema" in second.json["messages"][-1]["content"]


@pytest.mark.parametrize(
    "fault",
    [
        Reply(429, {"error": "Model is overloaded"}, headers={"retry-after": "0.05"}),
        Reply(500, {"error": "boom", "error_type": "generation"}),
        Reply(503, {"error": "Model is currently loading", "estimated_time": 0.01}),
    ],
    ids=["429-retry-after", "500", "503-loading"],
)
def test_transient_faults_are_retried_and_the_row_succeeds(fault: Reply) -> None:
    with fake_api(sequence(fault, tgi)) as api:
        distiset = run_texts(endpoint(api), ["q"])
    assert distiset["default"]["train"][0]["generation"] == "answer to q"
    stats = distiset.stats["gen"].llm
    assert stats.retries == 1
    assert stats.rate_limited == (1 if fault.status == 429 else 0)
    assert len(api.requests) == 2


def test_client_errors_are_not_retried_and_never_show_the_token() -> None:
    error = {"error": "Input validation error: `max_new_tokens` must be > 0", "error_type": "x"}
    with fake_api(lambda r: Reply(400, error)) as api:
        distiset = run_texts(endpoint(api), ["q"])
    row = distiset["default"]["train"][0]
    assert "answered 400" in row[ERROR_COLUMN] and "Input validation" in row[ERROR_COLUMN]
    assert "hf_test" not in row[ERROR_COLUMN]
    assert len(api.requests) == 1


def test_token_env_fallbacks_and_clear_errors(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("HF_TOKEN", raising=False)
    monkeypatch.setenv("HUGGING_FACE_HUB_TOKEN", "hub")
    assert InferenceEndpointsLLM(model=MODEL).resolved_api_key() == "hub"
    monkeypatch.setenv("HF_TOKEN", "hf")
    assert InferenceEndpointsLLM(model=MODEL).resolved_api_key() == "hf"
    client = InferenceEndpointsLLM(model=MODEL, api_key="hf_secret")
    assert "hf_secret" not in repr(client) and "hf_secret" not in client.model_dump_json()

    monkeypatch.delenv("HF_TOKEN")
    monkeypatch.delenv("HUGGING_FACE_HUB_TOKEN")
    with pytest.raises(LLMError, match=r"needs an API key.*HF_TOKEN"):
        InferenceEndpointsLLM(model=MODEL).load()
    InferenceEndpointsLLM(base_url="http://127.0.0.1:1").load()  # an endpoint may be public
    with pytest.raises(ValueError, match=r"needs model_id=\.\.\. .* or base_url=\.\.\."):
        InferenceEndpointsLLM()
