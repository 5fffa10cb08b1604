"""PairRM against a stand-in ``llm_blender`` package written here (llm-blender 0.0.2 does not
import with transformers 5, which CI installs). The stand-in ranks as ``Blender.rank`` does:
a rank per candidate, 1 for the best; here the best shares the most words with the input."""

from __future__ import annotations

import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

from synthflow.pipeline import Pipeline
from synthflow.serialization import to_text
from synthflow.steps import LoadDataFromDicts
from synthflow.steps.tasks import PairRM

STAND_IN = '''
"""A stand-in for llm_blender: Blender().loadranker(path), then rank(...)."""
import numpy as np

class Blender:
    def loadranker(self, ranker_path, device=None, **kwargs):
        if ranker_path == "missing/ranker":
            raise FileNotFoundError(f"Checkpoint {ranker_path!r} does not exist")
        self.path = ranker_path

    def rank(self, inputs, candidates, instructions=None, return_scores=False, batch_size=8,
             disable_tqdm=False, **kwargs):
        ranks = []
        for i, (text, cands) in enumerate(zip(inputs, candidates)):
            words = set(text.split())
            scores = [len(words & set(c.split())) - len(c) / 1000 for c in cands]
            if instructions is not None and "worst" in instructions[i]:
                scores = [-s for s in scores]
            order = sorted(range(len(cands)), key=lambda j: -scores[j])
            row = [0] * len(cands)
            for position, j in enumerate(order):
                row[j] = position + 1
            ranks.append(row)
        return np.array(ranks)
'''

ROWS: list[dict[str, Any]] = [
    {"input": "the red cat", "candidates": ["a dog", "the red cat", "the cat"]},
    {"input": "say hi", "candidates": ["hi", "say hi there", "no"]},
]


@pytest.fixture
def stand_in(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """``llm_blender`` importable here and in worker processes (they get this sys.path)."""
    pytest.importorskip("numpy")
    package = tmp_path / "stand_in" / "llm_blender"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text(textwrap.dedent(STAND_IN))
    monkeypatch.syspath_prepend(str(package.parent))
    monkeypatch.delitem(sys.modules, "llm_blender", raising=False)


def test_without_llm_blender_load_says_what_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "llm_blender", None)
    with pytest.raises(ImportError, match=r"pip install 'synthflow\[pair-rm\]'"):
        PairRM().load()


def test_an_llm_blender_that_does_not_import_says_why(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    package = tmp_path / "broken" / "llm_blender"
    package.mkdir(parents=True)
    # What llm-blender 0.0.2 raises under transformers 5.
    (package / "__init__.py").write_text(
        "raise ImportError(\"cannot import name 'TRANSFORMERS_CACHE' from "
        "'transformers.utils.hub'\")\n"
    )
    monkeypatch.syspath_prepend(str(package.parent))
    monkeypatch.delitem(sys.modules, "llm_blender", raising=False)
    with pytest.raises(ImportError, match=r"needs transformers 4: pip install 'transformers<5'"):
        PairRM().load()


def test_standalone_ranks_and_ranked_candidates(stand_in: None) -> None:
    step = PairRM()
    step.load()
    out = next(step.process([dict(r) for r in ROWS]))
    assert out[0]["ranks"] == [3, 1, 2]
    assert out[0]["ranked_candidates"] == ["the red cat", "the cat", "a dog"]
    assert out[1]["ranks"] == [2, 1, 3]
    assert out[1]["ranked_candidates"] == ["say hi there", "hi", "no"]
    assert {r["model_name"] for r in out} == {"llm-blender/PairRM"}
    assert out[0]["candidates"] == ROWS[0]["candidates"]  # the candidates column is unchanged


def test_instructions_reach_the_ranker(stand_in: None) -> None:
    step = PairRM(instructions="rank the worst first")
    step.load()
    out = next(step.process([dict(ROWS[0])]))
    assert out[0]["ranks"] == [1, 3, 2]


def test_null_inputs_get_null_outputs_and_bad_ones_a_one_line_error(stand_in: None) -> None:
    step = PairRM()
    step.load()
    out = next(step.process([{"input": None, "candidates": ["a"]}, dict(ROWS[0])]))
    assert (out[0]["ranks"], out[0]["ranked_candidates"]) == (None, None)
    assert out[1]["ranks"] == [3, 1, 2]
    with pytest.raises(TypeError, match="'candidates' must be a non-empty list of strings"):
        next(step.process([{"input": "hi", "candidates": "hi"}]))
    with pytest.raises(TypeError, match="'input' must be a string, got int"):
        next(step.process([{"input": 1, "candidates": ["hi"]}]))


def test_processing_before_load_is_a_one_line_error() -> None:
    with pytest.raises(RuntimeError, match=r"call load\(\) first"):
        next(PairRM().process([dict(ROWS[0])]))


def test_the_step_round_trips_through_yaml() -> None:
    with Pipeline(name="rank") as pipeline:
        LoadDataFromDicts(data=ROWS) >> PairRM(name="rank", model="my/ranker", instructions="x")
    loaded = Pipeline.from_yaml(to_text(pipeline.dump(), "yaml"))
    step = loaded.steps["rank"]
    assert isinstance(step, PairRM) and (step.model, step.instructions) == ("my/ranker", "x")
    assert loaded.signature == pipeline.signature


@pytest.mark.timeout(120)
def test_in_a_process_pool_pipeline(stand_in: None) -> None:
    with Pipeline(name="rank") as pipeline:
        load = LoadDataFromDicts(data=[{"instruction": r["input"], **r} for r in ROWS])
        load >> PairRM(
            executor="process",
            input_mappings={"input": "instruction", "candidates": "candidates"},
            output_mappings={"ranks": "pair_rm_ranks"},
        )
    out = list(pipeline.run(use_cache=False)["default"]["train"])
    assert [r["pair_rm_ranks"] for r in out] == [[3, 1, 2], [2, 1, 3]]
    assert out[0]["ranked_candidates"][0] == "the red cat"


def test_a_ranker_that_fails_to_load_fails_the_run_with_its_reason(stand_in: None) -> None:
    with Pipeline(name="rank") as pipeline:
        LoadDataFromDicts(data=ROWS) >> PairRM(model="missing/ranker")
    with pytest.raises(FileNotFoundError, match="does not exist"):
        pipeline.run(use_cache=False)
