"""Embeddings: the interface, the OpenAI-compatible HTTP client against a real server on
127.0.0.1, and the EmbeddingGeneration step in pipelines."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Any

import anyio
import anyio.lowlevel
import pytest

from synthflow.errors import LLMConnectionError, LLMResponseError, LLMStatusError, StepError
from synthflow.models.embeddings import Embeddings, OpenAIEmbeddings, Vector
from synthflow.pipeline import Pipeline
from synthflow.serialization import to_text
from synthflow.steps import EmbeddingGeneration, LoadDataFromDicts
from tests.servers import Reply, Request, fake_api, sequence


def vector_of(text: str) -> list[float]:
    return [float(len(text)), float(text.count("a")), 1.0]


def embeddings_api(request: Request, *, shuffle: bool = True) -> Reply:
    body = request.json
    items = [
        {"object": "embedding", "index": i, "embedding": vector_of(t)}
        for i, t in enumerate(body["input"])
    ]
    if shuffle:
        items.reverse()  # servers may answer out of order: "index" says which is which
    tokens = sum(len(t.split()) for t in body["input"])
    return Reply(
        body={
            "object": "list",
            "data": items,
            "model": body["model"],
            "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
        }
    )


def client(url: str, **kwargs: Any) -> OpenAIEmbeddings:
    return OpenAIEmbeddings(
        model="text-embedding-3-small",
        base_url=f"{url}/v1",
        api_key="sk-test",
        retry_backoff=0.01,
        **kwargs,
    )


def rows_of(distiset: Any) -> list[dict[str, Any]]:
    return list(distiset["default"]["train"])


# -- the interface ------------------------------------------------------------------------------


class Lengths(Embeddings):
    """A local model: blocking ``encode`` only."""

    @property
    def model_name(self) -> str:
        return "lengths"

    def encode(self, inputs: Sequence[str]) -> list[Vector]:
        return [[float(len(t))] for t in inputs]


class AsyncLengths(Embeddings):
    """An async model: ``aencode`` only."""

    @property
    def model_name(self) -> str:
        return "async-lengths"

    async def aencode(self, inputs: Sequence[str]) -> list[Vector]:
        await anyio.lowlevel.checkpoint()
        return [[float(len(t))] for t in inputs]


class Neither(Embeddings):
    @property
    def model_name(self) -> str:
        return "neither"


def test_a_blocking_model_is_awaitable_and_an_async_one_callable() -> None:
    assert anyio.run(Lengths().aencode, ["ab", "abc"]) == [[2.0], [3.0]]
    assert AsyncLengths().encode(["ab", "abc"]) == [[2.0], [3.0]]


def test_a_model_must_implement_one_of_the_two() -> None:
    with pytest.raises(TypeError, match=r"Neither must implement encode\(\) or aencode\(\)"):
        Neither().encode(["a"])
    with pytest.raises(TypeError, match="must implement"):
        anyio.run(Neither().aencode, ["a"])


def test_blocking_encode_inside_async_code_says_to_await_aencode() -> None:
    async def inside() -> None:
        AsyncLengths().encode(["a"])

    with pytest.raises(RuntimeError, match=r"use 'await aencode\(...\)' there"):
        anyio.run(inside)


# -- the HTTP client ----------------------------------------------------------------------------


def test_request_and_response_on_the_wire(transport: str) -> None:
    with fake_api(embeddings_api) as api:
        model = client(api.url, dimensions=3)
        model.load()
        vectors = model.encode(["banana", "kiwi"])

    assert vectors == [vector_of("banana"), vector_of("kiwi")]
    (request,) = api.requests
    assert request.path == "/v1/embeddings"
    assert request.headers["authorization"] == "Bearer sk-test"
    assert request.json == {
        "model": "text-embedding-3-small",
        "input": ["banana", "kiwi"],
        "encoding_format": "float",
        "dimensions": 3,
    }
    assert model.usage.input_tokens == 2
    assert model.model_name == "text-embedding-3-small"


def test_many_texts_are_split_into_requests_and_come_back_in_order() -> None:
    texts = [f"text {'a' * i}" for i in range(7)]
    with fake_api(embeddings_api) as api:
        vectors = client(api.url, max_inputs_per_request=3).encode(texts)

    assert vectors == [vector_of(t) for t in texts]
    assert sorted(len(r.json["input"]) for r in api.requests) == [1, 3, 3]


def test_no_texts_no_request() -> None:
    with fake_api(embeddings_api) as api:
        assert client(api.url).encode([]) == []
    assert api.requests == []


def test_server_errors_are_retried() -> None:
    failures = {"left": 2}
    lock = threading.Lock()

    def flaky(request: Request) -> Reply:
        with lock:
            if failures["left"]:
                failures["left"] -= 1
                return Reply(status=503, body={"error": "busy"})
        return embeddings_api(request)

    with fake_api(flaky) as api:
        assert client(api.url).encode(["a"]) == [vector_of("a")]
    assert len(api.requests) == 3


def test_a_refused_key_fails_at_once_with_the_status() -> None:
    with (
        fake_api(sequence(Reply(status=401, body={"error": "bad key"}))) as api,
        pytest.raises(LLMStatusError) as info,
    ):
        client(api.url).encode(["a"])
    assert info.value.status_code == 401 and info.value.fatal
    assert len(api.requests) == 1


def test_an_unreachable_endpoint_says_to_check_base_url() -> None:
    with fake_api(embeddings_api) as api:
        url = api.url  # the server stops when the block ends
    with pytest.raises(LLMConnectionError, match="check base_url"):
        client(url, max_retries=0).encode(["a"])


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"data": [{"index": 0, "embedding": "AAAAAA=="}]}, "not a list of numbers"),
        ({"object": "list"}, "could not read the response"),
        ({"data": []}, "returned 0 embeddings for 1 inputs"),
    ],
)
def test_unreadable_answers(body: dict[str, Any], message: str) -> None:
    with (
        fake_api(sequence(Reply(body=body))) as api,
        pytest.raises(LLMResponseError, match=message),
    ):
        client(api.url, max_retries=0).encode(["a"])


def test_the_key_comes_from_the_environment_and_is_never_written(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-env")
    with fake_api(embeddings_api) as api:
        model = OpenAIEmbeddings(model="m", base_url=f"{api.url}/v1")
        model.encode(["a"])
    assert api.requests[0].headers["authorization"] == "Bearer sk-env"
    assert "sk-test" not in str(client("http://x").model_dump())


def test_openai_itself_needs_a_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    with pytest.raises(Exception, match="needs an API key"):
        OpenAIEmbeddings(model="text-embedding-3-small").load()


# -- EmbeddingGeneration ------------------------------------------------------------------------


def test_embedding_generation_in_a_pipeline_over_http() -> None:
    data = [{"text": "banana"}, {"text": None}, {"text": "kiwi"}, {"text": "a"}]
    with fake_api(embeddings_api) as api:
        with Pipeline(name="embed") as pipeline:
            load = LoadDataFromDicts(data=data)
            load >> EmbeddingGeneration(name="embed", embeddings=client(api.url))
        rows = rows_of(pipeline.run(progress=False))

    assert [r["embedding"] for r in rows] == [
        vector_of("banana"),
        None,
        vector_of("kiwi"),
        vector_of("a"),
    ]
    assert {r["model_name"] for r in rows} == {"text-embedding-3-small"}
    (request,) = api.requests  # one batch, one request, the null text left out
    assert request.json["input"] == ["banana", "kiwi", "a"]


@pytest.mark.parametrize("executor", ["loop", "thread"])
def test_embedding_generation_with_a_local_model(executor: str) -> None:
    with Pipeline(name="embed-local") as pipeline:
        load = LoadDataFromDicts(data=[{"text": "x" * i} for i in range(5)], batch_size=2)
        load >> EmbeddingGeneration(
            name="embed", embeddings=Lengths(), executor=executor, input_batch_size=2
        )
    rows = rows_of(pipeline.run(progress=False))
    assert [r["embedding"] for r in rows] == [[float(i)] for i in range(5)]
    assert {r["model_name"] for r in rows} == {"lengths"}


def test_embedding_generation_columns_and_standalone_use() -> None:
    step = EmbeddingGeneration(embeddings=AsyncLengths())
    assert (step.inputs, step.outputs) == (["text"], ["embedding", "model_name"])
    step.load()

    async def run() -> list[dict[str, Any]]:
        return [r async for batch in step.process([{"text": "abc"}, {"text": None}]) for r in batch]

    out = anyio.run(run)
    assert out == [
        {"text": "abc", "embedding": [3.0], "model_name": "async-lengths"},
        {"text": None, "embedding": None, "model_name": "async-lengths"},
    ]


def test_a_text_that_is_not_a_string_fails_the_step_with_a_clear_message() -> None:
    with Pipeline(name="embed-bad") as pipeline:
        load = LoadDataFromDicts(data=[{"text": 3}])
        load >> EmbeddingGeneration(name="embed", embeddings=Lengths())
    with pytest.raises(StepError, match="'text' must be a string, got int"):
        pipeline.run(progress=False)


def test_round_trips_through_yaml_without_the_key() -> None:
    with Pipeline(name="embed-yaml") as pipeline:
        load = LoadDataFromDicts(data=[{"text": "a"}])
        load >> EmbeddingGeneration(
            name="embed", embeddings=client("http://127.0.0.1:9", dimensions=64)
        )

    text = to_text(pipeline.dump(), "yaml")
    assert "sk-test" not in text
    loaded = Pipeline.from_yaml(text)
    assert loaded.signature == pipeline.signature
    step = loaded.steps["embed"]
    assert isinstance(step, EmbeddingGeneration)
    assert isinstance(step.embeddings, OpenAIEmbeddings)
    assert step.embeddings.dimensions == 64 and step.embeddings.api_key is None
