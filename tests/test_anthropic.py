"""AnthropicLLM against a real HTTP server on 127.0.0.1 speaking the Messages API."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import BaseModel

from synthflow.errors import LLMEmptyAnswerError, LLMError
from synthflow.models.llms.anthropic import AnthropicLLM
from synthflow.models.llms.generation_kwargs import GenerationKwargsError
from synthflow.pipeline import Pipeline
from synthflow.steps import LoadDataFromDicts
from synthflow.steps.tasks import ERROR_COLUMN, ChatGeneration, TextGeneration
from tests.helpers import generate, run_texts
from tests.servers import FakeAPI, Reply, Request, fake_api, sequence


def invalid(request: Request) -> str | None:
    """What the Messages API would reject in ``request`` (a subset of its checks)."""
    body = request.json
    if request.path != "/v1/messages":
        return f"no route {request.path}"
    if request.headers.get("anthropic-version") != "2023-06-01":
        return "anthropic-version header missing"
    if "x-api-key" not in request.headers:
        return "x-api-key header missing"
    if not isinstance(body.get("max_tokens"), int):
        return "max_tokens: field required"
    for name in ("n", "max_new_tokens", "stop", "logprobs", "seed"):
        if name in body:
            return f"{name}: extra inputs are not permitted"
    for message in body["messages"]:
        if message["role"] not in ("user", "assistant"):
            return f"unexpected role {message['role']!r}"
        if not message["content"]:
            return "all messages must have non-empty content"
    return None


def message(request: Request, texts: list[str] | None = None) -> Reply:
    body = request.json
    error = invalid(request)
    if error is not None:
        return Reply(
            400, {"type": "error", "error": {"type": "invalid_request_error", "message": error}}
        )
    prompt = body["messages"][-1]["content"]
    text = texts[0] if texts else f"answer to {prompt}"
    return Reply(
        body={
            "id": "msg_1",
            "type": "message",
            "role": "assistant",
            "model": body["model"],
            "content": [{"type": "text", "text": text}],
            "stop_reason": "end_turn",
            "stop_sequence": None,
            "usage": {"input_tokens": 10, "output_tokens": 5},
        }
    )


def overloaded() -> Reply:
    return Reply(529, {"type": "error", "error": {"type": "overloaded_error", "message": "busy"}})


def llm(api: FakeAPI, **kwargs: Any) -> AnthropicLLM:
    return AnthropicLLM(
        model="claude-3-5-haiku-20241022",
        base_url=api.url,
        api_key="sk-ant-test",
        retry_backoff=0.01,
        **kwargs,
    )


def test_messages_request_and_response_on_the_wire() -> None:
    kwargs = {"temperature": 0.5, "top_p": 0.9, "top_k": 40, "max_new_tokens": 64, "stop": "##"}
    with fake_api(message) as api:
        client = llm(api, generation_kwargs=kwargs)
        distiset = run_texts(client, ["hello", "world"], system_prompt="Be brief.")

    rows = list(distiset["default"]["train"])
    assert [r["generation"] for r in rows] == ["answer to hello", "answer to world"]
    assert rows[0]["model_name"] == "claude-3-5-haiku-20241022"
    (request,) = [r for r in api.requests if r.json["messages"][-1]["content"] == "hello"]
    assert request.path == "/v1/messages"
    assert request.headers["x-api-key"] == "sk-ant-test"
    assert request.headers["anthropic-version"] == "2023-06-01"
    assert "authorization" not in request.headers
    assert request.json == {
        "model": "claude-3-5-haiku-20241022",
        "system": "Be brief.",
        "messages": [{"role": "user", "content": "hello"}],
        "max_tokens": 64,
        "temperature": 0.5,
        "top_p": 0.9,
        "top_k": 40,
        "stop_sequences": ["##"],
    }
    stats = distiset.stats["gen"].llm
    assert (stats.requests, stats.input_tokens, stats.output_tokens) == (2, 20, 10)
    assert stats.cost == pytest.approx((20 * 0.80 + 10 * 4.00) / 1e6)


def test_max_tokens_default_system_messages_joined_and_other_kwargs_passed() -> None:
    messages = [
        {"role": "system", "content": "Rule one."},
        {"role": "system", "content": [{"type": "text", "text": "Rule two."}]},
        {"role": "user", "content": "hi"},
        {"role": "assistant", "content": "hello"},
        {"role": "user", "content": "again"},
    ]
    with fake_api(message) as api, Pipeline() as pipeline:
        load = LoadDataFromDicts(data=[{"messages": messages}])
        kwargs = {"stop": ["a", "b"], "temperature": None, "metadata": {"user_id": "u1"}}
        load >> ChatGeneration(name="chat", llm=llm(api, generation_kwargs=kwargs))
        rows = list(pipeline.run(progress=False)["default"]["train"])
    assert rows[0]["generation"] == "answer to again"
    body = api.requests[0].json
    assert body["max_tokens"] == 1024
    assert body["system"] == "Rule one.\n\nRule two."
    assert body["messages"] == messages[2:]
    assert body["stop_sequences"] == ["a", "b"]
    assert body["metadata"] == {"user_id": "u1"} and "temperature" not in body


def test_text_blocks_are_joined_and_cached_prompt_tokens_count_as_input() -> None:
    def answer(request: Request) -> Reply:
        return Reply(
            body={
                "type": "message",
                "role": "assistant",
                "content": [
                    {"type": "thinking", "thinking": "hmm", "signature": "x"},
                    {"type": "text", "text": "Hello, "},
                    {"type": "text", "text": "world."},
                ],
                "usage": {
                    "input_tokens": 3,
                    "cache_creation_input_tokens": 4,
                    "cache_read_input_tokens": 5,
                    "output_tokens": 7,
                },
            }
        )

    with fake_api(answer) as api:
        out = generate(llm(api))
    assert out.generations == ["Hello, world."]
    assert (out.usage.input_tokens, out.usage.output_tokens) == (12, 7)
    assert out.logprobs is None


def test_an_answer_cut_off_before_any_text_fails_without_retries() -> None:
    reply = Reply(body={"content": [], "stop_reason": "max_tokens", "usage": {}})
    with (
        fake_api(lambda r: reply) as api,
        pytest.raises(LLMEmptyAnswerError, match=r"stop_reason 'max_tokens'.*max_new_tokens"),
    ):
        generate(llm(api))
    assert len(api.requests) == 1


def test_a_refusal_is_a_failed_call_even_with_text_before_it() -> None:
    content = [{"type": "text", "text": "I can start, but"}]
    reply = Reply(body={"content": content, "stop_reason": "refusal", "usage": {}})
    with fake_api(lambda r: reply) as api:
        distiset = run_texts(llm(api), ["q"])
    row = distiset["default"]["train"][0]
    assert row["generation"] is None
    assert row[ERROR_COLUMN].startswith("gen: LLMEmptyAnswerError: AnthropicLLM returned no text")
    assert "refused: 'I can start, but'" in row[ERROR_COLUMN]
    assert len(api.requests) == 1  # a refusal is not asked again


def test_num_generations_send_one_request_each() -> None:
    with fake_api(message) as api, Pipeline() as pipeline:
        load = LoadDataFromDicts(data=[{"instruction": "q"}])
        load >> TextGeneration(name="gen", llm=llm(api), num_generations=3, group_generations=True)
        distiset = pipeline.run(progress=False)
    rows = list(distiset["default"]["train"])
    assert rows[0]["generation"] == ["answer to q"] * 3
    assert len(api.requests) == 3 and all("n" not in r.json for r in api.requests)
    assert distiset.stats["gen"].llm.output_tokens == 15


def test_one_failed_generation_fails_the_row_with_its_own_error_and_counts_the_rest() -> None:
    error = {"type": "error", "error": {"type": "invalid_request_error", "message": "no"}}
    bad = Reply(400, error, delay=0.3)  # the other generation is answered (and billed) first
    with fake_api(sequence(message, bad)) as api:
        distiset = run_texts(llm(api), ["q"], num_generations=2, group_generations=True)
    row = distiset["default"]["train"][0]
    assert row["generation"] is None
    assert row[ERROR_COLUMN].startswith("gen: LLMStatusError: POST ")  # not "ExceptionGroup: ..."
    assert "answered 400" in row[ERROR_COLUMN]
    stats = distiset.stats["gen"].llm
    assert (stats.failures, stats.input_tokens, stats.output_tokens) == (1, 10, 5)


def test_images_in_openai_shape_become_image_blocks() -> None:
    content = [
        {"type": "text", "text": "compare"},
        {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}},
        {"type": "image_url", "image_url": {"url": "https://example.com/cat.jpg", "detail": "low"}},
        {"type": "image", "source": {"type": "url", "url": "https://example.com/dog.webp"}},
    ]
    with fake_api(lambda r: message(r, ["two cats"])) as api:
        out = generate(llm(api), content)
    assert out.generations == ["two cats"]
    assert api.requests[0].json["messages"][0]["content"] == [
        {"type": "text", "text": "compare"},
        {
            "type": "image",
            "source": {"type": "base64", "media_type": "image/png", "data": "iVBORw0KGgo="},
        },
        {"type": "image", "source": {"type": "url", "url": "https://example.com/cat.jpg"}},
        {"type": "image", "source": {"type": "url", "url": "https://example.com/dog.webp"}},
    ]


def test_an_image_that_is_neither_base64_nor_a_url_is_a_clear_error() -> None:
    content = [{"type": "image_url", "image_url": {"url": "data:image/svg+xml,<svg/>"}}]
    with fake_api(message) as api, pytest.raises(LLMError, match=r"base64 data URLs .* or http"):
        generate(llm(api), content)
    assert api.requests == []


class Verdict(BaseModel):
    score: int
    reason: str


def test_structured_output_states_the_schema_and_reasks_a_bad_answer() -> None:
    handler = sequence(
        lambda r: message(r, ['Sure! {"score": "high"}']),
        lambda r: message(r, ['```json\n{"score": 4, "reason": "clear"}\n```']),
    )
    with fake_api(handler) as api, Pipeline() as pipeline:
        load = LoadDataFromDicts(data=[{"instruction": "rate"}])
        load >> TextGeneration(
            name="gen", llm=llm(api, structured_output=Verdict), system_prompt="You judge."
        )
        distiset = pipeline.run(progress=False)
    row = distiset["default"]["train"][0]
    assert row["generation"] == '```json\n{"score": 4, "reason": "clear"}\n```'
    first, second = api.requests
    system = first.json["system"]
    assert system.startswith("You judge.\n\nAnswer with only a JSON value")
    assert '"required":["score","reason"]' in system
    assert "response_format" not in first.json
    assert second.json["system"] == system
    assert [m["role"] for m in second.json["messages"]] == ["user", "assistant", "user"]
    assert "not valid JSON for the required schema" in second.json["messages"][-1]["content"]
    stats = distiset.stats["gen"].llm
    assert (stats.input_tokens, stats.output_tokens) == (20, 10)


def test_a_reask_after_an_empty_answer_leaves_out_the_empty_turn() -> None:
    blank = [{"type": "text", "text": ""}]  # text, but not JSON: re-asked with an empty turn
    empty = Reply(body={"content": blank, "usage": {"input_tokens": 1, "output_tokens": 0}})
    handler = sequence(empty, lambda r: message(r, ['{"score": 1, "reason": "ok"}']))
    with fake_api(handler) as api:
        out = generate(llm(api, structured_output=Verdict))
    assert out.generations == ['{"score": 1, "reason": "ok"}']
    assert [m["role"] for m in api.requests[1].json["messages"]] == ["user", "user"]


@pytest.mark.parametrize(
    "fault",
    [
        Reply(
            429, {"type": "error", "error": {"type": "rate_limit_error"}}, {"retry-after": ".05"}
        ),
        overloaded(),
        Reply(500, {"type": "error", "error": {"type": "api_error", "message": "boom"}}),
    ],
    ids=["429-retry-after", "529-overloaded", "500"],
)
def test_transient_faults_are_retried_and_the_row_succeeds(fault: Reply) -> None:
    with fake_api(sequence(fault, message)) as api:
        distiset = run_texts(llm(api), ["q"])
    row = distiset["default"]["train"][0]
    assert row["generation"] == "answer to q"
    stats = distiset.stats["gen"].llm
    assert stats.retries == 1
    assert stats.rate_limited == (1 if fault.status == 429 else 0)
    assert (stats.input_tokens, stats.output_tokens) == (10, 5)
    assert len(api.requests) == 2


def test_retries_stop_at_max_retries_and_the_row_gets_the_error() -> None:
    with fake_api(lambda r: overloaded()) as api:
        distiset = run_texts(llm(api, max_retries=2), ["q"])
    row = distiset["default"]["train"][0]
    assert row["generation"] is None
    assert "answered 529" in row[ERROR_COLUMN] and "overloaded_error" in row[ERROR_COLUMN]
    assert len(api.requests) == 3


def test_bad_requests_are_not_retried_and_never_show_the_key() -> None:
    too_long = {"type": "invalid_request_error", "message": "prompt is too long"}
    with fake_api(lambda r: Reply(400, {"type": "error", "error": too_long})) as api:
        distiset = run_texts(llm(api), ["q"])
    row = distiset["default"]["train"][0]
    assert row["generation"] is None
    assert "answered 400" in row[ERROR_COLUMN] and "prompt is too long" in row[ERROR_COLUMN]
    assert "sk-ant-test" not in row[ERROR_COLUMN]
    assert len(api.requests) == 1
    assert distiset.stats["gen"].llm.retries == 0


@pytest.mark.parametrize("name", ["logprobs", "seed", "n"])
def test_kwargs_the_api_lacks_are_refused_when_set(name: str) -> None:
    with fake_api(message) as api:
        with pytest.raises(GenerationKwargsError, match=f"can't take '{name}'"):
            llm(api, generation_kwargs={name: 1})
        client = llm(api)
        with pytest.raises(GenerationKwargsError, match="remove it from generation_kwargs"):
            client.generation_kwargs = {name: 1}
    assert api.requests == []


def test_the_key_comes_from_the_environment_and_is_never_serialized(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-from-env")
    with fake_api(message) as api:
        generate(AnthropicLLM(model="claude-3-haiku", base_url=api.url))
    assert api.requests[0].headers["x-api-key"] == "sk-ant-from-env"

    client = AnthropicLLM(model="claude-3-haiku", api_key="sk-ant-very-secret")
    assert "sk-ant-very-secret" not in repr(client)
    assert "sk-ant-very-secret" not in client.model_dump_json()


def test_missing_api_key_for_the_hosted_endpoint_is_a_clear_error(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("ANTHROPIC_API_KEY", raising=False)
    monkeypatch.delenv("ANTHROPIC_BASE_URL", raising=False)
    with pytest.raises(LLMError, match=r"AnthropicLLM needs an API key: .* ANTHROPIC_API_KEY"):
        AnthropicLLM(model="claude-3-haiku").load()
