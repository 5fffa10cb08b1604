"""MixtureOfAgentsLLM: proposers in rounds, then the aggregator, over real HTTP; and the
distilabel base names (AsyncLLM, CudaDevicePlacementMixin, MlxLLM without mlx)."""

from __future__ import annotations

import importlib.util
from typing import Any

import pytest

from synthflow.models import (
    LLM,
    AsyncLLM,
    CudaDevicePlacementMixin,
    MixtureOfAgentsLLM,
    MlxLLM,
    OpenAILLM,
)
from synthflow.models.llms.moa import AGGREGATE_PROMPT, with_references
from synthflow.pipeline import Pipeline
from synthflow.serialization import to_text
from synthflow.steps import LoadDataFromDicts
from synthflow.steps.tasks import ERROR_COLUMN, TextGeneration
from synthflow.testing import FunctionLLM
from tests.servers import Reply, Request, fake_api
from tests.servers.chat import completion


def models_server(fail: set[str] = frozenset()) -> Any:
    """Answers as the requested model: ``<model> says <n references>``; models in ``fail``
    answer 500."""

    def handler(request: Request) -> Reply:
        body = request.json
        model = body["model"]
        if model in fail:
            return Reply(status=500, body={"error": {"message": "down"}})
        system = next((m["content"] for m in body["messages"] if m["role"] == "system"), "")
        references = system.count("\n\n") - AGGREGATE_PROMPT.count("\n\n") if system else 0
        reply = completion(request)
        reply.body["choices"][0]["message"]["content"] = f"{model} says {references}"
        return reply

    return handler


def moa(url: str, rounds: int = 1) -> MixtureOfAgentsLLM:
    def client(model: str) -> OpenAILLM:
        return OpenAILLM(model=model, base_url=url, api_key="k", max_retries=0)

    return MixtureOfAgentsLLM(
        aggregator_llm=client("big"),
        proposers_llms=[client("small-a"), client("small-b")],
        rounds=rounds,
    )


def test_references_go_in_the_system_message() -> None:
    asked = [{"role": "user", "content": "Why is the sky blue?"}]
    assert with_references(asked, []) == asked
    [system, user] = with_references(asked, ["Rayleigh.", "Dust."])
    assert system == {
        "role": "system",
        "content": f"{AGGREGATE_PROMPT}\n\n1. Rayleigh.\n\n2. Dust.",
    }
    assert user == asked[0]
    own = [{"role": "system", "content": "Be brief."}, *asked]
    merged = with_references(own, ["Rayleigh."])[0]["content"]
    assert merged == f"Be brief.\n\n{AGGREGATE_PROMPT}\n\n1. Rayleigh."


def test_rounds_of_proposals_then_the_aggregator_in_a_pipeline(transport: str) -> None:
    with fake_api(models_server()) as api:
        with Pipeline(name="moa") as pipeline:
            load = LoadDataFromDicts(data=[{"instruction": "Why is the sky blue?"}])
            load >> TextGeneration(name="answer", llm=moa(api.url, rounds=2))
        rows = list(pipeline.run(progress=False)["default"]["train"])
    [row] = rows
    assert row["generation"] == "big says 2"
    assert row["model_name"] == "moa-big-small-a-small-b"
    by_model: dict[str, list[int]] = {}
    for request in api.requests:
        system = [m for m in request.json["messages"] if m["role"] == "system"]
        by_model.setdefault(request.json["model"], []).append(len(system))
    # Round 1 proposers see no references, round 2 see round 1's; the aggregator sees round 2's.
    assert sorted(by_model["small-a"]) == [0, 1] and sorted(by_model["small-b"]) == [0, 1]
    assert by_model["big"] == [1]
    assert row["synthflow_metadata"]["statistics_answer"]["input_tokens"] == 50  # 5 calls x 10


def test_a_failed_proposer_is_left_out_and_all_failing_fail_the_row() -> None:
    with fake_api(models_server(fail={"small-b"})) as api:
        llm = moa(api.url)
        llm.load()
        [output] = llm.generate([[{"role": "user", "content": "Hi"}]])
    assert output["generations"] == ["big says 1"]

    with fake_api(models_server(fail={"small-a", "small-b"})) as api:
        task = TextGeneration(name="t", llm=moa(api.url))
        task.load()
        [row] = next(task.process([{"instruction": "Hi"}]))
    assert row["generation"] is None
    assert "answered 500" in row[ERROR_COLUMN]


def test_the_mixture_saves_and_loads_with_its_llms() -> None:
    with Pipeline(name="moa-yaml") as pipeline:
        load = LoadDataFromDicts(data=[{"instruction": "q"}])
        load >> TextGeneration(name="t", llm=moa("http://127.0.0.1:9", rounds=3))
    loaded = Pipeline.from_yaml(to_text(pipeline.dump(), "yaml"))
    assert loaded.signature == pipeline.signature
    llm = loaded.steps["t"].llm
    assert isinstance(llm, MixtureOfAgentsLLM) and llm.rounds == 3
    assert [p.model_name for p in llm.proposers_llms] == ["small-a", "small-b"]


def test_the_cache_key_changes_with_any_member() -> None:
    one = moa("http://127.0.0.1:9")
    other = moa("http://127.0.0.1:9", rounds=2)
    assert one.cache_identity() != other.cache_identity()
    changed = one.model_copy(update={"proposers_llms": [FunctionLLM(fn=str)]})
    assert changed.cache_identity() != one.cache_identity()


def test_distilabel_base_names() -> None:
    assert AsyncLLM is LLM

    class Placed(FunctionLLM, CudaDevicePlacementMixin):
        """A user's LLM that lists distilabel's mixin."""

    placed = Placed(fn=lambda messages: "hi")
    assert placed.generate([[{"role": "user", "content": "x"}]])[0]["generations"] == ["hi"]


@pytest.mark.skipif(importlib.util.find_spec("mlx_lm") is not None, reason="mlx-lm installed")
def test_mlx_without_mlx_says_what_to_install() -> None:
    llm = MlxLLM(path_or_hf_repo="mlx-community/Llama-3.2-1B-Instruct-4bit")
    with pytest.raises(ImportError, match=r"pip install 'synthflow\[mlx\]'"):
        llm.load()
