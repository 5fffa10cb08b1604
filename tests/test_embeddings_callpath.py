"""Embedding models on the LLM call path in a run (response cache, accounting, budget), and
Hugging Face Inference Endpoints' feature extraction over real HTTP on 127.0.0.1."""

from __future__ import annotations

import threading
from typing import Any

import pytest

from synthflow.errors import LLMResponseError, PipelineValidationError
from synthflow.models import InferenceEndpointsEmbeddings
from synthflow.models.embeddings import OpenAIEmbeddings
from synthflow.pipeline import Pipeline
from synthflow.serialization import to_text
from synthflow.steps import EmbeddingGeneration, LoadDataFromDicts, StepResources
from tests.servers import Reply, Request, fake_api, sequence
from tests.test_embeddings import Lengths, client, embeddings_api, rows_of, vector_of


def embed_pipeline(name: str, texts: list[str | None], embeddings: Any, **step: Any) -> Pipeline:
    with Pipeline(name=name) as pipeline:
        load = LoadDataFromDicts(data=[{"text": t} for t in texts], batch_size=2)
        load >> EmbeddingGeneration(name="embed", embeddings=embeddings, **step)
    return pipeline


# -- cache and accounting -----------------------------------------------------------------------


def test_vectors_are_cached_per_text_and_a_rerun_pays_nothing() -> None:
    texts = ["banana", "kiwi", "banana", None, "fig"]
    with fake_api(embeddings_api) as api:
        pipeline = embed_pipeline("embed-cache", texts, client(api.url))
        first = pipeline.run(progress=False, use_cache=True)
        sent_first = [t for r in api.requests for t in r.json["input"]]
        second = pipeline.run(progress=False)

    expected = [None if t is None else vector_of(t) for t in texts]
    assert [r["embedding"] for r in rows_of(first)] == expected
    assert [r["embedding"] for r in rows_of(second)] == expected
    # Batches of two: the second "banana" comes from the cache (the first batch stored it).
    assert sent_first == ["banana", "kiwi", "fig"]
    assert len(api.requests) == 2  # nothing more on the re-run
    llm = first.stats["embed"].llm
    assert (llm.requests, llm.cache_hits, llm.failures) == (2, 1, 0)
    assert llm.input_tokens == 3  # the server's count, one token per text sent
    assert llm.cost == pytest.approx(3 * 0.02 / 1e6)  # text-embedding-3-small's list price
    again = second.stats["embed"].llm
    assert (again.requests, again.cache_hits) == (0, 4)
    assert second.llm_usage().cache_hits == 4


def test_use_cache_false_asks_every_time_and_still_counts() -> None:
    with fake_api(embeddings_api) as api:
        pipeline = embed_pipeline("embed-nocache", ["a", "a"], client(api.url), use_cache=False)
        first = pipeline.run(progress=False)
        pipeline.run(progress=False)
    assert len(api.requests) == 2
    assert first.stats["embed"].llm.requests == 1
    assert first.stats["embed"].llm.cache_hits == 0


def test_another_endpoint_or_dimensions_never_answers_from_this_cache() -> None:
    with fake_api(embeddings_api) as api:
        embed_pipeline("embed-keys", ["a"], client(api.url)).run(progress=False)
        embed_pipeline("embed-keys", ["a"], client(api.url, dimensions=2)).run(progress=False)
    assert len(api.requests) == 2


def test_retries_and_429s_count_in_the_step_stats() -> None:
    replies = iter([Reply(status=429, body={}), Reply(status=503, body={})])
    lock = threading.Lock()

    def flaky(request: Request) -> Reply:
        with lock:
            reply = next(replies, None)
        return reply or embeddings_api(request)

    with fake_api(flaky) as api:
        distiset = embed_pipeline("embed-retry", ["a"], client(api.url)).run(progress=False)
    llm = distiset.stats["embed"].llm
    assert (llm.requests, llm.retries, llm.rate_limited) == (1, 2, 1)


def test_a_local_model_counts_its_calls_and_is_not_cached() -> None:
    pipeline = embed_pipeline("embed-local-stats", ["ab", "abc", "ab"], Lengths())
    first = pipeline.run(progress=False)
    second = pipeline.run(progress=False)
    for distiset in (first, second):
        llm = distiset.stats["embed"].llm
        assert (llm.requests, llm.cache_hits, llm.cost) == (2, 0, None)
        assert [r["embedding"] for r in rows_of(distiset)] == [[2.0], [3.0], [2.0]]


def test_the_token_budget_stops_new_calls() -> None:
    texts = [f"t{i}" for i in range(10)]
    with fake_api(embeddings_api) as api:
        pipeline = embed_pipeline("embed-budget", texts, client(api.url))
        distiset = pipeline.run(progress=False, max_tokens=2)
    assert distiset.stop_reason is not None and "max_tokens" in distiset.stop_reason
    assert len(api.requests) < 5


