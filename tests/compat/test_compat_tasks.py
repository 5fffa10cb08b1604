"""distilabel 1.5's TextGeneration (Jinja2 templates over columns, system prompts, raw inputs)
and the ``@task`` decorator, in pipelines and alone."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from synthflow.pipeline import Pipeline
from synthflow.steps import LoadDataFromDicts
from synthflow.steps.tasks import Task, TextGeneration, task
from synthflow.testing import FunctionLLM, OfflineLLM


def echo() -> FunctionLLM:
    """Answers with the conversation it got, so a test sees exactly what was sent."""
    return FunctionLLM(
        fn=lambda messages: " | ".join(f"{m['role']}: {m['content']}" for m in messages)
    )


def run(task_: Task, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    with Pipeline(name="tasks") as pipeline:
        LoadDataFromDicts(name="load", data=rows) >> task_
    result: list[dict[str, Any]] = pipeline.run(progress=False)["default"]["train"].to_list()
    return result


def test_a_template_over_columns_becomes_the_prompt() -> None:
    generate = TextGeneration(
        name="summary",
        llm=echo(),
        template="Summarize in {{ words }} words:\n{{ text }}{% if tone %} ({{ tone }}){% endif %}",
        columns=["text", "words", "tone"],
    )
    assert generate.inputs == ["text", "words", "tone"]
    rows = run(generate, [{"text": "A long story.", "words": 5, "tone": "dry"}])
    assert rows[0]["generation"] == "user: Summarize in 5 words:\nA long story. (dry)"
    assert rows[0]["model_name"] == "function-llm"


def test_columns_may_be_one_string() -> None:
    generate = TextGeneration(
        name="g", llm=echo(), template="Q: {{ question }}", columns="question"
    )
    assert generate.inputs == ["question"]
    assert run(generate, [{"question": "why?"}])[0]["generation"] == "user: Q: why?"


def test_a_rows_system_prompt_wins_over_the_tasks() -> None:
    rows = [{"instruction": "hi", "system_prompt": "Be a pirate."}, {"instruction": "yo"}]
    generate = TextGeneration(name="g", llm=echo(), system_prompt="Be brief.")
    out = run(generate, [dict(r) for r in rows])
    assert out[0]["generation"] == "system: Be a pirate. | user: hi"
    assert out[1]["generation"] == "system: Be brief. | user: yo"
    ignoring = TextGeneration(
        name="g", llm=echo(), system_prompt="Be brief.", use_system_prompt=False
    )
    assert run(ignoring, rows)[0]["generation"] == "system: Be brief. | user: hi"


def test_raw_input_and_raw_output_in_the_metadata() -> None:
    generate = TextGeneration(
        name="gen", llm=echo(), system_prompt="S", add_raw_input=True, add_raw_output=True
    )
    metadata = run(generate, [{"instruction": "hi"}])[0]["synthflow_metadata"]
    assert metadata["raw_input_gen"] == [
        {"role": "system", "content": "S"},
        {"role": "user", "content": "hi"},
    ]
    assert "raw_output_gen" in metadata and "statistics_gen" in metadata


class PostWriter(TextGeneration):
    """A task whose prompt reads no column, the way people subclass TextGeneration to ask for
    N answers to one fixed prompt (the rows only count them)."""

    system_prompt: str | None = "You write short posts."
    template: str = "Write a post."
    columns: str | list[str] = []


def test_no_columns_is_a_fixed_prompt_sent_once_per_row() -> None:
    writer = PostWriter(name="posts", llm=echo(), output_mappings={"generation": "post"})
    assert writer.inputs == []
    rows = run(writer, [{"prompt": "generate"} for _ in range(3)])
    assert [r["post"] for r in rows] == ["system: You write short posts. | user: Write a post."] * 3
    assert rows[0]["prompt"] == "generate"  # the loader's own columns pass through


def test_template_mistakes_fail_when_the_task_is_built() -> None:
    with pytest.raises(ValidationError, match="column 'text' is not in the template"):
        TextGeneration(llm=echo(), template="{{ instruction }}", columns=["text"])
    with pytest.raises(ValidationError, match="template line 1"):
        TextGeneration(llm=echo(), template="{{ text ", columns=["text"])


def test_a_templated_task_round_trips_and_works_alone(tmp_path: Path) -> None:
    with Pipeline(name="saved") as pipeline:
        load = LoadDataFromDicts(name="load", data=[{"text": "x"}])
        template = "T: {{ text }}"
        load >> TextGeneration(name="gen", llm=OfflineLLM(), template=template, columns=["text"])
    loaded = Pipeline.from_file(pipeline.save(tmp_path / "p.yaml"))
    gen = loaded.steps["gen"]
    assert isinstance(gen, TextGeneration) and gen.columns == ["text"]
    assert loaded.signature == pipeline.signature
    gen = TextGeneration(name="alone", llm=echo(), template="T: {{ text }}", columns=["text"])
    gen.load()
    assert next(gen.process([{"text": "y"}]))[0]["generation"] == "user: T: y"


@task(inputs=["question", "style"], outputs=["answer"])
def AnswerInStyle(output: str | None, input: dict[str, Any] | None = None) -> dict[str, Any]:
    """Answers a question in a style.

    ---
    system_prompt: |
        You answer in the style of {style}.

    user_message_template: |
        Question: {question}
    ---
    """
    return {"answer": output.upper() if output else None}


def test_a_task_from_a_function_and_its_docstring() -> None:
    answer = AnswerInStyle(name="answer", llm=echo())
    assert answer.inputs == ["question", "style"]
    assert answer.outputs == ["answer", "model_name"]
    assert answer.format_input({"question": "why?", "style": "Yoda"}) == [
        {"role": "system", "content": "You answer in the style of Yoda."},
        {"role": "user", "content": "Question: why?"},
    ]
    rows = run(answer, [{"question": "why?", "style": "Yoda"}])
    assert rows[0]["answer"] == "SYSTEM: YOU ANSWER IN THE STYLE OF YODA. | USER: QUESTION: WHY?"
    answer.load()
    assert next(answer.process(inputs=[{"question": "a", "style": "b"}]))[0]["answer"]


def test_task_docstring_mistakes_are_one_line_errors() -> None:
    def no_block(output: str | None, input: dict[str, Any] | None = None) -> dict[str, Any]:
        """No prompts here."""
        return {}

    with pytest.raises(ValueError, match="docstring must hold the prompts"):
        task(inputs=["q"])(no_block)

    def unknown(output: str | None, input: dict[str, Any] | None = None) -> dict[str, Any]:
        """
        ---
        system_prompt: Hi {name}
        user_message_template: "{q}"
        ---
        """
        return {}

    with pytest.raises(ValueError, match=r"system_prompt uses \{name\}"):
        task(inputs=["q"])(unknown)
