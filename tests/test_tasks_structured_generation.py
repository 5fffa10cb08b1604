"""StructuredGeneration: a format per row, stated in the prompt and checked on the answer."""

from __future__ import annotations

import json
from typing import Any

import pytest
from pydantic import BaseModel

from synthflow.errors import OutputParseError
from synthflow.models.llms.base import ChatType
from synthflow.pipeline import Pipeline
from synthflow.steps import LoadDataFromDicts
from synthflow.steps.tasks import ERROR_COLUMN, StructuredGeneration
from synthflow.testing import FunctionLLM

PERSON = {
    "type": "object",
    "properties": {"name": {"type": "string"}, "age": {"type": "integer"}},
    "required": ["name", "age"],
}


class Person(BaseModel):
    name: str
    age: int


def task(**kwargs: Any) -> StructuredGeneration:
    return StructuredGeneration(llm=FunctionLLM(fn=lambda m: ""), **kwargs)


def test_prompt_states_the_rows_schema() -> None:
    row = {
        "instruction": "Invent a person.",
        "structured_output": {"format": "json", "schema": PERSON},
    }
    assert task().format_input(row) == [
        {
            "role": "user",
            "content": "Invent a person.\n\nAnswer with only a JSON value that follows this "
            "JSON schema:\n" + json.dumps(PERSON),
        }
    ]


def test_prompt_states_a_regex_and_a_system_prompt() -> None:
    row = {
        "instruction": "Give a date.",
        "structured_output": {"format": "regex", "schema": r"\d{4}-\d{2}-\d{2}"},
        "system_prompt": "Be exact.",
    }
    assert task(use_system_prompt=True).format_input(row) == [
        {"role": "system", "content": "Be exact."},
        {
            "role": "user",
            "content": "Give a date.\n\nAnswer with only text that matches this regular "
            "expression:\n\\d{4}-\\d{2}-\\d{2}",
        },
    ]
    assert task(use_system_prompt=True).inputs == [
        "system_prompt",
        "instruction",
        "structured_output",
    ]


@pytest.mark.parametrize("form", [{"format": "json", "schema": PERSON}, PERSON, Person])
@pytest.mark.parametrize(
    "answer",
    [
        '{"name": "Ada", "age": 36}',
        '```json\n{"name": "Ada", "age": 36}\n```',
        'Here is the person:\n{"name": "Ada", "age": 36}\nLet me know!',
    ],
)
def test_json_answers_are_extracted_and_checked(form: Any, answer: str) -> None:
    out = task().format_output(answer, {"instruction": "x", "structured_output": form})
    assert json.loads(out["generation"]) == {"name": "Ada", "age": 36}


@pytest.mark.parametrize(
    ("answer", "error"),
    [
        ('{"name": "Ada"}', "doesn't follow the row's JSON schema"),
        ('{"name": "Ada", "age": "old"}', "doesn't follow"),
        ("Ada, 36", "found no JSON"),
        (None, "no text"),
    ],
)
def test_json_answers_that_dont_fit(answer: str | None, error: str) -> None:
    row = {"instruction": "x", "structured_output": {"format": "json", "schema": PERSON}}
    with pytest.raises(OutputParseError, match=error):
        task().format_output(answer, row)


def test_regex_answers() -> None:
    row = {
        "instruction": "x",
        "structured_output": {"format": "regex", "schema": r"\d{4}-\d{2}-\d{2}"},
    }
    assert task().format_output("2024-01-31", row) == {"generation": "2024-01-31"}
    assert task().format_output("The date is 2024-01-31.", row) == {"generation": "2024-01-31"}
    with pytest.raises(OutputParseError, match="doesn't match"):
        task().format_output("January 31st", row)


def test_a_row_without_a_format_gets_free_text() -> None:
    row = {"instruction": "Hi", "structured_output": None}
    assert task().format_input(row)[0]["content"] == "Hi"
    assert task().format_output("Hello!", row) == {"generation": "Hello!"}


def test_unsupported_formats_say_what_is_accepted() -> None:
    with pytest.raises(ValueError, match="use format 'json' with a JSON schema"):
        task().format_input(
            {"instruction": "x", "structured_output": {"format": "yaml", "schema": "a"}}
        )
    with pytest.raises(TypeError, match="must be"):
        task().format_input({"instruction": "x", "structured_output": "json"})


def test_per_row_schemas_in_a_pipeline() -> None:
    def model(messages: ChatType) -> str:
        content = str(messages[-1]["content"])
        return '{"name": "Ada", "age": 36}' if "person" in content else '{"title": 3}'

    book = {"type": "object", "properties": {"title": {"type": "string"}}, "required": ["title"]}
    rows = [
        {
            "instruction": "Invent a person.",
            "structured_output": {"format": "json", "schema": PERSON},
        },
        {"instruction": "Invent a book.", "structured_output": {"format": "json", "schema": book}},
    ]
    with Pipeline(name="structured") as pipeline:
        LoadDataFromDicts(data=rows) >> StructuredGeneration(name="gen", llm=FunctionLLM(fn=model))
    out = list(pipeline.run(progress=False)["default"]["train"])
    assert json.loads(out[0]["generation"]) == {"name": "Ada", "age": 36}
    assert out[1]["generation"] is None
    assert "title" in out[1][ERROR_COLUMN] and "OutputParseError" in out[1][ERROR_COLUMN]