def test_a_cost_budget_needs_the_embedding_model_price() -> None:
    pipeline = embed_pipeline(
        "embed-price", ["a"], OpenAIEmbeddings(model="my-embedder", base_url="http://x/v1")
    )
    with pytest.raises(PipelineValidationError, match="no price is known for model 'my-embedder'"):
        pipeline.run(progress=False, max_cost=1.0)


# -- Hugging Face Inference Endpoints -----------------------------------------------------------


def feature_extraction(request: Request) -> Reply:
    return Reply(body=[vector_of(t) for t in request.json["inputs"]])


def test_a_dedicated_endpoint_on_the_wire(transport: str) -> None:
    with fake_api(feature_extraction) as api:
        model = InferenceEndpointsEmbeddings(
            base_url=api.url, api_key="hf_test", normalize=True, max_inputs_per_request=2
        )
        model.load()
        vectors = model.encode(["banana", "kiwi", "fig"])

    assert vectors == [vector_of("banana"), vector_of("kiwi"), vector_of("fig")]
    assert sorted(len(r.json["inputs"]) for r in api.requests) == [1, 2]
    request = api.requests[0]
    assert request.path == "/"
    assert request.headers["authorization"] == "Bearer hf_test"
    assert request.json["normalize"] is True and "truncate" not in request.json
    assert model.model_name == api.url


def test_the_serverless_api_is_called_by_model_id(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_TOKEN", "hf_env")
    model = InferenceEndpointsEmbeddings(model_id="BAAI/bge-small-en-v1.5", truncate=True)
    wire = model._wire()
    path, payload = wire.build_request([{"role": "user", "content": "a"}], 1)
    assert wire.endpoint + path == (
        "https://api-inference.huggingface.co/models/BAAI/bge-small-en-v1.5"
    )
    assert payload == {"inputs": ["a"], "truncate": True}
    assert model.model_name == "BAAI/bge-small-en-v1.5"
    headers = wire.auth_headers(wire.resolved_api_key())
    assert headers["authorization"] == "Bearer hf_env"
    assert headers["x-wait-for-model"] == "true"


def test_token_vectors_are_refused_with_what_to_use() -> None:
    reply = Reply(body=[[[0.1, 0.2], [0.3, 0.4]]])
    with (
        fake_api(sequence(reply)) as api,
        pytest.raises(LLMResponseError, match="one vector per token"),
    ):
        InferenceEndpointsEmbeddings(base_url=api.url, max_retries=0).encode(["a"])


def test_it_needs_a_model_or_an_endpoint() -> None:
    with pytest.raises(ValueError, match=r"needs model_id=\.\.\."):
        InferenceEndpointsEmbeddings()


def test_in_a_pipeline_cached_and_saved_without_the_token() -> None:
    with fake_api(feature_extraction) as api:
        model = InferenceEndpointsEmbeddings(
            base_url=api.url, api_key="hf_secret", model_display_name="bge"
        )
        pipeline = embed_pipeline("embed-hf", ["a", "bb"], model)
        first = pipeline.run(progress=False)
        second = pipeline.run(progress=False)
    assert [r["embedding"] for r in rows_of(first)] == [vector_of("a"), vector_of("bb")]
    assert {r["model_name"] for r in rows_of(first)} == {"bge"}
    assert second.stats["embed"].llm.cache_hits == 2 and len(api.requests) == 1
    text = to_text(pipeline.dump(), "yaml")
    assert "hf_secret" not in text
    loaded = Pipeline.from_yaml(text)
    assert loaded.signature == pipeline.signature


@pytest.mark.parametrize(
    "placement",
    [{"executor": "thread", "workers": 2}, {"resources": StepResources(replicas=2)}],
    ids=["executor", "replicas"],
)
def test_on_worker_threads_the_calls_take_the_run_call_path(placement: dict[str, Any]) -> None:
    # replicas move a plain step off the loop, onto threads: its calls are cached all the same.
    with fake_api(embeddings_api) as api:
        pipeline = embed_pipeline("embed-thread", ["a", "b", "c"], client(api.url), **placement)
        first = pipeline.run(progress=False)
        sent = len(api.requests)
        second = pipeline.run(progress=False)
        assert len(api.requests) == sent == first.stats["embed"].llm.requests > 0
    assert pipeline.steps["embed"].executor == "thread"
    assert [r["embedding"] for r in rows_of(first)] == [vector_of(t) for t in "abc"]
    assert rows_of(second) == rows_of(first)
    assert first.stats["embed"].llm.input_tokens > 0
    assert second.stats["embed"].llm.cache_hits == 3
