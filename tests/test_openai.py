"""OpenAILLM and its presets against a real HTTP server on 127.0.0.1 speaking chat completions."""

from __future__ import annotations

import threading
from typing import Any

import pytest
from pydantic import BaseModel

from synthflow.errors import PipelineValidationError
from synthflow.models.llms.openai import AzureOpenAILLM, GroqLLM, MistralLLM, OpenAILLM
from synthflow.pipeline import Pipeline
from synthflow.steps import LoadDataFromDicts
from synthflow.steps.tasks import ERROR_COLUMN, ChatGeneration, TextGeneration
from tests.helpers import generate, run_texts
from tests.servers import RESET, FakeAPI, Reply, Request, fake_api, sequence


def completion(request: Request, texts: list[str] | None = None) -> Reply:
    body = request.json
    n = body.get("n", 1)
    prompt = body["messages"][-1]["content"]
    texts = texts or [f"answer {i} to {prompt}" for i in range(n)]
    return Reply(
        body={
            "id": "chatcmpl-1",
            "object": "chat.completion",
            "model": body.get("model", "m"),
            "choices": [
                {
                    "index": i,
                    "message": {"role": "assistant", "content": t},
                    "finish_reason": "stop",
                    "logprobs": {"content": [{"token": "a", "logprob": -0.1}]}
                    if body.get("logprobs")
                    else None,
                }
                for i, t in enumerate(texts)
            ],
            "usage": {"prompt_tokens": 10, "completion_tokens": 5 * n, "total_tokens": 10 + 5 * n},
        }
    )


def llm(api: FakeAPI, **kwargs: Any) -> OpenAILLM:
    return OpenAILLM(
        model="gpt-4o-mini",
        base_url=f"{api.url}/v1",
        api_key="sk-test",
        retry_backoff=0.01,
        **kwargs,
    )


def test_chat_completion_request_and_response_on_the_wire(transport: str) -> None:
    with fake_api(completion) as api:
        client = llm(api, generation_kwargs={"temperature": 0.7, "max_new_tokens": 64, "seed": 3})
        distiset = run_texts(client, ["hello", "world"])

    rows = list(distiset["default"]["train"])
    assert [r["generation"] for r in rows] == ["answer 0 to hello", "answer 0 to world"]
    assert rows[0]["model_name"] == "gpt-4o-mini"
    # The two rows are sent concurrently: find the request for "hello".
    request = next(r for r in api.requests if r.json["messages"][0]["content"] == "hello")
    assert request.path == "/v1/chat/completions"
    assert request.headers["authorization"] == "Bearer sk-test"
    assert request.json == {
        "model": "gpt-4o-mini",
        "messages": [{"role": "user", "content": "hello"}],
        "temperature": 0.7,
        "max_tokens": 64,
        "seed": 3,
    }
    stats = distiset.stats["gen"].llm
    assert (stats.requests, stats.input_tokens, stats.output_tokens) == (2, 20, 10)
    assert stats.cost == pytest.approx((20 * 0.15 + 10 * 0.60) / 1e6)


def test_num_generations_use_the_api_n_in_one_request() -> None:
    with fake_api(completion) as api, Pipeline() as pipeline:
        load = LoadDataFromDicts(data=[{"instruction": "q"}])
        load >> TextGeneration(name="gen", llm=llm(api), num_generations=3, group_generations=True)
        rows = list(pipeline.run(progress=False)["default"]["train"])
    assert rows[0]["generation"] == [f"answer {i} to q" for i in range(3)]
    assert len(api.requests) == 1 and api.requests[0].json["n"] == 3


def test_groq_has_no_n_and_sends_one_request_per_generation() -> None:
    with fake_api(completion) as api:
        client = GroqLLM(model="llama", base_url=api.url, api_key="k", retry_backoff=0.01)
        out = generate(client, n=2)
    assert len(out.generations) == 2
    assert len(api.requests) == 2 and all("n" not in r.json for r in api.requests)


