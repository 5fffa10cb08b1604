"""GeminiLLM and VertexAILLM against a real HTTP server on 127.0.0.1 speaking generateContent."""

from __future__ import annotations

import time
from typing import Any, Literal

import pytest
from pydantic import BaseModel, Field

from synthflow.errors import LLMEmptyAnswerError, LLMError
from synthflow.models.llms.gemini import GeminiLLM, VertexAILLM, gemini_schema, retry_delay
from synthflow.steps.tasks import ERROR_COLUMN
from tests.helpers import generate, run_texts
from tests.servers import FakeAPI, Reply, Request, fake_api, sequence


def generate_content(request: Request, texts: list[str] | None = None) -> Reply:
    body = request.json
    config = body.get("generationConfig", {})
    n = config.get("candidateCount", 1)
    prompt = body["contents"][-1]["parts"][0]["text"]
    texts = texts or [f"answer {i} to {prompt}" for i in range(n)]
    logprobs = {"chosenCandidates": [{"token": "a", "logProbability": -0.1}]}
    return Reply(
        body={
            "candidates": [
                {
                    "content": {"role": "model", "parts": [{"text": t}]},
                    "finishReason": "STOP",
                    "index": i,
                    **({"logprobsResult": logprobs} if config.get("responseLogprobs") else {}),
                }
                for i, t in enumerate(texts)
            ],
            "usageMetadata": {
                "promptTokenCount": 10,
                "candidatesTokenCount": 5 * n,
                "totalTokenCount": 10 + 5 * n,
            },
            "modelVersion": "gemini-1.5-flash-002",
        }
    )


def llm(api: FakeAPI, **kwargs: Any) -> GeminiLLM:
    return GeminiLLM(
        model="gemini-1.5-flash", base_url=api.url, api_key="g-key", retry_backoff=0.01, **kwargs
    )


def test_generate_content_request_and_response_on_the_wire() -> None:
    kwargs = {
        "temperature": 0.7,
        "top_p": 0.9,
        "top_k": 40,
        "max_new_tokens": 64,
        "stop": "END",
        "seed": 3,
        "presence_penalty": None,  # left out
        "safety_settings": [{"category": "HARM_CATEGORY_HARASSMENT", "threshold": "BLOCK_NONE"}],
    }
    with fake_api(generate_content) as api:
        distiset = run_texts(
            llm(api, generation_kwargs=kwargs), ["hello", "world"], system_prompt="Be brief."
        )

    rows = list(distiset["default"]["train"])
    assert [r["generation"] for r in rows] == ["answer 0 to hello", "answer 0 to world"]
    assert rows[0]["model_name"] == "gemini-1.5-flash"
    (request,) = [r for r in api.requests if r.json["contents"][0]["parts"][0]["text"] == "hello"]
    assert request.path == "/v1beta/models/gemini-1.5-flash:generateContent"
    assert request.headers["x-goog-api-key"] == "g-key"
    assert "authorization" not in request.headers
    assert request.json == {
        "contents": [{"role": "user", "parts": [{"text": "hello"}]}],
        "systemInstruction": {"parts": [{"text": "Be brief."}]},
        "safetySettings": kwargs["safety_settings"],
        "generationConfig": {
            "temperature": 0.7,
            "topP": 0.9,
            "topK": 40,
            "maxOutputTokens": 64,
            "stopSequences": ["END"],
            "seed": 3,
        },
    }
    stats = distiset.stats["gen"].llm
    assert (stats.requests, stats.input_tokens, stats.output_tokens) == (2, 20, 10)
    assert stats.cost == pytest.approx((20 * 0.075 + 10 * 0.30) / 1e6)


def test_num_generations_are_candidates_of_one_request() -> None:
    with fake_api(generate_content) as api:
        distiset = run_texts(llm(api), ["q"], num_generations=3, group_generations=True)
    assert distiset["default"]["train"][0]["generation"] == [f"answer {i} to q" for i in range(3)]
    assert len(api.requests) == 1
    assert api.requests[0].json["generationConfig"] == {"candidateCount": 3}
    assert distiset.stats["gen"].llm.output_tokens == 15


