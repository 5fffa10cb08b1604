"""Build-time validation: each mistake gets a one-line error before anything runs."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from synthflow.errors import PipelineValidationError, RuntimeParameterError
from synthflow.models.llms import OfflineLLM
from synthflow.pipeline import Pipeline
from synthflow.steps import LoadDataFromDicts, Step, StepInput, step
from synthflow.steps.base import Row
from synthflow.steps.tasks import TextGeneration
from tests.helpers import Passthrough


@step(inputs=["instruction"], outputs=["shout"])
def Shout(inputs: StepInput) -> Iterator[list[Row]]:
    yield inputs


def one_line(exc: pytest.ExceptionInfo[BaseException]) -> str:
    message = str(exc.value)
    assert "\n" not in message
    return message


def test_cycle_is_reported_with_its_path() -> None:
    with Pipeline() as pipeline:
        load = LoadDataFromDicts(data=[{"instruction": "x"}])
        a, b = Passthrough(name="a"), Passthrough(name="b")
        load >> a >> b >> a
    with pytest.raises(PipelineValidationError) as info:
        pipeline.run()
    assert (
        one_line(info) == "the pipeline has a cycle: a >> b >> a; remove one of these connections"
    )


def test_duplicate_step_names() -> None:
    with Pipeline(), pytest.raises(PipelineValidationError) as info:
        Passthrough(name="same")
        Passthrough(name="same")
    assert "duplicate step name 'same'" in one_line(info)


def test_missing_input_column_names_the_column_and_the_fix() -> None:
    with Pipeline() as pipeline:
        LoadDataFromDicts(data=[{"prompt": "x"}]) >> Shout(name="shout")
    with pytest.raises(PipelineValidationError) as info:
        pipeline.run()
    message = one_line(info)
    assert "step 'shout' needs column 'instruction'" in message
    assert "input_mappings={'instruction': '<column>'}" in message


def test_mapping_a_column_the_step_neither_reads_nor_writes_is_refused(tmp_path: Path) -> None:
    """As in distilabel: an ignored mapping would leave the user's column unread, or unwritten."""
    with Pipeline(cache_dir=tmp_path) as pipeline:
        load = LoadDataFromDicts(data=[{"instruction": "x"}])
        load >> Shout(name="shout", output_mappings={"shuot": "loud"})
    with pytest.raises(PipelineValidationError) as info:
        pipeline.run()
    assert one_line(info) == (
        "step 'shout' has output_mappings for 'shuot', a column it doesn't write (it writes: "
        "shout); did you mean 'shout'?"
    )
    pipeline.steps["shout"].output_mappings = {}
    pipeline.steps["shout"].input_mappings = {"instructions": "instruction"}
    with pytest.raises(PipelineValidationError) as info:
        pipeline.run()
    assert "has input_mappings for 'instructions', a column it doesn't read" in one_line(info)
    assert "did you mean 'instruction'?" in one_line(info)


@step(inputs={"text": True, "context": False}, outputs=["answer"])
def Answer(inputs: StepInput) -> Iterator[list[Row]]:
    for row in inputs:
        row["answer"] = f"{row['text']}|{row.get('context')}"
    yield inputs


def test_mappings_distilabel_accepts_are_kept(tmp_path: Path) -> None:
    """Optional inputs may be mapped; a source's columns, known from its data, may be renamed."""
    with Pipeline(cache_dir=tmp_path) as pipeline:
        load = LoadDataFromDicts(
            data=[{"q": "x", "c": "y", "sp": "be brief"}], output_mappings={"q": "text"}
        )
        answer = Answer(input_mappings={"context": "c"}, output_mappings={"answer": "a"})
        generate = TextGeneration(
            llm=OfflineLLM(), input_mappings={"instruction": "text", "system_prompt": "sp"}
        )
        load >> answer >> generate
    row = pipeline.run(use_cache=False, progress=False)["default"]["train"][0]
    assert row["a"] == "x|y" and row["text"] == "x" and row["generation"]


def test_unknown_runtime_parameter_suggests_the_near_match() -> None:
    with Pipeline() as pipeline:
        load = LoadDataFromDicts(name="load", data=[{"instruction": "x"}])
        load >> TextGeneration(name="gen", llm=OfflineLLM())
    with pytest.raises(RuntimeParameterError) as info:
        pipeline.run(parameters={"load": {"bach_size": 3}})
    assert (
        one_line(info) == "unknown runtime parameter 'load.bach_size': did you mean 'batch_size'?"
    )
    with pytest.raises(RuntimeParameterError, match=r"'gen.llm.latncy': did you mean 'latency'"):
        pipeline.run(parameters={"gen": {"llm": {"latncy": 1}}})
    with pytest.raises(RuntimeParameterError, match=r"unknown step 'lod': did you mean 'load'"):
        pipeline.run(parameters={"lod": {}})
    # A generation kwarg set on the LLM itself is pointed to generation_kwargs.
    with pytest.raises(RuntimeParameterError, match=r"set it as gen.llm.generation_kwargs.temp"):
        pipeline.run(parameters={"gen": {"llm": {"temperature": 0.2}}})


def test_runtime_parameter_of_the_wrong_type_names_the_expected_type() -> None:
    with Pipeline() as pipeline:
        LoadDataFromDicts(name="load", data=[{"n": 1}]) >> Passthrough(name="p")
    with pytest.raises(RuntimeParameterError) as info:
        pipeline.run(parameters={"load": {"batch_size": "many"}})
    assert "runtime parameter 'load.batch_size' expects int, got 'many'" in one_line(info)


def test_generator_step_cannot_take_inputs() -> None:
    with Pipeline():
        a = LoadDataFromDicts(name="a", data=[{"n": 1}])
        b = LoadDataFromDicts(name="b", data=[{"n": 1}])
        with pytest.raises(PipelineValidationError) as info:
            a >> b
    assert "generator step 'b'" in one_line(info)


def test_root_must_be_a_generator() -> None:
    with Pipeline() as pipeline:
        Passthrough(name="orphan") >> Passthrough(name="next")
    with pytest.raises(PipelineValidationError) as info:
        pipeline.run()
    assert one_line(info).startswith("step 'orphan' has no input; connect a generator step")


def test_unpicklable_process_step_is_reported_before_running() -> None:
    class Local(Step):  # defined in a function: workers can't import it
        lock: object = None

        def process(self, inputs: StepInput) -> Iterator[list[Row]]:
            yield inputs

    with Pipeline() as pipeline:
        load = LoadDataFromDicts(data=[{"n": 1}])
        load >> Local(name="local", executor="process", lock=threading.Lock())
    with pytest.raises(PipelineValidationError) as info:
        pipeline.run()
    assert "step 'local' uses executor='process' but can't be pickled" in one_line(info)


def test_empty_pipeline_and_bad_step_names() -> None:
    with pytest.raises(PipelineValidationError, match="no steps"):
        Pipeline().run()
    for bad in ["a.b", "a/b", "a b", "a\n", "é"]:  # distilabel's rule: [a-zA-Z0-9_-]+
        with pytest.raises(ValueError, match="must hold only letters, digits"):
            Passthrough(name=bad)
    for good in ["1st", "-x", "a-b_2", "_"]:
        assert Passthrough(name=good).name == good


def test_connecting_steps_outside_a_pipeline_says_how() -> None:
    with pytest.raises(PipelineValidationError, match="neither belongs to a pipeline"):
        Passthrough(name="a") >> Passthrough(name="b")