def test_presets_set_path_auth_and_renamed_kwargs() -> None:
    with fake_api(completion) as api:
        azure = AzureOpenAILLM(model="my-deploy", base_url=api.url, api_key="az", api_version="v1")
        generate(azure)
        mistral = MistralLLM(
            model="mistral-small", base_url=api.url, api_key="mk", generation_kwargs={"seed": 7}
        )
        generate(mistral)
    first, second = api.requests
    assert first.path == "/openai/deployments/my-deploy/chat/completions?api-version=v1"
    assert first.headers["api-key"] == "az" and "model" not in first.json
    assert second.json["random_seed"] == 7 and "seed" not in second.json
    assert second.headers["authorization"] == "Bearer mk"


def test_logprobs_and_image_content_pass_through() -> None:
    image = {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}}
    messages = [{"role": "user", "content": [{"type": "text", "text": "what is it?"}, image]}]

    def answer(request: Request) -> Reply:
        return completion(request, ["a cat"])

    with fake_api(answer) as api, Pipeline() as pipeline:
        load = LoadDataFromDicts(data=[{"messages": messages}])
        load >> ChatGeneration(
            name="chat", llm=llm(api, generation_kwargs={"logprobs": True, "top_logprobs": 2})
        )
        rows = list(pipeline.run(progress=False)["default"]["train"])
    assert rows[0]["generation"] == "a cat"
    assert api.requests[0].json["messages"] == messages
    assert api.requests[0].json["logprobs"] is True


class Verdict(BaseModel):
    score: int
    reason: str


def test_structured_output_uses_json_schema_mode_and_reasks_a_bad_answer() -> None:
    handler = sequence(
        lambda r: completion(r, ['{"score": "high"}']),
        lambda r: completion(r, ['{"score": 4, "reason": "clear"}']),
    )
    with fake_api(handler) as api:
        out = generate(llm(api, structured_output=Verdict), "rate")
    assert out.generations == ['{"score": 4, "reason": "clear"}']
    first, second = api.requests
    assert first.json["response_format"]["type"] == "json_schema"
    assert first.json["response_format"]["json_schema"]["schema"]["required"] == ["score", "reason"]
    assert "not valid JSON for the required schema" in second.json["messages"][-1]["content"]


def test_structured_output_gives_up_after_bounded_reasks() -> None:
    with fake_api(lambda r: completion(r, ["not json"])) as api:
        client = llm(api, structured_output={"type": "object"}, structured_retries=1)
        distiset = run_texts(client, ["q"])
    row = distiset["default"]["train"][0]
    assert row["generation"] is None
    assert "does not follow the output schema after 1 re-asks" in row[ERROR_COLUMN]
    assert len(api.requests) == 2
    # Both answers were billed: the failed row's tokens count, in the stats and the budget.
    usage = distiset.llm_usage()
    assert (usage.failures, usage.input_tokens, usage.output_tokens) == (1, 20, 10)
    assert usage.cost and usage.cost > 0


@pytest.mark.parametrize(
    "fault",
    [
        Reply(429, {"error": "slow down"}, headers={"retry-after": "0.05"}),
        Reply(429, {"error": "slow down"}),
        Reply(500, {"error": "boom"}),
        Reply(200, raw=b"{not json"),
        RESET,
    ],
    ids=["429-retry-after", "429-bare", "500", "malformed-json", "connection-reset"],
)
def test_transient_faults_are_retried_and_the_row_succeeds(fault: object, transport: str) -> None:
    with fake_api(sequence(fault, completion)) as api:
        distiset = run_texts(llm(api), ["q"])
    row = distiset["default"]["train"][0]
    assert row["generation"] == "answer 0 to q"
    stats = distiset.stats["gen"].llm
    assert stats.retries == 1
    assert stats.rate_limited == (1 if getattr(fault, "status", 0) == 429 else 0)
    assert len(api.requests) == 2


def test_timeouts_are_retried_then_the_row_gets_the_error(transport: str) -> None:
    with fake_api(lambda r: Reply(200, {}, delay=0.5)) as api:
        distiset = run_texts(llm(api, timeout=0.1, max_retries=1), ["q"])
    row = distiset["default"]["train"][0]
    assert row["generation"] is None
    assert "timed out after 0.1s" in row[ERROR_COLUMN]
    assert len(api.requests) == 2
    assert distiset.stats["gen"].llm.retries == 1  # a call that failed still counts its retries