def test_conversation_images_and_logprobs_map_to_gemini_parts() -> None:
    image = {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}}
    remote = {"type": "image_url", "image_url": {"url": "gs://bucket/cat.jpg"}}
    messages: list[dict[str, Any]] = [
        {"role": "developer", "content": "You see images."},
        {"role": "user", "content": [{"type": "text", "text": "what is it?"}, image, remote]},
        {"role": "assistant", "content": "a cat"},
        {"role": "user", "content": "sure?"},
    ]
    with fake_api(generate_content) as api:
        out = _agenerate(llm(api, generation_kwargs={"logprobs": True}), messages)
    assert out.generations == ["answer 0 to sure?"]
    assert out.logprobs == [{"chosenCandidates": [{"token": "a", "logProbability": -0.1}]}]
    body = api.requests[0].json
    assert body["systemInstruction"] == {"parts": [{"text": "You see images."}]}
    assert body["contents"] == [
        {
            "role": "user",
            "parts": [
                {"text": "what is it?"},
                {"inlineData": {"mimeType": "image/png", "data": "AAAA"}},
                {"fileData": {"mimeType": "image/jpeg", "fileUri": "gs://bucket/cat.jpg"}},
            ],
        },
        {"role": "model", "parts": [{"text": "a cat"}]},
        {"role": "user", "parts": [{"text": "sure?"}]},
    ]
    assert body["generationConfig"] == {"responseLogprobs": True}


def test_top_logprobs_and_native_kwargs() -> None:
    kwargs = {"top_logprobs": 2, "thinking_config": {"thinkingBudget": 0}}
    with fake_api(generate_content) as api:
        generate(llm(api, generation_kwargs=kwargs))
    assert api.requests[0].json["generationConfig"] == {
        "logprobs": 2,
        "responseLogprobs": True,
        "thinkingConfig": {"thinkingBudget": 0},
    }


def test_thoughts_are_not_in_the_text_but_are_billed() -> None:
    body = {
        "candidates": [
            {
                "content": {
                    "role": "model",
                    "parts": [{"text": "hmm", "thought": True}, {"text": "4"}, {"text": "2"}],
                },
                "index": 0,
            }
        ],
        "usageMetadata": {
            "promptTokenCount": 3,
            "candidatesTokenCount": 2,
            "thoughtsTokenCount": 7,
        },
    }
    with fake_api(lambda r: Reply(body=body)) as api:
        out = generate(llm(api))
    assert out.generations == ["42"]
    assert (out.usage.input_tokens, out.usage.output_tokens) == (3, 9)


class Step(BaseModel):
    text: str = Field(description="One step.")
    kind: Literal["fact", "guess"]


class Verdict(BaseModel):
    reason: str
    score: int = Field(ge=1, le=5)
    steps: list[Step]
    note: Step | None = None


def test_structured_output_uses_response_schema_and_reasks_a_bad_answer() -> None:
    good = '{"reason": "clear", "score": 4, "steps": [{"text": "x", "kind": "fact"}]}'
    handler = sequence(
        lambda r: generate_content(r, ['{"reason": "clear", "score": "high"}']),
        lambda r: generate_content(r, [good]),
    )
    with fake_api(handler) as api:
        out = generate(llm(api, structured_output=Verdict), "rate")
    assert out.generations == [good]
    first, second = api.requests
    step = {
        "type": "OBJECT",
        "properties": {
            "text": {"type": "STRING", "description": "One step."},
            "kind": {"type": "STRING", "enum": ["fact", "guess"]},
        },
        "propertyOrdering": ["text", "kind"],
        "required": ["text", "kind"],
    }
    assert first.json["generationConfig"] == {
        "responseMimeType": "application/json",
        "responseSchema": {
            "type": "OBJECT",
            "properties": {
                "reason": {"type": "STRING"},
                "score": {"type": "INTEGER", "minimum": 1, "maximum": 5},
                "steps": {"type": "ARRAY", "items": step},
                "note": {**step, "nullable": True},
            },
            "propertyOrdering": ["reason", "score", "steps", "note"],
            "required": ["reason", "score", "steps"],
        },
    }
    reask = second.json["contents"]
    assert [c["role"] for c in reask] == ["user", "model", "user"]
    assert "not valid JSON for the required schema" in reask[-1]["parts"][0]["text"]


