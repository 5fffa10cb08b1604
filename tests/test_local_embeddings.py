"""vLLMEmbeddings and LlamaCppEmbeddings against stand-in ``vllm`` and ``llama_cpp`` modules.

Neither library can run here (no GPU, no GGUF file), so the stand-ins, written to a directory
put on ``sys.path`` (which the spawned worker processes inherit), check synthflow's side: the
arguments the model is built with, how vectors are read, and the step in a pipeline, in this
process and in the process pool.
"""

from __future__ import annotations

import pickle
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from synthflow.models import LlamaCppEmbeddings, vLLMEmbeddings
from synthflow.models.embeddings import Embeddings
from synthflow.pipeline import Pipeline
from synthflow.serialization import to_text
from synthflow.steps import EmbeddingGeneration, LoadDataFromDicts

VLLM = """
from types import SimpleNamespace

built = []


class LLM:
    def __init__(self, model, **kwargs):
        self.model, self.kwargs = model, kwargs
        built.append(self)

    def embed(self, prompts, use_tqdm=True):
        assert use_tqdm is False
        seed = float(self.kwargs["seed"])
        return [
            SimpleNamespace(outputs=SimpleNamespace(embedding=[float(len(p)), seed]))
            for p in prompts
        ]
"""

LLAMA_CPP = """
built = []


class Llama:
    def __init__(self, **kwargs):
        self.kwargs = kwargs
        self.closed = False
        built.append(self)

    @classmethod
    def from_pretrained(cls, repo_id, filename, **kwargs):
        return cls(repo_id=repo_id, filename=filename, **kwargs)

    def embed(self, inputs, normalize=False):
        scale = 0.5 if normalize else 1.0
        return [[len(text) * scale, float(self.kwargs["n_ctx"])] for text in inputs]

    def close(self):
        self.closed = True
"""


@pytest.fixture
def stand_ins(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    root = tmp_path / "stand_ins"
    for name, source in {"vllm": VLLM, "llama_cpp": LLAMA_CPP}.items():
        (root / name).mkdir(parents=True)
        (root / name / "__init__.py").write_text(textwrap.dedent(source))
    monkeypatch.syspath_prepend(str(root))
    for name in ("vllm", "llama_cpp"):
        monkeypatch.delitem(sys.modules, name, raising=False)
    yield root
    for name in ("vllm", "llama_cpp"):
        sys.modules.pop(name, None)


def embed_texts(embeddings: Embeddings, executor: str) -> list[dict[str, Any]]:
    with Pipeline(name=f"local-embed-{type(embeddings).__name__}-{executor}") as pipeline:
        load = LoadDataFromDicts(data=[{"text": "a" * i} for i in range(1, 6)], batch_size=2)
        load >> EmbeddingGeneration(
            name="embed", embeddings=embeddings, executor=executor, input_batch_size=2
        )
    return list(pipeline.run(progress=False, use_cache=False)["default"]["train"])


def test_vllm_embeddings_builds_the_engine_and_reads_its_vectors(stand_ins: Path) -> None:
    model = vLLMEmbeddings(
        model="intfloat/e5-mistral-7b-instruct", seed=7, extra_kwargs={"task": "embed"}
    )
    model.load()
    import vllm  # the stand-in

    (engine,) = vllm.built
    assert engine.model == "intfloat/e5-mistral-7b-instruct"
    assert engine.kwargs == {
        "dtype": "auto",
        "trust_remote_code": False,
        "quantization": None,
        "revision": None,
        "enforce_eager": True,
        "seed": 7,
        "task": "embed",
    }
    assert model.encode(["ab", "abc"]) == [[2.0, 7.0], [3.0, 7.0]]
    model.load()  # once loaded, stays loaded
    assert len(vllm.built) == 1
    model.unload()
    assert not model.loaded


def test_llama_cpp_embeddings_opens_the_file_or_the_hub_repo(stand_ins: Path) -> None:
    local = LlamaCppEmbeddings(model="m.gguf", model_path="/models", normalize_embeddings=True)
    local.load()
    import llama_cpp  # the stand-in

    first = llama_cpp.built[0]
    assert first.kwargs == {
        "model_path": str(Path("/models") / "m.gguf"),
        "n_gpu_layers": -1,
        "seed": 4294967295,
        "n_ctx": 512,
        "n_batch": 512,
        "verbose": False,
        "embedding": True,
    }
    assert local.encode(["abcd"]) == [[2.0, 512.0]]
    local.unload()
    assert first.closed

    hub = LlamaCppEmbeddings(model="m.gguf", repo_id="org/gguf", n_ctx=64)
    hub.load()
    assert llama_cpp.built[1].kwargs["repo_id"] == "org/gguf"
    assert llama_cpp.built[1].kwargs["filename"] == "m.gguf"
    assert hub.encode(["ab"]) == [[2.0, 64.0]]


def test_llama_cpp_embeddings_needs_a_path_or_a_repo(stand_ins: Path) -> None:
    with pytest.raises(ValueError, match=r"needs model_path=.* or repo_id="):
        LlamaCppEmbeddings(model="m.gguf").load()


def test_a_missing_library_says_what_to_install() -> None:
    with pytest.raises(ImportError, match=r"pip install 'synthflow\[vllm\]'"):
        vLLMEmbeddings(model="m").load()
    with pytest.raises(ImportError, match=r"pip install 'synthflow\[llama-cpp\]'"):
        LlamaCppEmbeddings(model="m.gguf", model_path="/x").load()


def test_encoding_before_load_says_to_load() -> None:
    with pytest.raises(RuntimeError, match=r"not loaded: call load\(\) first"):
        vLLMEmbeddings(model="m").encode(["a"])


def test_a_loaded_model_pickles_unloaded(stand_ins: Path) -> None:
    model = vLLMEmbeddings(model="m")
    model.load()
    copy = pickle.loads(pickle.dumps(model))
    assert model.loaded and not copy.loaded


@pytest.mark.parametrize("executor", ["loop", "process"])
def test_embedding_generation_with_each_in_a_pipeline(stand_ins: Path, executor: str) -> None:
    expected = [[float(i), 3.0] for i in range(1, 6)]
    rows = embed_texts(vLLMEmbeddings(model="m", seed=3), executor)
    assert [r["embedding"] for r in rows] == expected
    assert {r["model_name"] for r in rows} == {"m"}
    rows = embed_texts(LlamaCppEmbeddings(model="f.gguf", model_path="/m", n_ctx=3), executor)
    assert [r["embedding"] for r in rows] == expected
    assert {r["model_name"] for r in rows} == {"f.gguf"}


def test_round_trip_through_yaml() -> None:
    for embeddings in (
        vLLMEmbeddings(model="m", dtype="float16"),
        LlamaCppEmbeddings(model="f.gguf", repo_id="org/r"),
    ):
        with Pipeline(name="local-embed-yaml") as pipeline:
            load = LoadDataFromDicts(data=[{"text": "a"}])
            load >> EmbeddingGeneration(name="embed", embeddings=embeddings)
        loaded = Pipeline.from_yaml(to_text(pipeline.dump(), "yaml"))
        assert loaded.signature == pipeline.signature
        step = loaded.steps["embed"]
        assert isinstance(step, EmbeddingGeneration)
        assert type(step.embeddings) is type(embeddings)
        assert step.embeddings.model_dump() == embeddings.model_dump()
