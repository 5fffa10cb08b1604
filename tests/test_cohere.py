"""CohereLLM against a real HTTP server on 127.0.0.1 speaking the v2 Chat API."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import BaseModel

from synthflow.errors import LLMEmptyAnswerError, LLMError
from synthflow.models.llms.cohere import CohereLLM
from synthflow.pipeline import Pipeline
from synthflow.steps import LoadDataFromDicts
from synthflow.steps.tasks import ERROR_COLUMN, ChatGeneration, TextGeneration
from tests.helpers import generate, run_texts
from tests.servers import FakeAPI, Reply, Request, fake_api, sequence

LOGPROBS = [{"token_ids": [1, 2], "text": "ok", "logprobs": [-0.1, -0.2]}]


def invalid(request: Request) -> str | None:
    """What the v2 Chat API would reject in ``request`` (a subset of its checks)."""
    body = request.json
    if request.path != "/v2/chat":
        return f"no route {request.path}"
    if not request.headers.get("authorization", "").startswith("Bearer "):
        return "no api key supplied"
    for name in ("n", "top_p", "top_k", "stop", "max_new_tokens"):
        if name in body:
            return f"invalid request: unknown field {name!r}"
    for message in body["messages"]:
        if message["role"] not in ("system", "user", "assistant", "tool"):
            return f"invalid role {message['role']!r}"
        if not message.get("content"):
            return "invalid request: message content must not be empty"
    return None


def chat(request: Request, texts: list[str] | None = None) -> Reply:
    body = request.json
    error = invalid(request)
    if error is not None:
        return Reply(400, {"id": "e1", "message": error})
    prompt = body["messages"][-1]["content"]
    text = texts[0] if texts else f"answer to {prompt}"
    data: dict[str, Any] = {
        "id": "c1",
        "finish_reason": "COMPLETE",
        "message": {"role": "assistant", "content": [{"type": "text", "text": text}]},
        "usage": {
            "billed_units": {"input_tokens": 8, "output_tokens": 5},
            "tokens": {"input_tokens": 10, "output_tokens": 5},
        },
    }
    if body.get("logprobs"):
        data["logprobs"] = LOGPROBS
    return Reply(body=data)


def llm(api: FakeAPI, **kwargs: Any) -> CohereLLM:
    return CohereLLM(
        model="command-r-08-2024", base_url=api.url, api_key="co-test", retry_backoff=0.01, **kwargs
    )


def test_chat_request_and_response_on_the_wire() -> None:
    kwargs = {
        "temperature": 0.3,
        "top_p": 0.9,
        "top_k": 40,
        "max_new_tokens": 64,
        "stop": "##",
        "seed": 7,
    }
    with fake_api(chat) as api:
        client = llm(api, generation_kwargs=kwargs)
        distiset = run_texts(
            client,
            ["hello", "world"],
            system_prompt="Be brief.",
            run={"prices": {"command-r": (0.15, 0.60)}},
        )

    rows = list(distiset["default"]["train"])
    assert [r["generation"] for r in rows] == ["answer to hello", "answer to world"]
    assert rows[0]["model_name"] == "command-r-08-2024"
    (request,) = [r for r in api.requests if r.json["messages"][-1]["content"] == "hello"]
    assert request.path == "/v2/chat"
    assert request.headers["authorization"] == "Bearer co-test"
    assert request.json == {
        "model": "command-r-08-2024",
        "messages": [
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "hello"},
        ],
        "temperature": 0.3,
        "p": 0.9,
        "k": 40,
        "max_tokens": 64,
        "stop_sequences": ["##"],
        "seed": 7,
    }
    stats = distiset.stats["gen"].llm
    assert (stats.requests, stats.input_tokens, stats.output_tokens) == (2, 20, 10)
    assert stats.cost == pytest.approx((20 * 0.15 + 10 * 0.60) / 1e6)


def test_text_parts_are_joined_and_billed_units_stand_in_for_missing_token_counts() -> None:
    reply = Reply(
        body={
            "message": {
                "role": "assistant",
                "content": [
                    {"type": "thinking", "thinking": "hmm"},
                    {"type": "text", "text": "Hello, "},
                    {"type": "text", "text": "world."},
                ],
            },
            "usage": {"billed_units": {"input_tokens": 3, "output_tokens": 4}},
        }
    )
    with fake_api(lambda r: reply) as api:
        out = generate(llm(api))
    assert out.generations == ["Hello, world."]
    assert (out.usage.input_tokens, out.usage.output_tokens) == (3, 4)
    assert out.logprobs is None


def test_an_answer_without_text_is_asked_again_then_fails() -> None:
    reply = Reply(body={"message": {"role": "assistant", "tool_calls": []}, "usage": {}})
    with (
        fake_api(lambda r: reply) as api,
        pytest.raises(LLMEmptyAnswerError, match="after 3 attempts: null content"),
    ):
        generate(llm(api))
    assert len(api.requests) == 3  # sampling: another attempt may answer


def test_num_generations_send_one_request_each() -> None:
    with fake_api(chat) as api, Pipeline() as pipeline:
        load = LoadDataFromDicts(data=[{"instruction": "q"}])
        load >> TextGeneration(name="gen", llm=llm(api), num_generations=3, group_generations=True)
        distiset = pipeline.run(progress=False)
    rows = list(distiset["default"]["train"])
    assert rows[0]["generation"] == ["answer to q"] * 3
    assert len(api.requests) == 3 and all("n" not in r.json for r in api.requests)
    assert distiset.stats["gen"].llm.input_tokens == 30


def test_logprobs_are_asked_for_and_returned_per_generation() -> None:
    with fake_api(chat) as api:
        out = generate(llm(api, generation_kwargs={"logprobs": True}), n=2)
    assert out.logprobs == [LOGPROBS, LOGPROBS]
    assert all(r.json["logprobs"] is True for r in api.requests)


def test_image_parts_pass_through_in_the_chat_shape() -> None:
    image = {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}}
    messages = [{"role": "user", "content": [{"type": "text", "text": "what is it?"}, image]}]
    with fake_api(lambda r: chat(r, ["a cat"])) as api, Pipeline() as pipeline:
        load = LoadDataFromDicts(data=[{"messages": messages}])
        load >> ChatGeneration(name="chat", llm=llm(api))
        rows = list(pipeline.run(progress=False)["default"]["train"])
    assert rows[0]["generation"] == "a cat"
    assert api.requests[0].json["messages"] == messages


class Verdict(BaseModel):
    score: int
    reason: str


def test_structured_output_uses_the_native_json_schema_and_reasks_a_bad_answer() -> None:
    handler = sequence(
        lambda r: chat(r, ['{"score": "high"}']),
        lambda r: chat(r, ['{"score": 4, "reason": "clear"}']),
    )
    with fake_api(handler) as api:
        out = generate(llm(api, structured_output=Verdict), "rate")
    assert out.generations == ['{"score": 4, "reason": "clear"}']
    assert (out.usage.input_tokens, out.usage.output_tokens) == (20, 10)
    first, second = api.requests
    response_format = first.json["response_format"]
    assert response_format["type"] == "json_object"
    assert response_format["json_schema"] == Verdict.model_json_schema()
    assert second.json["response_format"] == response_format
    assert [m["role"] for m in second.json["messages"]] == ["user", "assistant", "user"]
    assert "not valid JSON for the required schema" in second.json["messages"][-1]["content"]


def test_a_reask_after_an_empty_answer_leaves_out_the_empty_turn() -> None:
    blank = [{"type": "text", "text": ""}]  # text, but not JSON: re-asked with an empty turn
    empty = Reply(body={"message": {"role": "assistant", "content": blank}, "usage": {}})
    handler = sequence(empty, lambda r: chat(r, ['{"score": 1, "reason": "ok"}']))
    with fake_api(handler) as api:
        out = generate(llm(api, structured_output=Verdict))
    assert out.generations == ['{"score": 1, "reason": "ok"}']
    assert [m["role"] for m in api.requests[1].json["messages"]] == ["user", "user"]


@pytest.mark.parametrize(
    "fault",
    [
        Reply(429, {"message": "too many requests"}, headers={"retry-after": "0.05"}),
        Reply(500, {"message": "internal server error"}),
        Reply(503, {"message": "service unavailable"}),
    ],
    ids=["429-retry-after", "500", "503"],
)
def test_transient_faults_are_retried_and_the_row_succeeds(fault: Reply) -> None:
    with fake_api(sequence(fault, chat)) as api:
        distiset = run_texts(llm(api), ["q"])
    row = distiset["default"]["train"][0]
    assert row["generation"] == "answer to q"
    stats = distiset.stats["gen"].llm
    assert stats.retries == 1
    assert stats.rate_limited == (1 if fault.status == 429 else 0)
    assert (stats.input_tokens, stats.output_tokens) == (10, 5)
    assert len(api.requests) == 2


def test_bad_requests_are_not_retried_and_never_show_the_key() -> None:
    with fake_api(lambda r: Reply(400, {"message": "invalid request: model not found"})) as api:
        distiset = run_texts(llm(api), ["q"])
    row = distiset["default"]["train"][0]
    assert row["generation"] is None
    assert "answered 400" in row[ERROR_COLUMN] and "model not found" in row[ERROR_COLUMN]
    assert "co-test" not in row[ERROR_COLUMN]
    assert len(api.requests) == 1
    assert distiset.stats["gen"].llm.retries == 0


@pytest.mark.parametrize("env", ["CO_API_KEY", "COHERE_API_KEY"])
def test_the_key_comes_from_either_environment_variable(
    env: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("CO_API_KEY", raising=False)
    monkeypatch.delenv("COHERE_API_KEY", raising=False)
    monkeypatch.setenv(env, "co-from-env")
    with fake_api(chat) as api:
        generate(CohereLLM(model="command-r", base_url=api.url))
    assert api.requests[0].headers["authorization"] == "Bearer co-from-env"


def test_co_api_key_wins_over_cohere_api_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CO_API_KEY", "first")
    monkeypatch.setenv("COHERE_API_KEY", "second")
    assert CohereLLM(model="command-r").resolved_api_key() == "first"
    assert CohereLLM(model="command-r", api_key="given").resolved_api_key() == "given"


def test_missing_api_key_is_a_clear_error_and_the_key_is_never_serialized(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for env in ("CO_API_KEY", "COHERE_API_KEY", "CO_API_URL"):
        monkeypatch.delenv(env, raising=False)
    with pytest.raises(LLMError, match="CohereLLM needs an API key"):
        CohereLLM(model="command-r").load()
    client = CohereLLM(model="command-r", api_key="co-very-secret")
    assert "co-very-secret" not in repr(client)
    assert "co-very-secret" not in client.model_dump_json()
