"""DEITA's ComplexityScorer and QualityScorer: one call per row, scores aligned with the items."""

from __future__ import annotations

import re
from typing import Any

import pytest

from synthflow.errors import OutputParseError
from synthflow.pipeline import Pipeline
from synthflow.serialization import to_text
from synthflow.steps import LoadDataFromDicts
from synthflow.steps.tasks import ERROR_COLUMN, ComplexityScorer, QualityScorer
from synthflow.testing import FunctionLLM, OfflineLLM


def complexity() -> ComplexityScorer:
    return ComplexityScorer(llm=FunctionLLM(fn=lambda messages: ""))


def quality() -> QualityScorer:
    return QualityScorer(llm=FunctionLLM(fn=lambda messages: ""))


def rows_of(distiset: Any) -> list[dict[str, Any]]:
    return list(distiset["default"]["train"])


# -- prompts ------------------------------------------------------------------------------------


def test_complexity_prompt_lists_the_non_null_instructions() -> None:
    (message,) = complexity().format_input({"instructions": ["Add 2 and 2.", None, "Prove it."]})
    assert message["role"] == "user"
    assert message["content"] == (
        "Rank the following 2 instructions by how difficult and complex they are to answer "
        "well, and give each a complexity score from 1 (the simplest) to 6 (the most complex). "
        "Consider the knowledge and the reasoning each one needs, the number of steps, and the "
        "constraints it sets. Instructions of equal complexity may share a score.\n\n"
        "<instruction 1>\nAdd 2 and 2.\n</instruction 1>\n\n"
        "<instruction 2>\nProve it.\n</instruction 2>\n\n"
        "Answer with one line per item, in order, in this format and nothing else (a score is "
        "a number from 1 to 6):\n[1] Score: <score>\n[2] Score: <score>"
    )


def test_quality_prompt_shows_the_instruction_and_the_responses() -> None:
    row = {"instruction": "Name a colour.", "responses": ["Red.", "Blue, a primary colour."]}
    (message,) = quality().format_input(row)
    content = message["content"]
    assert content.startswith(
        "Rank the following 2 responses to the instruction by quality, and give each a quality "
        "score from 1 (the worst) to 6 (the best)."
    )
    assert (
        "<instruction>\nName a colour.\n</instruction>\n\n<response 1>\nRed.\n</response 1>\n\n"
        "<response 2>\nBlue, a primary colour.\n</response 2>\n\n"
    ) in content


def test_the_scale_grows_with_more_than_six_items() -> None:
    (message,) = complexity().format_input({"instructions": [f"i{n}" for n in range(8)]})
    assert "from 1 (the simplest) to 8 (the most complex)" in message["content"]
    assert message["content"].endswith("[3] Score: <score>\n... and so on, up to [8].")


def test_columns() -> None:
    assert (complexity().inputs, complexity().outputs) == (
        ["instructions"],
        ["scores", "model_name"],
    )
    assert (quality().inputs, quality().outputs) == (
        ["instruction", "responses"],
        ["scores", "model_name"],
    )


def test_a_single_string_instead_of_a_list_says_what_to_do() -> None:
    with pytest.raises(TypeError, match="'instructions' must be a list of strings, got str"):
        complexity().format_input({"instructions": "one"})


# -- parsing ------------------------------------------------------------------------------------

ROW = {"instructions": ["easy", None, "hard", "medium"]}


@pytest.mark.parametrize(
    "answer",
    [
        "[1] Score: 1\n[2] Score: 5\n[3] Score: 3",
        "Here are the scores:\n\n**[1] Score:** 1\n**[2] Score:** 5\n**[3] Score:** 3\n",
        "1. Score: 1 (a lookup)\n2. Score: 5 (a proof)\n3. Score: 3",
        "Instruction 1: 1\nInstruction 2: 5\nInstruction 3: 3",
        "[3] Score: 3\n[1] Score: 1\n[2] Score: 5",
        "Score: 1\nScore: 5\nScore: 3",
        '```json\n{"scores": [1, 5, 3]}\n```',
    ],
)
def test_realistic_answers(answer: str) -> None:
    assert complexity().format_output(answer, ROW) == {"scores": [1.0, None, 5.0, 3.0]}


def test_fractional_scores_are_kept() -> None:
    out = complexity().format_output("[1] Score: 1.5\n[2] Score: 6\n[3] Score: 2.25", ROW)
    assert out == {"scores": [1.5, None, 6.0, 2.25]}


