"""PrometheusEval: absolute and relative modes, references, rubrics, and parsing verdicts."""

from __future__ import annotations

import re
from typing import Any

import pytest
from pydantic import ValidationError

from synthflow.errors import OutputParseError
from synthflow.pipeline import Pipeline
from synthflow.serialization import to_text
from synthflow.steps import LoadDataFromDicts
from synthflow.steps.tasks import ERROR_COLUMN, PrometheusEval
from synthflow.steps.tasks.prometheus_eval import DEFAULT_RUBRICS
from synthflow.testing import FunctionLLM, OfflineLLM

CUSTOM = (
    "[Is the answer written in plain English?]\n"
    "Score 1: Unreadable jargon.\n"
    "Score 2: Mostly jargon.\n"
    "Score 3: Mixed.\n"
    "Score 4: Mostly plain.\n"
    "Score 5: Plain throughout."
)


def evaluator(**kwargs: Any) -> PrometheusEval:
    return PrometheusEval(llm=FunctionLLM(fn=lambda messages: ""), **kwargs)


def rows_of(distiset: Any) -> list[dict[str, Any]]:
    return list(distiset["default"]["train"])


# -- construction -------------------------------------------------------------------------------


def test_the_built_in_rubrics_have_distilabels_names_and_the_paper_format() -> None:
    assert sorted(DEFAULT_RUBRICS) == [
        "factual-validity",
        "harmlessness",
        "helpfulness",
        "honesty",
        "reasoning",
    ]
    for name in DEFAULT_RUBRICS:
        assert evaluator(rubric=name).rubric == name


def test_user_rubrics_replace_the_built_in_ones() -> None:
    task = evaluator(rubric="plain", rubrics={"plain": CUSTOM})
    assert task.rubrics == {"plain": CUSTOM}
    with pytest.raises(ValidationError, match="rubric 'helpfulness' is not among the rubrics"):
        evaluator(rubrics={"plain": CUSTOM})


@pytest.mark.parametrize(
    ("rubric", "message"),
    [
        ("Score 1: a\nScore 2: b\nScore 3: c\nScore 4: d\nScore 5: e", "criterion in brackets"),
        ("[Clear?]\nScore 1: a\nScore 2: b\nScore 3: c\nScore 4: d", "'Score 1: ...' to 'Score 5"),
        ("[Clear?]\nScore 1: a\nScore 3: c\nScore 2: b\nScore 4: d\nScore 5: e", "in order"),
    ],
)
def test_malformed_user_rubrics_are_refused_at_construction(rubric: str, message: str) -> None:
    with pytest.raises(ValidationError, match=re.escape(message)):
        evaluator(rubric="mine", rubrics={"mine": rubric})


def test_a_rubric_may_wrap_its_descriptions() -> None:
    wrapped = CUSTOM.replace("Score 3: Mixed.", "Score 3: Mixed:\n  some jargon, some plain.")
    assert evaluator(rubric="mine", rubrics={"mine": wrapped}).rubric == "mine"


def test_columns_follow_mode_and_reference() -> None:
    assert evaluator().inputs == ["instruction", "generation"]
    assert evaluator(reference=True).inputs == ["instruction", "generation", "reference"]
    assert evaluator(mode="relative").inputs == ["instruction", "generations"]
    assert evaluator(mode="relative", reference=True).inputs == [
        "instruction",
        "generations",
        "reference",
    ]
    assert evaluator().outputs == ["feedback", "result", "model_name"]


# -- prompts ------------------------------------------------------------------------------------


def test_absolute_prompt_with_a_reference() -> None:
    task = evaluator(rubric="plain", rubrics={"plain": CUSTOM}, reference=True)
    row = {
        "instruction": "Explain DNS.",
        "generation": "It maps names.",
        "reference": "Names->IPs.",
    }
    system, user = task.format_input(row)
    assert system["role"] == "system" and "end with a score" in system["content"]
    content = user["content"]
    assert content.startswith("###Task Description:\nYou are given an instruction")
    assert "a reference answer that would earn a score of 5, and a score rubric" in content
    assert '"Feedback: (your feedback) [RESULT] (an integer from 1 to 5)"' in content
    assert content.endswith(
        "###The instruction to evaluate:\nExplain DNS.\n\n"
        "###Response to evaluate:\nIt maps names.\n\n"
        "###Reference Answer (Score 5):\nNames->IPs.\n\n"
        f"###Score Rubrics:\n{CUSTOM}\n\n"
        "###Feedback: "
    )


