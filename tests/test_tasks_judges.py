"""What every judge and scorer promises, checked on each: built from its defaults and an LLM,
columns as declared, an answer it can't read is a row failure (never an exception out of the
run), and a docstring that documents its columns and cites its paper."""

from __future__ import annotations

from typing import Any

import pytest

from synthflow.pipeline import Pipeline
from synthflow.steps import LoadDataFromDicts
from synthflow.steps.tasks import (
    ERROR_COLUMN,
    METADATA_COLUMN,
    ComplexityScorer,
    PrometheusEval,
    QualityScorer,
    Task,
    UltraFeedback,
)
from synthflow.testing import FunctionLLM, OfflineLLM

ROW = {
    "instruction": "q",
    "instructions": ["a", "b"],
    "generation": "g",
    "generations": ["g1", "g2"],
    "responses": ["r1", "r2"],
    "reference": "ref",
}

# An answer each judge can read for ROW, and the paper it must cite.
CASES: list[tuple[type[Task], dict[str, Any], str, str]] = [
    (
        UltraFeedback,
        {},
        "Text 1:\nRating: 4\nRationale: a\n\nText 2:\nRating: 2\nRationale: b",
        "2310.01377",
    ),
    (
        UltraFeedback,
        {"aspect": "helpfulness"},
        "Text 1:\nType: 1\nRationale: a\nRating: 4\nRationale: b\n\n"
        "Text 2:\nType: None\nRationale: c\nRating: 2\nRationale: d",
        "2310.01377",
    ),
    (ComplexityScorer, {}, "[1] Score: 1\n[2] Score: 3", "2312.15685"),
    (QualityScorer, {}, "[1] Score: 5\n[2] Score: 3", "2312.15685"),
    (PrometheusEval, {}, "Feedback: fine. [RESULT] 4", "2405.01535"),
    (
        PrometheusEval,
        {"mode": "relative", "reference": True},
        "Feedback: x [RESULT] A",
        "2405.01535",
    ),
]
IDS = [f"{cls.__name__}{kwargs or ''}" for cls, kwargs, _, _ in CASES]


def run_one(task: Task) -> dict[str, Any]:
    with Pipeline(name="judge-contract") as pipeline:
        LoadDataFromDicts(data=[dict(ROW)]) >> task
    (row,) = list(pipeline.run(progress=False)["default"]["train"])
    return row


@pytest.mark.parametrize(("cls", "kwargs", "answer", "paper"), CASES, ids=IDS)
def test_declared_outputs_are_exactly_the_new_columns(
    cls: type[Task], kwargs: dict[str, Any], answer: str, paper: str
) -> None:
    task = cls(name="judge", llm=FunctionLLM(fn=lambda messages: answer), **kwargs)
    row = run_one(task)
    assert set(row) - set(ROW) - {METADATA_COLUMN, ERROR_COLUMN} == set(task.outputs)
    assert row.get(ERROR_COLUMN) is None
    assert all(row[c] is not None for c in task.outputs)


@pytest.mark.parametrize(("cls", "kwargs", "answer", "paper"), CASES, ids=IDS)
def test_an_unreadable_answer_is_a_row_failure(
    cls: type[Task], kwargs: dict[str, Any], answer: str, paper: str
) -> None:
    task = cls(name="judge", llm=OfflineLLM(), **kwargs)  # answers prose no judge can read
    row = run_one(task)
    assert row[ERROR_COLUMN].startswith("judge: OutputParseError: ")
    assert all(row[c] is None for c in task.outputs if c != "model_name")
    assert row["model_name"] == task.llm.model_name  # kept, as distilabel does


@pytest.mark.parametrize(("cls", "kwargs", "answer", "paper"), CASES, ids=IDS)
def test_docstring_documents_columns_and_cites_the_paper(
    cls: type[Task], kwargs: dict[str, Any], answer: str, paper: str
) -> None:
    doc = cls.__doc__ or ""
    task = cls(llm=OfflineLLM(), **kwargs)
    assert "Input columns:" in doc and "Output columns:" in doc
    for column in [*task.inputs, *task.outputs]:
        assert f"- {column} (" in doc
    assert f"arXiv:{paper}" in doc