def test_a_refused_key_is_not_retried_stops_the_run_and_never_shows_the_key() -> None:
    from synthflow.errors import StepError

    refuse = lambda r: Reply(401, {"error": {"message": "bad key"}})  # noqa: E731
    # A 401 would fail every row alike: the run stops at the first instead.
    with fake_api(refuse) as api, pytest.raises(StepError) as info:
        run_texts(llm(api, max_concurrency=1), [f"q{i}" for i in range(50)])
    message = str(info.value)
    assert message.startswith("step 'gen' failed: LLMStatusError: POST ")
    assert "answered 401" in message and "bad key" in message and "sk-test" not in message
    # Not retried; at most the one call that took the freed slot went out before the stop.
    assert len(api.requests) <= 2


def test_after_a_success_a_404_fails_only_its_row() -> None:
    def handler(request: Request) -> Reply:
        if request.json["messages"][-1]["content"] == "gone":  # answered after the others
            return Reply(404, {"error": {"message": "no such deployment"}}, delay=0.3)
        return completion(request)

    with fake_api(handler) as api:
        distiset = run_texts(llm(api), ["a", "gone", "b"])
    rows = list(distiset["default"]["train"])
    assert [r["generation"] for r in rows] == ["answer 0 to a", None, "answer 0 to b"]
    assert "answered 404" in rows[1][ERROR_COLUMN]


def test_a_per_row_client_error_fails_only_that_row() -> None:
    def reject_long(request: Request) -> Reply:
        if len(request.json["messages"][-1]["content"]) > 5:
            return Reply(400, {"error": {"message": "context length exceeded"}})
        return completion(request)

    with fake_api(reject_long) as api:
        distiset = run_texts(llm(api), ["short", "far too long"])
    rows = list(distiset["default"]["train"])
    assert rows[0]["generation"] == "answer 0 to short"
    assert "answered 400" in rows[1][ERROR_COLUMN] and "context length" in rows[1][ERROR_COLUMN]
    assert len(api.requests) == 2  # a 400 is not retried


def test_an_endpoint_that_never_answers_stops_the_run_with_a_hint(transport: str) -> None:
    from synthflow.errors import StepError

    with fake_api(completion) as api:
        closed = f"{api.url}/v1"  # the server stops below: its port refuses connections
    client = OpenAILLM(model="m", base_url=closed, api_key="k", max_retries=1, retry_backoff=0.01)
    with pytest.raises(StepError, match="has been answered yet: check base_url, and that the"):
        run_texts(client, [f"q{i}" for i in range(20)])


def test_fail_fast_task_stops_the_run() -> None:
    from synthflow.errors import StepError

    with fake_api(lambda r: Reply(400, {"error": "no"})) as api, Pipeline() as pipeline:
        load = LoadDataFromDicts(data=[{"instruction": "q"}])
        load >> TextGeneration(name="gen", llm=llm(api), on_error="fail")
        with pytest.raises(StepError, match="step 'gen' failed on row 0: LLMStatusError"):
            pipeline.run(progress=False)


def test_rerunning_pays_for_nothing_already_answered() -> None:
    with fake_api(completion) as api:
        first = run_texts(llm(api), ["a", "b", "c"])
        second = run_texts(llm(api), ["a", "b", "c"])
        assert len(api.requests) == 3
        assert second.stats["gen"].llm.cache_hits == 3
        assert second.stats["gen"].llm.requests == 0
        assert first.llm_usage().cost and second.llm_usage().cost == 0.0  # known, and free
        assert list(first["default"]["train"]) == list(second["default"]["train"])
        run_texts(llm(api), ["a", "b", "c"], run={"use_cache": False})
        assert len(api.requests) == 6


def test_more_generations_later_pay_only_for_the_new_ones() -> None:
    def make(n: int) -> Pipeline:
        with Pipeline(name="gens") as pipeline:
            load = LoadDataFromDicts(data=[{"instruction": "q"}])
            load >> TextGeneration(
                name="gen", llm=llm(api), num_generations=n, group_generations=True
            )
        return pipeline

    with fake_api(completion) as api:
        make(2).run(progress=False, parameters={"gen": {"num_generations": 2}})
        rows = list(
            make(2).run(progress=False, parameters={"gen": {"num_generations": 4}})["default"][
                "train"
            ]
        )
    assert len(rows[0]["generation"]) == 4
    assert [r.json.get("n", 1) for r in api.requests] == [2, 2]