def test_absolute_prompt_without_a_reference_does_not_mention_one() -> None:
    _, user = evaluator().format_input({"instruction": "q", "generation": "a"})
    assert "reference" not in user["content"].lower()
    assert (
        f"###Score Rubrics:\n{DEFAULT_RUBRICS['helpfulness']}\n\n###Feedback: " in user["content"]
    )


def test_relative_prompt_shows_a_and_b_and_the_criterion() -> None:
    task = evaluator(mode="relative", rubric="reasoning", reference=True)
    row = {"instruction": "q", "generations": ["first", "second"], "reference": "gold"}
    system, user = task.format_input(row)
    assert "naming the better one" in system["content"]
    content = user["content"]
    assert "two responses to evaluate (Response A and Response B), a reference answer," in content
    assert "Compare each response with the reference answer" in content
    assert '"Feedback: (your feedback) [RESULT] (A or B)"' in content
    criterion = DEFAULT_RUBRICS["reasoning"].splitlines()[0]
    assert content.endswith(
        "###Instruction:\nq\n\n###Response A:\nfirst\n\n###Response B:\nsecond\n\n"
        f"###Reference Answer:\ngold\n\n###Score Rubric:\n{criterion}\n\n###Feedback: "
    )


@pytest.mark.parametrize("texts", [["only one"], ["a", "b", "c"], "a and b", ["a", 2]])
def test_relative_mode_needs_two_texts(texts: Any) -> None:
    with pytest.raises(TypeError, match="'generations' must be a list of two strings"):
        evaluator(mode="relative").format_input({"instruction": "q", "generations": texts})


# -- parsing ------------------------------------------------------------------------------------

ABSOLUTE = {"instruction": "q", "generation": "a"}
RELATIVE = {"instruction": "q", "generations": ["a", "b"]}


@pytest.mark.parametrize(
    ("answer", "feedback", "result"),
    [
        ("Feedback: Accurate but terse. [RESULT] 4", "Accurate but terse.", 4),
        (
            "The response is accurate but terse.\n[RESULT] 4",
            "The response is accurate but terse.",
            4,
        ),
        ("**Feedback:** Accurate.\n\n**[RESULT]** 4/5", "Accurate.", 4),
        ("###Feedback: Accurate. [RESULT] (4)", "Accurate.", 4),
        ("Feedback: Accurate. [Result]: Score 4 out of 5", "Accurate.", 4),
        ("Accurate, but terse.\n\nScore: 4", "Accurate, but terse.", 4),
        (
            "Feedback: Mentions [RESULT] style markers. [RESULT] 2",
            "Mentions [RESULT] style markers.",
            2,
        ),
        ("[RESULT] 5", None, 5),
    ],
)
def test_realistic_absolute_answers(answer: str, feedback: str | None, result: int) -> None:
    assert evaluator().format_output(answer, ABSOLUTE) == {"feedback": feedback, "result": result}


@pytest.mark.parametrize(
    ("answer", "result"),
    [
        ("Feedback: B explains why. [RESULT] B", "B"),
        ("Feedback: A is tighter. [RESULT] (A)", "A"),
        ("Feedback: x\n[RESULT] Response B", "B"),
        ("Feedback: x [RESULT] A is a better fit", "A"),
        ("Feedback: x\n\nWinner: B", "B"),
    ],
)
def test_realistic_relative_answers(answer: str, result: str) -> None:
    assert evaluator(mode="relative").format_output(answer, RELATIVE)["result"] == result


@pytest.mark.parametrize(
    ("answer", "message"),
    [
        ("The response is fine overall.", "no '[RESULT]' verdict"),
        ("Feedback: x [RESULT]", "verdict is empty"),
        ("Feedback: x [RESULT] 6", "the score is 6, off the scale 1 to 5"),
        ("Feedback: x [RESULT] 0", "off the scale"),
        ("Feedback: x [RESULT] 3.5", "not a whole number"),
        ("Feedback: x [RESULT] excellent", "the score has no number"),
    ],
)
def test_malformed_absolute_answers_are_parse_failures(answer: str, message: str) -> None:
    with pytest.raises(OutputParseError, match=re.escape(message)):
        evaluator().format_output(answer, ABSOLUTE)


