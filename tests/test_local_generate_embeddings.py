"""GenerateEmbeddings over TransformersLLM with a tiny Llama built here (no download).
Needs ``pip install torch transformers`` (skipped without them)."""

from __future__ import annotations

from typing import Any

import pytest

from synthflow.models.embeddings.hidden_states import last_hidden_states
from synthflow.models.llms.local.transformers import TransformersLLM
from synthflow.pipeline import Pipeline
from synthflow.serialization import to_text
from synthflow.steps import LoadDataFromDicts
from synthflow.steps.tasks import GenerateEmbeddings
from synthflow.testing import OfflineLLM

TEXTS = ["hello world", "the cat say hi", "a red dog"]
HIDDEN_SIZE = 16


def test_an_llm_without_hidden_states_is_a_one_line_error() -> None:
    step = GenerateEmbeddings(llm=OfflineLLM())
    step.load()
    with pytest.raises(TypeError, match="OfflineLLM does not expose its hidden states"):
        next(step.process([{"text": "hello"}]))


def test_an_llm_that_defines_get_last_hidden_states_is_used() -> None:
    np = pytest.importorskip("numpy")

    class StatesLLM(OfflineLLM):
        def get_last_hidden_states(self, conversations: list[Any]) -> list[Any]:
            return [np.array([[1.0, 2.0], [3.0, 4.0 + len(c)]]) for c in conversations]

    step = GenerateEmbeddings(llm=StatesLLM())
    out = next(step.process([{"text": "hi"}, {"text": None}]))
    assert out[0]["embedding"] == [2.0, 3.5]
    assert out[1]["embedding"] is None
    step.pooling = "last"
    assert next(step.process([{"text": "hi"}]))[0]["embedding"] == [3.0, 5.0]


def test_a_bad_text_is_a_one_line_error() -> None:
    step = GenerateEmbeddings(llm=OfflineLLM())
    with pytest.raises(TypeError, match="'text' must be a string or a list of"):
        next(step.process([{"text": 3}]))


def test_the_step_round_trips_through_yaml() -> None:
    with Pipeline(name="emb") as pipeline:
        LoadDataFromDicts(data=[{"text": "a"}]) >> GenerateEmbeddings(
            name="emb", llm=TransformersLLM(model="some/model", device="cpu"), pooling="last"
        )
    loaded = Pipeline.from_yaml(to_text(pipeline.dump(), "yaml"))
    step = loaded.steps["emb"]
    assert isinstance(step, GenerateEmbeddings) and step.pooling == "last"
    assert isinstance(step.llm, TransformersLLM) and step.llm.model == "some/model"
    assert loaded.signature == pipeline.signature


# -- with the tiny model ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> str:
    pytest.importorskip("torch")
    pytest.importorskip("transformers")
    from tests.tiny_models import save_tiny_causal_lm

    return save_tiny_causal_lm(tmp_path_factory.mktemp("tiny-llama"))


@pytest.fixture(autouse=True)
def _offline(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")


@pytest.fixture
def step(tiny_model: str) -> GenerateEmbeddings:
    step = GenerateEmbeddings(llm=TransformersLLM(model=tiny_model, device="cpu"))
    step.load()
    return step


def embeddings_of(step: GenerateEmbeddings, rows: list[dict[str, Any]]) -> list[Any]:
    return [row["embedding"] for row in next(step.process([dict(r) for r in rows]))]


def test_hidden_states_are_one_row_per_prompt_token(step: GenerateEmbeddings) -> None:
    conversations = [[{"role": "user", "content": t}] for t in TEXTS]
    states = last_hidden_states(step.llm, conversations)
    # "<s>User: <words>\n\nAssistant:" is the plain template: 3 tokens + the words.
    assert [s.shape for s in states] == [(3 + len(t.split()), HIDDEN_SIZE) for t in TEXTS]


def test_standalone_mean_pooled_vectors_match_one_at_a_time(step: GenerateEmbeddings) -> None:
    rows = [{"text": t} for t in TEXTS]
    out = next(step.process([dict(r) for r in rows]))
    assert all(len(r["embedding"]) == HIDDEN_SIZE for r in out)
    assert {r["model_name"] for r in out} == {step.llm.model_name}
    singles = [embeddings_of(step, [row])[0] for row in rows]
    for batched, single in zip((r["embedding"] for r in out), singles, strict=True):
        assert batched == pytest.approx(single, abs=1e-5)  # padding changes nothing
    states = last_hidden_states(step.llm, [[{"role": "user", "content": TEXTS[0]}]])
    assert out[0]["embedding"] == pytest.approx(states[0].mean(axis=0).tolist(), abs=1e-6)


def test_a_conversation_embeds_as_its_text(step: GenerateEmbeddings) -> None:
    conversation = [{"role": "user", "content": TEXTS[1]}]
    [as_text, as_chat, null] = embeddings_of(
        step, [{"text": TEXTS[1]}, {"text": conversation}, {"text": None}]
    )
    assert as_text == pytest.approx(as_chat)
    assert null is None


def test_last_token_pooling(step: GenerateEmbeddings) -> None:
    step.pooling = "last"
    [vector] = embeddings_of(step, [{"text": TEXTS[0]}])
    states = last_hidden_states(step.llm, [[{"role": "user", "content": TEXTS[0]}]])
    assert vector == pytest.approx(states[0][-1].tolist(), abs=1e-6)


@pytest.mark.timeout(180)  # a worker process imports torch and transformers
def test_in_a_process_pool_pipeline_matches_standalone(
    tiny_model: str, step: GenerateEmbeddings
) -> None:
    rows: list[dict[str, Any]] = [{"text": t} for t in TEXTS]
    with Pipeline(name="emb") as pipeline:
        LoadDataFromDicts(data=rows) >> GenerateEmbeddings(
            llm=TransformersLLM(model=tiny_model, device="cpu"),
            executor="process",
            output_mappings={"embedding": "vector"},
        )
    out = list(pipeline.run(use_cache=False)["default"]["train"])
    expected = embeddings_of(step, rows)
    assert [r["text"] for r in out] == TEXTS
    for row, vector in zip(out, expected, strict=True):
        assert row["vector"] == pytest.approx(vector, abs=1e-5)
        assert row["model_name"] == tiny_model
