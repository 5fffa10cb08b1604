"""Genstruct: an instruction and its answer from a document."""

from __future__ import annotations

from typing import Any

import pytest

from synthflow.errors import OutputParseError
from synthflow.pipeline import Pipeline
from synthflow.serialization import to_text
from synthflow.steps import LoadDataFromDicts
from synthflow.steps.tasks import ERROR_COLUMN, Genstruct
from synthflow.testing import FunctionLLM, OfflineLLM

DOC = {"title": "Photosynthesis", "content": "Plants turn light, water and CO2 into sugar."}


def task() -> Genstruct:
    return Genstruct(llm=OfflineLLM())


def test_prompt_shows_the_document_in_genstructs_format() -> None:
    assert task().format_input(DOC) == [
        {
            "role": "user",
            "content": "[[[Title]]] Photosynthesis\n"
            "[[[Content]]] Plants turn light, water and CO2 into sugar.\n\n"
            "Write one exchange between a user and an AI assistant about the text above. The "
            "user asks something that takes understanding of the text, and reasoning over it, to "
            "answer well: not a question answered by copying one sentence. The user's message "
            "must make sense to someone who has not read the text, so it states the context it "
            "needs. The assistant answers fully and correctly, reasoning step by step where that "
            "helps.\n\n"
            "Write the user's message after [[[User]]] and the assistant's answer after "
            "[[[Assistant]]], and nothing else.",
        }
    ]


@pytest.mark.parametrize(
    "answer",
    [
        "[[[User]]] Why do plants need light to make sugar?\n"
        "[[[Assistant]]] Light supplies the energy.\nIt splits water.",
        # Genstruct 7B continues a prompt that ends with [[[User]]]: no leading marker
        "Why do plants need light to make sugar?\n\n[[[Assistant]]] Light supplies the energy.\n"
        "It splits water.",
        "**User:** Why do plants need light to make sugar?\n\n"
        "**Assistant:** Light supplies the energy.\nIt splits water.",
        "Here is the exchange.\n\nQuestion: Why do plants need light to make sugar?\n"
        "Answer: Light supplies the energy.\nIt splits water.",
        "## User:\nWhy do plants need light to make sugar?\n## Assistant:\n"
        "Light supplies the energy.\nIt splits water.\n\n[[[User]]] And at night?\n"
        "[[[Assistant]]] They respire.",
    ],
)
def test_reads_the_exchange(answer: str) -> None:
    assert task().format_output(answer, DOC) == {
        "user": "Why do plants need light to make sugar?",
        "assistant": "Light supplies the energy.\nIt splits water.",
    }


@pytest.mark.parametrize(
    "answer",
    [
        None,
        "",
        "I'm sorry, I can't help with that.",
        "[[[User]]] Why do plants need light?",  # no answer
        "[[[User]]] Why?\n[[[Assistant]]]   ",
        "[[[Assistant]]] Light supplies the energy.",  # no question
    ],
)
def test_unreadable_exchanges_raise_output_parse_error(answer: str | None) -> None:
    with pytest.raises(OutputParseError):
        task().format_output(answer, DOC)


def test_in_a_pipeline() -> None:
    def answer(messages: list[dict[str, Any]]) -> str:
        title = messages[0]["content"].split("\n")[0].removeprefix("[[[Title]]] ")
        if title == "Broken":
            return "no markers here"
        return f"[[[User]]] What is {title}?\n[[[Assistant]]] It is explained in the text."

    with Pipeline(name="genstruct") as pipeline:
        load = LoadDataFromDicts(data=[DOC, {"title": "Broken", "content": "x"}])
        load >> Genstruct(name="genstruct", llm=FunctionLLM(fn=answer))
    rows = list(pipeline.run(use_cache=False, progress=False)["default"]["train"])
    assert rows[0]["user"] == "What is Photosynthesis?"
    assert rows[0]["assistant"] == "It is explained in the text."
    assert rows[0]["model_name"] == "function-llm" and rows[0]["title"] == "Photosynthesis"
    assert rows[1]["user"] is None and rows[1]["assistant"] is None
    assert rows[1][ERROR_COLUMN].startswith("genstruct: OutputParseError")


def test_round_trips_through_yaml_with_the_same_signature() -> None:
    with Pipeline(name="genstruct-yaml") as pipeline:
        load = LoadDataFromDicts(data=[DOC])
        load >> Genstruct(name="genstruct", llm=OfflineLLM(), input_mappings={"content": "text"})
    loaded = Pipeline.from_yaml(to_text(pipeline.dump(), "yaml"))
    assert loaded.signature == pipeline.signature
    step = loaded.steps["genstruct"]
    assert isinstance(step, Genstruct) and step.input_mappings == {"content": "text"}
    assert (step.inputs, step.outputs) == (
        ["title", "content"],
        ["user", "assistant", "model_name"],
    )