@pytest.mark.parametrize(
    ("answer", "message"),
    [
        ("They are all fairly simple.", "expected 3 scores, found 0"),
        ("[1] Score: 1\n[2] Score: 5", "expected scores for instructions 1 to 3, got [1, 2]"),
        ("[1] Score: 1\n[2] Score: 5\n[4] Score: 3", "got [1, 2, 4]"),
        ("[1] Score: 1\n[1] Score: 2\n[2] Score: 5", "instruction 1 is scored twice"),
        (
            "[1] Score: 1\n[2] Score: 7\n[3] Score: 3",
            "instruction 2's score is 7, off the scale 1 to 6",
        ),
        ("[1] Score: 0\n[2] Score: 5\n[3] Score: 3", "off the scale"),
        ("[1] Score: -2\n[2] Score: 5\n[3] Score: 3", "is -2, off the scale"),
        ('{"scores": [1, 2]}', "'scores' must be a list of 3 numbers"),
        ('{"scores": [1, "high", 2]}', "instruction 2's score has no number"),
    ],
)
def test_malformed_answers_are_parse_failures(answer: str, message: str) -> None:
    with pytest.raises(OutputParseError, match=re.escape(message)):
        complexity().format_output(answer, ROW)


def test_quality_failures_name_responses() -> None:
    row = {"instruction": "q", "responses": ["a", "b"]}
    with pytest.raises(OutputParseError, match="response 2's score is 9"):
        quality().format_output("[1] Score: 2\n[2] Score: 9", row)


def test_no_answer_or_nothing_to_score_gives_null_scores() -> None:
    assert complexity().format_output(None, ROW) == {"scores": [None] * 4}
    row = {"instruction": None, "responses": ["a", "b"]}
    assert quality().format_output("[1] Score: 1\n[2] Score: 2", row) == {"scores": [None, None]}


# -- running ------------------------------------------------------------------------------------


def score_by_length(kind: str) -> Any:
    def fn(messages: list[dict[str, Any]]) -> str:
        texts = re.findall(
            rf"<{kind} \d+>\n(.*?)\n</{kind} \d+>", messages[-1]["content"], re.DOTALL
        )
        return "\n".join(f"[{i}] Score: {min(len(t), 6)}" for i, t in enumerate(texts, 1))

    return fn


def test_scorers_in_a_pipeline_make_one_call_per_row() -> None:
    calls: list[str] = []

    def counted(kind: str) -> Any:
        inner = score_by_length(kind)

        def fn(messages: list[dict[str, Any]]) -> str:
            calls.append(kind)
            return inner(messages)

        return fn

    data = [
        {"instruction": "q", "instructions": ["a", "abc", None], "responses": ["abcd", "ab"]},
        {"instruction": "q", "instructions": [None], "responses": [None, "abcdefgh"]},
    ]
    with Pipeline(name="deita") as pipeline:
        load = LoadDataFromDicts(data=data)
        comp = ComplexityScorer(
            name="complexity",
            llm=FunctionLLM(fn=counted("instruction")),
            output_mappings={"scores": "complexity_scores"},
        )
        qual = QualityScorer(
            name="quality",
            llm=FunctionLLM(fn=counted("response")),
            output_mappings={"scores": "quality_scores"},
        )
        load >> comp >> qual

    rows = rows_of(pipeline.run(progress=False))
    assert [r["complexity_scores"] for r in rows] == [[1.0, 3.0, None], [None]]
    assert [r["quality_scores"] for r in rows] == [[4.0, 2.0], [None, 6.0]]
    assert sorted(calls) == ["instruction", "response", "response"]  # [None] needed no call


def test_an_unreadable_score_fails_the_row_not_the_run() -> None:
    answers = {"good": "[1] Score: 2", "bad": "[1] Score: 11"}

    def fn(messages: list[dict[str, Any]]) -> str:
        return answers["good" if "<instruction 1>\ngood" in messages[-1]["content"] else "bad"]

    with Pipeline(name="deita-bad") as pipeline:
        load = LoadDataFromDicts(data=[{"instructions": ["good"]}, {"instructions": ["bad"]}])
        load >> ComplexityScorer(name="complexity", llm=FunctionLLM(fn=fn))

    distiset = pipeline.run(progress=False)
    good, bad = rows_of(distiset)
    assert good["scores"] == [2.0] and good[ERROR_COLUMN] is None
    assert bad["scores"] is None
    assert (
        bad[ERROR_COLUMN]
        == "complexity: OutputParseError: instruction 1's score is 11, off the scale 1 to 6"
    )
    assert distiset.stats["complexity"].errors == 1


@pytest.mark.parametrize("cls", [ComplexityScorer, QualityScorer])
def test_round_trips_through_yaml_with_the_same_signature(cls: type[Any]) -> None:
    with Pipeline(name="deita-yaml") as pipeline:
        load = LoadDataFromDicts(
            data=[{"instruction": "q", "instructions": ["a"], "responses": ["b"]}]
        )
        load >> cls(name="scorer", llm=OfflineLLM())

    loaded = Pipeline.from_yaml(to_text(pipeline.dump(), "yaml"))
    assert loaded.signature == pipeline.signature
    assert type(loaded.steps["scorer"]) is cls
