"""OllamaLLM against a real HTTP server on 127.0.0.1 speaking Ollama's native /api/chat."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import BaseModel

from synthflow.errors import LLMError, StepError
from synthflow.models.llms.ollama import OllamaLLM
from synthflow.pipeline import Pipeline
from synthflow.steps import LoadDataFromDicts
from synthflow.steps.tasks import ERROR_COLUMN, ChatGeneration
from tests.helpers import generate, run_texts
from tests.servers import FakeAPI, Reply, Request, fake_api, sequence


def chat(request: Request, texts: list[str] | None = None) -> Reply:
    body = request.json
    assert body["stream"] is False
    prompt = body["messages"][-1]["content"]
    text = (texts or [f"answer to {prompt}"])[0]
    logprobs = [{"token": "a", "logprob": -0.1, "top_logprobs": []}]
    return Reply(
        body={
            "model": body["model"],
            "created_at": "2025-01-01T00:00:00Z",
            "message": {"role": "assistant", "content": text},
            "done": True,
            "done_reason": "stop",
            "total_duration": 1000,
            "prompt_eval_count": 9,
            "eval_count": 6,
            **({"logprobs": logprobs} if body.get("logprobs") else {}),
        }
    )


def llm(api: FakeAPI, **kwargs: Any) -> OllamaLLM:
    return OllamaLLM(model="llama3.2", base_url=api.url, retry_backoff=0.01, **kwargs)


def test_chat_request_and_response_on_the_wire() -> None:
    kwargs = {
        "temperature": 0.7,
        "top_p": 0.9,
        "top_k": 40,
        "max_new_tokens": 64,
        "stop": "END",
        "seed": 3,
        "presence_penalty": None,  # left out
        "num_ctx": 8192,
        "keep_alive": "10m",
    }
    with fake_api(chat) as api:
        distiset = run_texts(
            llm(api, generation_kwargs=kwargs), ["hello", "world"], system_prompt="Be brief."
        )

    rows = list(distiset["default"]["train"])
    assert [r["generation"] for r in rows] == ["answer to hello", "answer to world"]
    assert rows[0]["model_name"] == "llama3.2"
    (request,) = [r for r in api.requests if r.json["messages"][-1]["content"] == "hello"]
    assert request.path == "/api/chat"
    assert "authorization" not in request.headers
    assert request.json == {
        "model": "llama3.2",
        "messages": [
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "hello"},
        ],
        "stream": False,
        "keep_alive": "10m",
        "options": {
            "temperature": 0.7,
            "top_p": 0.9,
            "top_k": 40,
            "num_predict": 64,
            "stop": ["END"],
            "seed": 3,
            "num_ctx": 8192,
        },
    }
    stats = distiset.stats["gen"].llm
    assert (stats.requests, stats.input_tokens, stats.output_tokens) == (2, 18, 12)
    assert stats.cost is None  # a local model costs nothing


def test_num_generations_are_separate_requests() -> None:
    with fake_api(chat) as api:
        distiset = run_texts(llm(api), ["q"], num_generations=3, group_generations=True)
    assert distiset["default"]["train"][0]["generation"] == ["answer to q"] * 3
    assert len(api.requests) == 3 and all("n" not in r.json for r in api.requests)
    assert distiset.stats["gen"].llm.output_tokens == 18


def test_images_become_base64_strings_and_logprobs_come_back() -> None:
    image = {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}}
    messages = [{"role": "user", "content": [{"type": "text", "text": "what is it?"}, image]}]
    with fake_api(lambda r: chat(r, ["a cat"])) as api, Pipeline() as pipeline:
        load = LoadDataFromDicts(data=[{"messages": messages}])
        load >> ChatGeneration(name="chat", llm=llm(api, generation_kwargs={"logprobs": True}))
        rows = list(pipeline.run(progress=False)["default"]["train"])
    assert rows[0]["generation"] == "a cat"
    body = api.requests[0].json
    assert body["messages"] == [{"role": "user", "content": "what is it?", "images": ["AAAA"]}]
    assert body["logprobs"] is True and "options" not in body

    with fake_api(chat) as api:
        out = generate(llm(api, generation_kwargs={"logprobs": True}))
    assert out.logprobs == [[{"token": "a", "logprob": -0.1, "top_logprobs": []}]]


def test_an_image_url_that_is_not_data_is_a_clear_error() -> None:
    image = {"type": "image_url", "image_url": {"url": "https://example.com/cat.png"}}
    with fake_api(chat) as api, pytest.raises(LLMError, match="base64 data URLs"):
        generate(llm(api), [image])
    assert api.requests == []


class Verdict(BaseModel):
    score: int
    reason: str


def test_structured_output_is_the_native_format_and_a_bad_answer_is_reasked() -> None:
    handler = sequence(
        lambda r: chat(r, ['{"score": "high"}']),
        lambda r: chat(r, ['{"score": 4, "reason": "clear"}']),
    )
    with fake_api(handler) as api:
        out = generate(llm(api, structured_output=Verdict), "rate")
    assert out.generations == ['{"score": 4, "reason": "clear"}']
    first, second = api.requests
    assert first.json["format"] == Verdict.model_json_schema()
    assert "not valid JSON for the required schema" in second.json["messages"][-1]["content"]


def test_ollama_host_is_read_like_the_ollama_cli(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OLLAMA_HOST", raising=False)
    assert OllamaLLM(model="m").endpoint == "http://localhost:11434"
    monkeypatch.setenv("OLLAMA_HOST", "gpu-box")
    assert OllamaLLM(model="m").endpoint == "http://gpu-box:11434"
    monkeypatch.setenv("OLLAMA_HOST", "https://ollama.example.com/")
    assert OllamaLLM(model="m").endpoint == "https://ollama.example.com"
    assert OllamaLLM(model="m", base_url="[::1]").endpoint == "http://[::1]:11434"

    with fake_api(chat) as api:
        monkeypatch.setenv("OLLAMA_HOST", f"127.0.0.1:{api.port}")
        client = OllamaLLM(model="llama3.2", retry_backoff=0.01)
        client.load()  # no key needed
        assert generate(client).generations == ["answer to q"]
    assert len(api.requests) == 1


def test_latency_adaptive_is_on_by_default() -> None:
    client = OllamaLLM(model="m", base_url="http://127.0.0.1:1")
    assert client.latency_adaptive is True
    assert client.limiter().concurrency_limit == 4  # starts small, grows while latency is flat
    assert OllamaLLM(model="m", latency_adaptive=False).latency_adaptive is False


@pytest.mark.parametrize(
    "fault",
    [
        Reply(429, {"error": "too many requests"}, headers={"retry-after": "0.05"}),
        Reply(500, {"error": "llama runner process has terminated"}),
        Reply(503, {"error": "server busy, please try again.  maximum pending requests exceeded"}),
    ],
    ids=["429-retry-after", "500", "503-busy"],
)
def test_transient_faults_are_retried_and_the_row_succeeds(fault: Reply) -> None:
    with fake_api(sequence(fault, chat)) as api:
        distiset = run_texts(llm(api), ["q"])
    assert distiset["default"]["train"][0]["generation"] == "answer to q"
    stats = distiset.stats["gen"].llm
    assert stats.retries == 1
    assert stats.rate_limited == (1 if fault.status == 429 else 0)
    assert len(api.requests) == 2


def test_client_errors_are_not_retried() -> None:
    error = {"error": "model 'llama9' not found, try pulling it first"}
    # A missing model fails every row alike: the run stops with the server's hint.
    with (
        fake_api(lambda r: Reply(404, error)) as api,
        pytest.raises(StepError, match=r"answered 404: .*try pulling it first"),
    ):
        run_texts(llm(api), ["q"])
    assert len(api.requests) == 1

    with fake_api(lambda r: Reply(400, {"error": "invalid format"})) as api:
        distiset = run_texts(llm(api), ["q"])
    assert "answered 400" in distiset["default"]["train"][0][ERROR_COLUMN]
    assert len(api.requests) == 1


def test_an_answer_without_content_fails_and_a_cut_off_one_is_not_retried() -> None:
    cut_off = {"message": {"role": "assistant", "content": None}, "done_reason": "length"}
    with fake_api(lambda r: Reply(body=cut_off)) as api:
        distiset = run_texts(llm(api), ["q"])
    row = distiset["default"]["train"][0]
    assert row["generation"] is None
    assert (
        "cut off before any text (done_reason 'length'): raise max_new_tokens"
        in (row[ERROR_COLUMN])
    )
    assert len(api.requests) == 1
