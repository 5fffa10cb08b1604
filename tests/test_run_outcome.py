"""How a run ends: parts that disagree on types, a full disk, failed rows and exit codes."""

from __future__ import annotations

from typing import Any

import pytest

from synthflow.pipeline import Pipeline, _sink
from synthflow.steps import LoadDataFromDicts
from synthflow.steps.tasks import TextGeneration
from synthflow.testing import FunctionLLM


def answer_unless(failing: set[str]) -> FunctionLLM:
    """An LLM that fails the rows whose instruction is in ``failing`` and answers the rest."""

    def fn(messages: list[dict[str, Any]]) -> str:
        prompt = messages[-1]["content"]
        if prompt in failing:
            raise RuntimeError(f"no answer for {prompt}")
        return f"answer to {prompt}"

    return FunctionLLM(fn=fn)


def test_parts_that_disagree_on_a_column_type_join_into_one_dataset(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The first rows fail (their `generation` is null), the later ones succeed (text): parts of
    # two rows each hold `generation` as null in some and as text in others.
    monkeypatch.setattr(_sink, "PART_ROWS", 2)
    prompts = [f"q{i}" for i in range(8)]
    with Pipeline(name="mixed-parts") as pipeline:
        load = LoadDataFromDicts(data=[{"instruction": p} for p in prompts], batch_size=2)
        llm = answer_unless(set(prompts[:4]))
        load >> TextGeneration(name="gen", llm=llm, on_error="null", concurrency=1)
    distiset = pipeline.run(progress=False)

    parts = sorted((pipeline.run_dir / "data" / "gen").glob("part-*.arrow"))
    assert len(parts) > 1
    rows = distiset["default"]["train"]
    assert rows["generation"] == [None] * 4 + [f"answer to {p}" for p in prompts[4:]]
    assert [e is not None for e in rows["synthflow_error"]] == [True] * 4 + [False] * 4