@pytest.mark.parametrize(
    "answer",
    ["Feedback: x [RESULT] tie", "Feedback: x [RESULT] C", "Feedback: x [RESULT] in a word, both"],
)
def test_a_relative_verdict_that_is_not_a_or_b_is_a_parse_failure(answer: str) -> None:
    with pytest.raises(OutputParseError, match="names neither A nor B"):
        evaluator(mode="relative").format_output(answer, RELATIVE)


# -- running ------------------------------------------------------------------------------------


def test_absolute_and_relative_in_one_pipeline() -> None:
    calls: list[str] = []

    def judge(messages: list[dict[str, Any]]) -> str:
        prompt = messages[-1]["content"]
        calls.append(prompt)
        if "###Response A:" in prompt:
            return "Feedback: B is longer. [RESULT] B"
        response = prompt.split("###Response to evaluate:\n", 1)[1].split("\n\n", 1)[0]
        return f"Feedback: scored by length. [RESULT] {min(len(response), 5)}"

    data = [
        {"instruction": "q0", "generation": "abc", "generations": ["a", "abc"], "reference": "r"},
        {"instruction": "q1", "generation": None, "generations": ["a", None], "reference": "r"},
        {
            "instruction": "q2",
            "generation": "abcdefgh",
            "generations": ["a", "b"],
            "reference": None,
        },
    ]
    with Pipeline(name="prometheus") as pipeline:
        load = LoadDataFromDicts(data=data)
        absolute = PrometheusEval(
            name="absolute",
            llm=FunctionLLM(fn=judge),
            rubric="factual-validity",
            output_mappings={"feedback": "abs_feedback", "result": "abs_result"},
        )
        relative = PrometheusEval(
            name="relative",
            llm=FunctionLLM(fn=judge),
            mode="relative",
            reference=True,
            output_mappings={"feedback": "rel_feedback", "result": "rel_result"},
        )
        load >> absolute >> relative

    rows = rows_of(pipeline.run(progress=False))
    assert [r["abs_result"] for r in rows] == [3, None, 5]
    assert [r["abs_feedback"] for r in rows] == ["scored by length.", None, "scored by length."]
    # q1 has a null text and q2 a null reference: nothing to compare, no call.
    assert [r["rel_result"] for r in rows] == ["B", None, None]
    assert all(r.get(ERROR_COLUMN) is None for r in rows)
    assert len(calls) == 3


def test_an_unreadable_verdict_fails_the_row_not_the_run() -> None:
    with Pipeline(name="prometheus-bad") as pipeline:
        load = LoadDataFromDicts(data=[{"instruction": "q", "generation": "a"}])
        load >> PrometheusEval(name="judge", llm=FunctionLLM(fn=lambda m: "Looks good to me!"))

    distiset = pipeline.run(progress=False)
    (row,) = rows_of(distiset)
    assert row["result"] is None and row["feedback"] is None
    assert row[ERROR_COLUMN] == "judge: OutputParseError: the answer has no '[RESULT]' verdict"
    assert distiset.stats["judge"].errors == 1


def test_round_trips_through_yaml_with_the_same_signature() -> None:
    with Pipeline(name="prometheus-yaml") as pipeline:
        load = LoadDataFromDicts(data=[{"instruction": "q", "generations": ["a", "b"]}])
        load >> PrometheusEval(
            name="judge",
            llm=OfflineLLM(),
            mode="relative",
            rubric="plain",
            rubrics={"plain": CUSTOM},
        )

    loaded = Pipeline.from_yaml(to_text(pipeline.dump(), "yaml"))
    assert loaded.signature == pipeline.signature
    step = loaded.steps["judge"]
    assert isinstance(step, PrometheusEval)
    assert (step.mode, step.rubric, step.rubrics) == ("relative", "plain", {"plain": CUSTOM})
