"""URIAL: in-context alignment of base models."""

from __future__ import annotations

import pytest

from synthflow.errors import OutputParseError
from synthflow.pipeline import Pipeline
from synthflow.serialization import to_text
from synthflow.steps import LoadDataFromDicts
from synthflow.steps.tasks import ERROR_COLUMN, URIAL
from synthflow.steps.tasks.urial import EXAMPLES, PREAMBLE
from synthflow.testing import FunctionLLM, OfflineLLM


def urial() -> URIAL:
    return URIAL(llm=OfflineLLM())


def examples_text() -> str:
    return "\n\n".join(f"# User:\n{q}\n\n# Assistant:\n{a}" for q, a in EXAMPLES)


def test_prompt_for_an_instruction() -> None:
    (message,) = urial().format_input({"instruction": "What is a prime number?"})
    assert message["role"] == "user"
    assert message["content"] == (
        f"{PREAMBLE}\n\n{examples_text()}\n\n# User:\nWhat is a prime number?\n\n# Assistant:\n"
    )
    assert len(EXAMPLES) == 3  # the paper's K=3


def test_prompt_for_a_conversation_with_a_system_message() -> None:
    conversation = [
        {"role": "system", "content": "Answer in French."},
        {"role": "user", "content": "Hi!"},
        {"role": "assistant", "content": "Bonjour !"},
        {"role": "user", "content": "How are you?"},
    ]
    (message,) = urial().format_input({"conversation": conversation})
    assert message["content"] == (
        f"{PREAMBLE}\n\nAnswer in French.\n\n{examples_text()}\n\n"
        "# User:\nHi!\n\n# Assistant:\nBonjour !\n\n# User:\nHow are you?\n\n# Assistant:\n"
    )


@pytest.mark.parametrize(
    ("row", "error", "match"),
    [
        ({}, ValueError, "neither"),
        ({"conversation": [{"role": "assistant", "content": "hi"}]}, ValueError, "role 'user'"),
        ({"conversation": []}, TypeError, "non-empty list"),
        ({"instruction": ["not", "text"]}, TypeError, "must be a string"),
    ],
)
def test_rows_it_cannot_prompt(row: dict[str, object], error: type[Exception], match: str) -> None:
    with pytest.raises(error, match=match):
        urial().format_input(row)


@pytest.mark.parametrize(
    ("answer", "expected"),
    [
        ("A prime has exactly two divisors.", "A prime has exactly two divisors."),
        # a base model keeps going: the next turn is cut off
        (
            "A prime has exactly two divisors: 1 and itself.\n\n"
            "# User:\nAnd 1?\n\n# Assistant:\nNo.",
            "A prime has exactly two divisors: 1 and itself.",
        ),
        ("# Assistant:\nA prime has two divisors.\n#User: next", "A prime has two divisors."),
        (
            "\n\nLists:\n- 2\n- 3\n# Heading inside\nmore",
            "Lists:\n- 2\n- 3\n# Heading inside\nmore",
        ),
    ],
)
def test_reads_the_answer_up_to_the_next_turn(answer: str, expected: str) -> None:
    assert urial().format_output(answer, {"instruction": "q"}) == {"generation": expected}


@pytest.mark.parametrize("answer", [None, "", "  \n", "# User:\nWhat else?"])
def test_empty_answers_raise_output_parse_error(answer: str | None) -> None:
    with pytest.raises(OutputParseError):
        urial().format_output(answer, {"instruction": "q"})


def test_in_a_pipeline_with_instructions_and_conversations() -> None:
    def answer(messages: list[dict[str, str]]) -> str:
        last_user = messages[0]["content"].rsplit("# User:\n", 1)[1].split("\n")[0]
        return f"You said {last_user}.\n\n# User:\nmore"

    with Pipeline(name="urial") as pipeline:
        load = LoadDataFromDicts(data=[{"prompt": "hello"}, {"prompt": "bye"}])
        load >> URIAL(
            name="urial", llm=FunctionLLM(fn=answer), input_mappings={"instruction": "prompt"}
        )
    rows = list(pipeline.run(use_cache=False, progress=False)["default"]["train"])
    assert [r["generation"] for r in rows] == ["You said hello.", "You said bye."]
    assert rows[0]["prompt"] == "hello" and ERROR_COLUMN not in rows[0]

    with Pipeline(name="urial-chat") as chat:
        load = LoadDataFromDicts(
            data=[{"conversation": [{"role": "user", "content": "hi"}]}, {"other": 1}]
        )
        load >> URIAL(name="urial", llm=FunctionLLM(fn=answer))
    rows = list(chat.run(use_cache=False, progress=False)["default"]["train"])
    assert rows[0]["generation"] == "You said hi."
    assert rows[1]["generation"] is None and "neither" in rows[1][ERROR_COLUMN]


def test_round_trips_through_yaml_with_the_same_signature() -> None:
    with Pipeline(name="urial-yaml") as pipeline:
        load = LoadDataFromDicts(data=[{"instruction": "q"}])
        load >> URIAL(name="urial", llm=OfflineLLM())
    loaded = Pipeline.from_yaml(to_text(pipeline.dump(), "yaml"))
    assert loaded.signature == pipeline.signature
    assert isinstance(loaded.steps["urial"], URIAL)
    assert loaded.steps["urial"].outputs == ["generation", "model_name"]