def test_schemas_gemini_cannot_say_send_only_the_json_mime_type() -> None:
    class Tree(BaseModel):
        name: str
        children: list[Tree]

    class Tagged(BaseModel):
        tags: dict[str, str]

    assert gemini_schema(Tree.model_json_schema()) is None
    assert gemini_schema(Tagged.model_json_schema()) is None
    assert gemini_schema({"type": "object"}) is None
    assert gemini_schema({}) is None
    assert gemini_schema(
        {
            "type": "object",
            "title": "T",
            "additionalProperties": False,
            "properties": {
                "when": {"type": "string", "format": "date-time"},
                "site": {"type": "string", "format": "uri", "default": "x"},
                "level": {"type": "integer", "enum": [1, 2]},
                "size": {"type": ["number", "null"], "exclusiveMinimum": 0},
                "either": {"anyOf": [{"type": "string"}, {"type": "integer"}]},
                "fixed": {"const": "yes"},
            },
        }
    ) == {
        "type": "OBJECT",
        "properties": {
            "when": {"type": "STRING", "format": "date-time"},
            "site": {"type": "STRING"},
            "level": {"type": "INTEGER"},
            "size": {"type": "NUMBER", "nullable": True},
            "either": {"anyOf": [{"type": "STRING"}, {"type": "INTEGER"}]},
            "fixed": {"type": "STRING", "enum": ["yes"]},
        },
        "propertyOrdering": ["when", "site", "level", "size", "either", "fixed"],
    }
    with fake_api(lambda r: generate_content(r, ['{"a": 1}'])) as api:
        generate(llm(api, structured_output={"type": "object"}))
    assert api.requests[0].json["generationConfig"] == {"responseMimeType": "application/json"}


@pytest.mark.parametrize(
    "fault",
    [
        Reply(429, {"error": {"code": 429, "status": "RESOURCE_EXHAUSTED"}}, {"retry-after": "0"}),
        Reply(500, {"error": {"code": 500, "status": "INTERNAL"}}),
        Reply(503, {"error": {"code": 503, "status": "UNAVAILABLE"}}),
    ],
    ids=["429-retry-after", "500", "503"],
)
def test_transient_faults_are_retried_and_the_row_succeeds(fault: Reply) -> None:
    with fake_api(sequence(fault, generate_content)) as api:
        distiset = run_texts(llm(api), ["q"])
    assert distiset["default"]["train"][0]["generation"] == "answer 0 to q"
    stats = distiset.stats["gen"].llm
    assert stats.retries == 1
    assert stats.rate_limited == (1 if fault.status == 429 else 0)
    assert (stats.input_tokens, stats.output_tokens) == (10, 5)
    assert len(api.requests) == 2