def test_a_cost_budget_needs_a_price_for_every_api_model() -> None:
    with fake_api(completion) as api:
        unpriced = llm(api).model_copy(update={"model": "my-finetune"})
        with pytest.raises(
            PipelineValidationError,
            match="no price is known for model 'my-finetune'",
        ):
            run_texts(unpriced, ["a"], run={"max_cost": 1.0})
        assert api.requests == []
        distiset = run_texts(
            unpriced, ["a"], run={"max_cost": 1.0, "prices": {"my-finetune": (1.0, 2.0)}}
        )
    assert distiset.llm_usage().cost == pytest.approx((10 * 1.0 + 5 * 2.0) / 1_000_000)


def test_budget_stops_new_calls_and_the_run_ends_with_what_it_has() -> None:
    calls = threading.Semaphore(0)

    def counted(request: Request) -> Reply:
        calls.release()
        return completion(request)

    with fake_api(counted) as api, Pipeline(name="budget") as pipeline:
        load = LoadDataFromDicts(data=[{"instruction": str(i)} for i in range(200)], batch_size=5)
        load >> TextGeneration(name="gen", llm=llm(api), concurrency=2)
        distiset = pipeline.run(progress=False, max_tokens=100)
    produced = len(distiset["default"]["train"])
    assert 0 < produced < 200
    assert distiset.stop_reason and "max_tokens 100" in distiset.stop_reason
    assert len(api.requests) <= produced + 2


def test_api_key_is_never_serialized_or_shown() -> None:
    client = OpenAILLM(model="m", api_key="sk-very-secret")
    assert "sk-very-secret" not in repr(client)
    assert "api_key" not in client.model_dump()
    assert "sk-very-secret" not in client.model_dump_json()


def test_missing_api_key_for_the_hosted_endpoint_is_a_clear_error(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    with Pipeline() as pipeline:
        load = LoadDataFromDicts(data=[{"instruction": "q"}])
        load >> TextGeneration(name="gen", llm=OpenAILLM(model="gpt-4o"))
    with pytest.raises(
        Exception, match=r"OpenAILLM needs an API key: pass api_key=\.\.\. or set OPENAI_API_KEY"
    ):
        pipeline.run(progress=False)


def test_run_totals_add_up_every_step() -> None:
    with fake_api(completion) as api, Pipeline(name="totals") as pipeline:
        load = LoadDataFromDicts(data=[{"instruction": "a"}, {"instruction": "b"}])
        first = TextGeneration(name="first", llm=llm(api), output_mappings={"generation": "x"})
        second = TextGeneration(name="second", llm=llm(api), input_mappings={"instruction": "x"})
        load >> first >> second
        distiset = pipeline.run(progress=False)
    total = distiset.llm_usage()
    assert (total.requests, total.input_tokens, total.output_tokens) == (4, 40, 20)
    assert total.cost == pytest.approx(2 * distiset.stats["first"].llm.cost)


def test_fanned_out_generations_with_a_fixed_seed_use_distinct_seeds() -> None:
    with fake_api(completion) as api:
        client = GroqLLM(
            model="llama", base_url=api.url, api_key="k", generation_kwargs={"seed": 7}
        )
        generate(client, n=3)
    assert sorted(r.json["seed"] for r in api.requests) == [7, 8, 9]


def test_rows_record_token_statistics_and_optionally_the_raw_response() -> None:
    from synthflow.steps.tasks import METADATA_COLUMN

    with fake_api(completion) as api:
        client = llm(api, include_raw=True)
        with Pipeline(name="metadata") as pipeline:
            load = LoadDataFromDicts(data=[{"instruction": "q"}])
            load >> TextGeneration(name="gen", llm=client, add_raw_output=True)
        first = pipeline.run(progress=False)["default"]["train"][0][METADATA_COLUMN]
        again = pipeline.run(progress=False)["default"]["train"][0][METADATA_COLUMN]
    assert first["statistics_gen"] == {"input_tokens": 10, "output_tokens": 5}
    assert first["raw_output_gen"] == "answer 0 to q"
    assert first["raw_response_gen"]["choices"][0]["message"]["content"] == "answer 0 to q"
    # Served from the cache on the second run: the same statistics, and nothing was paid.
    assert again["statistics_gen"] == first["statistics_gen"]
    assert len(api.requests) == 1
