"""CLAIR: minimal contrastive revisions."""

from __future__ import annotations

import pytest

from synthflow.errors import OutputParseError
from synthflow.pipeline import Pipeline
from synthflow.serialization import to_text
from synthflow.steps import LoadDataFromDicts
from synthflow.steps.tasks import CLAIR, ERROR_COLUMN
from synthflow.steps.tasks.clair import SYSTEM_PROMPT
from synthflow.testing import FunctionLLM, OfflineLLM

ROW = {"task": "How far is the Moon?", "student_solution": "About 300,000 km, give or take."}


def clair() -> CLAIR:
    return CLAIR(llm=OfflineLLM())


def test_prompt_has_the_teachers_instructions_the_task_and_the_answer() -> None:
    system, user = clair().format_input(ROW)
    assert system == {"role": "system", "content": SYSTEM_PROMPT}
    assert SYSTEM_PROMPT.startswith(
        "You are a teacher who improves a student's answer to a task with as few changes as "
        "possible."
    )
    assert user == {
        "role": "user",
        "content": "Task:\nHow far is the Moon?\n\n"
        "Student's answer:\nAbout 300,000 km, give or take.\n\n"
        "First explain, step by step, what in the student's answer should change and why, "
        'under the heading "Reasoning:". Then write the improved answer under the heading '
        '"Revised answer:", and nothing after it.',
    }


def test_a_custom_system_prompt_is_sent() -> None:
    task = CLAIR(llm=OfflineLLM(), system_prompt="Revise minimally.")
    assert task.format_input(ROW)[0] == {"role": "system", "content": "Revise minimally."}


REASON = "The distance is off: the mean is about 384,400 km."
REVISION = "About 384,400 km on average.\n\nIt varies over the month."


@pytest.mark.parametrize(
    "answer",
    [
        f"Reasoning: {REASON}\n\nRevised answer: {REVISION}",
        f"**Reasoning:**\n{REASON}\n\n**Revised answer:**\n{REVISION}",
        f"## Reasoning\n{REASON}\n\n## Revised Answer\n{REVISION}",
        f"{{teacher_reasoning}}: {REASON}\n\n{{corrected_student_solution}}: {REVISION}",
        f"**Reasoning**: {REASON}\n\n**Corrected solution**: {REVISION}\n",
        # a reasoning line that only starts with the word "Revision" is not the heading
        f"Reasoning: {REASON}\nRevision of the figure is needed.\n\nRevised answer:\n{REVISION}",
    ],
)
def test_reads_the_reasoning_and_the_revision(answer: str) -> None:
    columns = clair().format_output(answer, ROW)
    assert columns["revision"] == REVISION
    assert columns["rational"].startswith(REASON)


@pytest.mark.parametrize(
    "answer",
    [
        None,
        "",
        "I'm sorry, but I can't help with that request.",
        f"Reasoning: {REASON}",  # no revision
        f"Reasoning: {REASON}\n\nRevised answer:\n   \n",
    ],
)
def test_unreadable_answers_raise_output_parse_error(answer: str | None) -> None:
    with pytest.raises(OutputParseError):
        clair().format_output(answer, ROW)


def test_in_a_pipeline() -> None:
    answers = {
        "How far is the Moon?": f"Reasoning: {REASON}\n\nRevised answer: {REVISION}",
        "broken": "Just some prose.",
    }

    def answer(messages: list[dict[str, str]]) -> str:
        task = messages[1]["content"].split("\n")[1]
        return answers[task]

    with Pipeline(name="clair") as pipeline:
        load = LoadDataFromDicts(data=[ROW, {"task": "broken", "student_solution": "x"}])
        load >> CLAIR(name="clair", llm=FunctionLLM(fn=answer))
    rows = list(pipeline.run(use_cache=False, progress=False)["default"]["train"])
    assert rows[0]["revision"] == REVISION and rows[0]["rational"] == REASON
    assert rows[0]["student_solution"] == ROW["student_solution"]
    assert rows[1]["revision"] is None and rows[1]["rational"] is None
    assert rows[1][ERROR_COLUMN].startswith("clair: OutputParseError")


def test_round_trips_through_yaml_with_the_same_signature() -> None:
    with Pipeline(name="clair-yaml") as pipeline:
        load = LoadDataFromDicts(data=[ROW])
        load >> CLAIR(name="clair", llm=OfflineLLM(), system_prompt="Be brief.")
    loaded = Pipeline.from_yaml(to_text(pipeline.dump(), "yaml"))
    assert loaded.signature == pipeline.signature
    step = loaded.steps["clair"]
    assert isinstance(step, CLAIR) and step.system_prompt == "Be brief."
    assert step.outputs == ["revision", "rational", "model_name"]
