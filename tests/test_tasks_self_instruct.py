"""SelfInstruct: its prompt, the lists real models write, and a run through a pipeline."""

from __future__ import annotations

import pytest

from synthflow.errors import OutputParseError
from synthflow.models.llms.base import ChatType
from synthflow.pipeline import Pipeline
from synthflow.steps import LoadDataFromDicts
from synthflow.steps.tasks import ERROR_COLUMN, SelfInstruct
from synthflow.testing import FunctionLLM, OfflineLLM


def task(**kwargs: object) -> SelfInstruct:
    return SelfInstruct(llm=OfflineLLM(), **kwargs)  # type: ignore[arg-type]


def test_prompt() -> None:
    messages = task(
        num_instructions=3,
        application_description="a cooking assistant",
        criteria_for_query_generation="Ask about one dish at a time.",
    ).format_input({"input": "Italian pasta"})
    assert messages == [
        {
            "role": "user",
            "content": "You are writing the queries that users will send to a cooking "
            "assistant. Write 3 new, diverse queries about the input below.\n\n"
            "What makes a good query here:\nAsk about one dish at a time.\n\n"
            "Input:\nItalian pasta\n\n"
            "Write exactly 3 queries, one per line, numbered 1. to 3., and nothing else.",
        }
    ]


def test_default_criteria_and_application() -> None:
    content = task().format_input({"input": "x"})[0]["content"]
    assert "users will send to AI assistant. Write 5 new" in content
    assert "Vary the verbs" in content and "text-only AI model" in content


@pytest.mark.parametrize(
    ("answer", "expected"),
    [
        (
            "1. What is pesto?\n2. How long do I boil penne?",
            ["What is pesto?", "How long do I boil penne?"],
        ),
        (
            "Here are some queries:\n\n1) Explain carbonara.\n2) Compare ragù and\n"
            "   bolognese.\n\nI hope these help!",
            ["Explain carbonara.", "Compare ragù and bolognese."],
        ),
        (
            "- Describe gnocchi.\n- Why salt pasta water?",
            ["Describe gnocchi.", "Why salt pasta water?"],
        ),
        (
            '**1.** Name a pasta shape.\n**2.** "Give a sauce recipe."',
            ["Name a pasta shape.", "Give a sauce recipe."],
        ),
        ("Q1: What is al dente?\nQ2: Why rest dough?", ["What is al dente?", "Why rest dough?"]),
        (
            "What is orzo?\n\nHow is lasagna layered?\n",
            ["What is orzo?", "How is lasagna layered?"],
        ),
        ("```\n1. Define semolina.\n```", ["Define semolina."]),
        ("1. a\n2. b\n3. c\n4. d\n5. e\n6. f\n7. g", ["a", "b", "c", "d", "e"]),
    ],
)
def test_parses_realistic_lists(answer: str, expected: list[str]) -> None:
    assert task().format_output(answer, {"input": "pasta"}) == {"instructions": expected}


@pytest.mark.parametrize("answer", [None, "", "  \n ", "1.\n2.\n3.", "```\n```"])
def test_unreadable_answers_raise_output_parse_error(answer: str | None) -> None:
    with pytest.raises(OutputParseError):
        task().format_output(answer, {"input": "pasta"})


def test_in_a_pipeline_with_a_failed_row_kept() -> None:
    def model(messages: ChatType) -> str:
        if "broken" in str(messages[0]["content"]):
            return "1.\n2."
        return "Sure:\n1. What is a sonnet?\n2. Write a haiku about rain."

    with Pipeline(name="self-instruct") as pipeline:
        LoadDataFromDicts(data=[{"input": "poetry"}, {"input": "broken"}]) >> SelfInstruct(
            name="instruct", llm=FunctionLLM(fn=model), num_instructions=2
        )
    rows = list(pipeline.run(progress=False)["default"]["train"])
    assert rows[0]["instructions"] == ["What is a sonnet?", "Write a haiku about rain."]
    assert rows[0]["model_name"] == "function-llm"
    assert rows[1]["instructions"] is None
    assert rows[1][ERROR_COLUMN] == (
        "instruct: OutputParseError: the answer's list is empty; expected a numbered list of 2 "
        "instructions"
    )
    assert rows[1]["synthflow_metadata"]["raw_output_instruct"] == "1.\n2."


def test_typing_names_import_from_distilabels_paths() -> None:
    from synthflow.steps.tasks import ChatItem, ChatType
    from synthflow.steps.tasks.typing import ChatItem as Item
    from synthflow.steps.tasks.typing import ChatType as Chat

    assert (ChatItem, ChatType) == (Item, Chat)
    message: ChatItem = {"role": "user", "content": "hi"}
    conversation: ChatType = [dict(message)]
    assert conversation[0]["role"] == "user"
