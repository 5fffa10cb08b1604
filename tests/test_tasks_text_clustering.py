"""TextClustering: one LLM call per cluster names it; every row gets its cluster's labels."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest

from synthflow.checks import StepSpec, parametrize_with_checks
from synthflow.llms.base import ChatType
from synthflow.pipeline import Pipeline
from synthflow.steps import LoadDataFromDicts
from synthflow.steps.tasks import TextClustering
from synthflow.testing import FunctionLLM

ROWS = [
    {"text": "apple pie", "projection": [0.0, 0.0], "cluster_label": 0},
    {"text": "a red car", "projection": [5.0, 5.0], "cluster_label": 1},
    {"text": "banana bread", "projection": [0.1, 0.0], "cluster_label": 0},
    {"text": "lorem", "projection": [9.0, 0.0], "cluster_label": -1},
    {"text": "a fast truck", "projection": [5.1, 5.0], "cluster_label": 1},
]


def topic(messages: ChatType) -> str:
    prompt = str(messages[-1]["content"])
    return '{"labels": "Food"}' if "apple" in prompt else '```json\n{"labels": "Vehicles"}\n```'


def prompts_of(calls: list[ChatType]) -> list[str]:
    return [str(messages[-1]["content"]) for messages in calls]


def recording(answer: Callable[[ChatType], str | None]) -> tuple[FunctionLLM, list[ChatType]]:
    calls: list[ChatType] = []

    def fn(messages: ChatType) -> str | None:
        calls.append(messages)
        return answer(messages)

    return FunctionLLM(fn=fn), calls


def test_each_cluster_is_named_once_in_a_pipeline() -> None:
    llm, calls = recording(topic)
    with Pipeline(name="clusters") as pipeline:
        load = LoadDataFromDicts(name="load", data=ROWS, batch_size=2)
        label = TextClustering(name="label", llm=llm, samples_per_cluster=5)
        load >> label
    rows = pipeline.run(progress=False, use_cache=False)["default"]["train"].to_list()

    by_text = {row["text"]: row for row in rows}
    assert [by_text[r["text"]]["summary_label"] for r in ROWS] == [
        '"Food"',
        '"Vehicles"',
        '"Food"',
        '"Unclassified"',
        '"Vehicles"',
    ]
    assert {row["model_name"] for row in rows} == {llm.model_name}
    assert len(calls) == 2  # one per cluster, none for the rows in no cluster
    food = next(p for p in prompts_of(calls) if "apple" in p)
    assert "Example 1:\napple pie" in food and "Example 2:\nbanana bread" in food


def test_n_labels_and_samples_per_cluster() -> None:
    llm, calls = recording(lambda messages: '{"labels": ["Cooking", "Baking"]}')
    rows = [{"text": f"cake {i}", "projection": [0, 0], "cluster_label": 0} for i in range(30)]
    task = TextClustering(llm=llm, n=2, samples_per_cluster=4, default_label="None")
    task.load()
    out = next(task.process(rows))

    assert {row["summary_label"] for row in out} == {json.dumps(["Cooking", "Baking"])}
    (prompt,) = prompts_of(calls)
    assert prompt.count("Example ") == 4
    assert "Give a list of the 2 labels" in prompt


def test_the_examples_drawn_are_the_same_on_every_run() -> None:
    rows = [{"text": f"t{i}", "projection": [0, 0], "cluster_label": 3} for i in range(50)]
    seen = []
    for _ in range(2):
        llm, calls = recording(lambda messages: '{"labels": "x"}')
        task = TextClustering(llm=llm)
        task.load()
        next(task.process([dict(r) for r in rows]))
        seen.append(prompts_of(calls))
    assert seen[0] == seen[1]


def test_an_unreadable_answer_nulls_that_cluster_only() -> None:
    def answer(messages: ChatType) -> str:
        return "I can't say." if "apple" in str(messages[-1]["content"]) else '{"labels": "Cars"}'

    # Without the default schema: FunctionLLM would hold answers to it and re-ask, and this
    # checks the task's own parser.
    task = TextClustering(llm=FunctionLLM(fn=answer), use_default_structured_output=False)
    task.load()
    out = {row["text"]: row for row in next(task.process([dict(r) for r in ROWS]))}

    assert out["apple pie"]["summary_label"] is None
    assert "cluster 0: OutputParseError" in out["apple pie"]["synthflow_error"]
    assert out["a red car"]["summary_label"] == '"Cars"'
    assert "synthflow_error" not in out["a red car"]


def test_a_cluster_label_that_is_not_an_int_gets_one_line() -> None:
    task = TextClustering(llm=FunctionLLM(fn=topic))
    task.load()
    with pytest.raises(ValueError, match="column 'cluster_label' must hold an int"):
        next(task.process([{"text": "a", "projection": [0], "cluster_label": "0"}]))


def test_a_distilabel_pipeline_yaml_field_savefig_is_accepted() -> None:
    task = TextClustering(llm=FunctionLLM(fn=topic), savefig=True, query_title="Personas")
    assert task.savefig is True and task.query_title == "Personas"


SPEC_ROWS: list[dict[str, Any]] = [dict(row) for row in ROWS]


@parametrize_with_checks([StepSpec(TextClustering, rows=SPEC_ROWS, answer=topic)])
def test_conformance(spec: StepSpec, check: Callable[[StepSpec], None]) -> None:
    check(spec)
