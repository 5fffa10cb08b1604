"""distilabel 1.5 users annotate custom steps and tasks with names from ``distilabel.typing``;
the same module under synthflow has them, and such a step runs in a pipeline."""

from __future__ import annotations

from typing import Any

from synthflow.pipeline import Pipeline
from synthflow.steps import LoadDataFromDicts, Step, StepInput
from synthflow.steps.tasks import Task
from synthflow.typing import ChatType, FormattedInput, StepColumns, StepOutput


class WordCount(Step):
    @property
    def inputs(self) -> StepColumns:
        return ["text"]

    @property
    def outputs(self) -> StepColumns:
        return ["words"]

    def process(self, inputs: StepInput) -> StepOutput:  # type: ignore[override]
        for row in inputs:
            row["words"] = len(row["text"].split())
        yield inputs


class Summarize(Task):
    @property
    def inputs(self) -> StepColumns:
        return {"text": True, "style": False}

    @property
    def outputs(self) -> StepColumns:
        return ["summary"]

    def format_input(self, input: dict[str, Any]) -> FormattedInput:  # type: ignore[override]
        chat: ChatType = [{"role": "user", "content": f"Summarize: {input['text']}"}]
        return chat

    def format_output(
        self, output: str | None, input: dict[str, Any] | None = None
    ) -> dict[str, Any]:  # type: ignore[override]
        return {"summary": output}


def test_a_step_annotated_with_synthflow_typing_runs_in_a_pipeline() -> None:
    with Pipeline(name="typed") as pipeline:
        LoadDataFromDicts(data=[{"text": "one two three"}]) >> WordCount()
    rows = list(pipeline.run(use_cache=False)["default"]["train"])
    assert rows == [{"text": "one two three", "words": 3}]
    assert Summarize.__name__ == "Summarize"  # a task class with the annotations is definable
