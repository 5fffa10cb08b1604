"""InstructionBacktranslation: the self-curation prompt, the ratings models write, and a run."""

from __future__ import annotations

import pytest

from synthflow.errors import OutputParseError
from synthflow.models.llms.base import ChatType
from synthflow.pipeline import Pipeline
from synthflow.steps import LoadDataFromDicts
from synthflow.steps.tasks import ERROR_COLUMN, InstructionBacktranslation
from synthflow.testing import FunctionLLM

ROW = {"instruction": "How much is 2+2?", "generation": "4"}


def task() -> InstructionBacktranslation:
    return InstructionBacktranslation(llm=FunctionLLM(fn=lambda m: "Score: 3"))


def test_prompt() -> None:
    [message] = task().format_input(ROW)
    assert message["role"] == "user"
    assert message["content"].startswith(
        "Below are a user's instruction and a candidate answer. Rate how good the answer is as "
        "the reply a helpful AI assistant would give, on a scale of 1 to 5:\n\n1: incomplete"
    )
    assert message["content"].endswith(
        "Instruction:\nHow much is 2+2?\n\nAnswer:\n4\n\n"
        'Explain your rating in a few sentences, then give it on the last line as "Score: <1-5>".'
    )
    assert "\n5: a perfect assistant's reply" in message["content"]


@pytest.mark.parametrize(
    ("answer", "score", "reason"),
    [
        ("The answer is right but terse.\nScore: 4", 4, "The answer is right but terse."),
        ("Correct and direct.\n\n**Score:** 5", 5, "Correct and direct."),
        ("Rating: 2/5. It dodges the question.", 2, "It dodges the question."),
        ("It is fine.\nScore: 3 out of 5", 3, "It is fine."),
        ("A score of 1 would be harsh.\nFinal score: [4]", 4, "A score of 1 would be harsh."),
        ("Score: 5", 5, None),
    ],
)
def test_parses_realistic_ratings(answer: str, score: int, reason: str | None) -> None:
    assert task().format_output(answer, ROW) == {"score": score, "reason": reason}


@pytest.mark.parametrize(
    ("answer", "error"),
    [
        (None, "no text"),
        ("A fine answer.", 'no "Score'),
        ("Score: 9", "not a whole number from 1 to 5"),
        ("Score: 3.5", "not a whole number"),
    ],
)
def test_unreadable_ratings(answer: str | None, error: str) -> None:
    with pytest.raises(OutputParseError, match=error):
        task().format_output(answer, ROW)


def test_in_a_pipeline() -> None:
    def rater(messages: ChatType) -> str:
        answer = str(messages[-1]["content"]).split("Answer:\n")[1].split("\n")[0]
        return "Perfect.\nScore: 5" if answer in ("Paris", "Rome") else "Off topic.\nScore: 1"

    rows = [
        {"instruction": "Capital of France?", "generation": "Paris"},
        {"instruction": "Capital of Spain?", "generation": "Buy shoes!"},
        {"instruction": "Capital of Italy?", "generation": "Rome"},
    ]
    with Pipeline(name="curate") as pipeline:
        LoadDataFromDicts(data=rows) >> InstructionBacktranslation(
            name="curate", llm=FunctionLLM(fn=rater)
        )
    out = list(pipeline.run(progress=False)["default"]["train"])
    assert [(r["score"], r["reason"]) for r in out] == [
        (5, "Perfect."),
        (1, "Off topic."),
        (5, "Perfect."),
    ]
    assert ERROR_COLUMN not in out[0] or out[0][ERROR_COLUMN] is None