def test_a_429_waits_the_retry_delay_in_its_body() -> None:
    error = {
        "error": {
            "code": 429,
            "status": "RESOURCE_EXHAUSTED",
            "details": [
                {"@type": "type.googleapis.com/google.rpc.QuotaFailure"},
                {"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "0.3s"},
            ],
        }
    }
    with fake_api(sequence(Reply(429, error), generate_content)) as api:
        started = time.monotonic()
        out = generate(llm(api))
        elapsed = time.monotonic() - started
    assert out.generations == ["answer 0 to q"] and out.rate_limited == 1
    assert elapsed >= 0.3
    assert retry_delay('{"error": {"details": [{"@type": "x.RetryInfo", "retryDelay": "37s"}]}}')
    assert retry_delay("not json") is None


def test_client_errors_are_not_retried_and_never_show_the_key() -> None:
    error = {"error": {"code": 400, "message": "Invalid value", "status": "INVALID_ARGUMENT"}}
    with fake_api(lambda r: Reply(400, error)) as api:
        distiset = run_texts(llm(api), ["q"])
    row = distiset["default"]["train"][0]
    assert "answered 400" in row[ERROR_COLUMN] and "Invalid value" in row[ERROR_COLUMN]
    assert "g-key" not in row[ERROR_COLUMN]
    assert len(api.requests) == 1


def test_a_blocked_prompt_or_answer_fails_the_row_without_retries() -> None:
    blocked = {"promptFeedback": {"blockReason": "SAFETY"}, "usageMetadata": {}}
    with fake_api(lambda r: Reply(body=blocked)) as api:
        distiset = run_texts(llm(api), ["q"])
    assert "the prompt was blocked (SAFETY)" in distiset["default"]["train"][0][ERROR_COLUMN]
    assert len(api.requests) == 1

    # A candidate stopped by a filter: its partial text is not an answer either.
    parts = {"parts": [{"text": "Sure, here is"}], "role": "model"}
    stopped = {"candidates": [{"content": parts, "finishReason": "RECITATION", "index": 0}]}
    with (
        fake_api(lambda r: Reply(body=stopped)) as api,
        pytest.raises(LLMEmptyAnswerError, match=r"content filter \(finishReason RECITATION"),
    ):
        generate(llm(api))
    assert len(api.requests) == 1


def test_candidates_without_text_are_asked_for_again() -> None:
    empty = {"candidates": [{"finishReason": "STOP", "index": 0}], "usageMetadata": {}}
    no_candidates = Reply(body={"usageMetadata": {}})
    with fake_api(sequence(no_candidates, Reply(body=empty), generate_content)) as api:
        out = generate(llm(api))
    assert out.generations == ["answer 0 to q"]
    assert len(api.requests) == 3


def test_api_key_comes_from_gemini_or_google_env_and_is_never_serialized(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("GEMINI_API_KEY", raising=False)
    monkeypatch.setenv("GOOGLE_API_KEY", "from-google")
    assert GeminiLLM(model="m").resolved_api_key() == "from-google"
    monkeypatch.setenv("GEMINI_API_KEY", "from-gemini")
    assert GeminiLLM(model="m").resolved_api_key() == "from-gemini"
    client = GeminiLLM(model="m", api_key="very-secret")
    assert "very-secret" not in repr(client) and "very-secret" not in client.model_dump_json()

    monkeypatch.delenv("GEMINI_API_KEY")
    monkeypatch.delenv("GOOGLE_API_KEY")
    with pytest.raises(LLMError, match=r"GeminiLLM needs an API key.*GEMINI_API_KEY"):
        GeminiLLM(model="gemini-1.5-flash").load()


def test_vertex_ai_url_bearer_token_and_project_from_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GOOGLE_CLOUD_PROJECT", "my-proj")
    monkeypatch.setenv("VERTEX_ACCESS_TOKEN", "ya29.token")
    with fake_api(generate_content) as api:
        vertex = VertexAILLM(
            model="gemini-2.0-flash", location="europe-west4", base_url=api.url, retry_backoff=0.01
        )
        distiset = run_texts(vertex, ["q"], num_generations=2, group_generations=True)
    assert distiset["default"]["train"][0]["generation"] == ["answer 0 to q", "answer 1 to q"]
    request = api.requests[0]
    assert request.path == (
        "/v1/projects/my-proj/locations/europe-west4/publishers/google/models/"
        "gemini-2.0-flash:generateContent"
    )
    assert request.headers["authorization"] == "Bearer ya29.token"
    assert "x-goog-api-key" not in request.headers
    assert request.json["generationConfig"] == {"candidateCount": 2}
    assert distiset.stats["gen"].llm.input_tokens == 10


def test_vertex_ai_hosts_and_clear_errors(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("GOOGLE_CLOUD_PROJECT", "VERTEX_ACCESS_TOKEN", "GOOGLE_API_KEY"):
        monkeypatch.delenv(name, raising=False)
    regional = VertexAILLM(model="m", project="p", location="us-east5")
    assert regional.endpoint == "https://us-east5-aiplatform.googleapis.com"
    assert VertexAILLM(model="m", location="global").endpoint == "https://aiplatform.googleapis.com"
    with pytest.raises(LLMError, match=r"needs an access token.*VERTEX_ACCESS_TOKEN"):
        regional.load()
    with pytest.raises(LLMError, match=r"needs a project.*GOOGLE_CLOUD_PROJECT"):
        VertexAILLM(model="m", api_key="t").load()


def _agenerate(client: Any, messages: list[dict[str, Any]]) -> Any:
    import anyio

    async def call() -> Any:
        try:
            return await client.agenerate(messages)
        finally:
            await client.aclose()

    return anyio.run(call)


def test_each_gemini_model_gets_its_own_limiter() -> None:
    flash = GeminiLLM(model="gemini-1.5-flash", api_key="k")
    pro = GeminiLLM(model="gemini-1.5-pro", api_key="k")
    assert flash.limiter() is not pro.limiter()
    assert flash.limiter() is GeminiLLM(model="gemini-1.5-flash", api_key="k").limiter()
