"""distilabel's ``@step`` shapes: annotations that exist only for type checkers."""

from typing import TYPE_CHECKING

from synthflow.pipeline import Pipeline
from synthflow.runtime_parameters import RuntimeParameter
from synthflow.steps import LoadDataFromDicts, StepInput, step

if TYPE_CHECKING:
    from synthflow.steps import StepOutput


@step(inputs=["instruction"], outputs=["shout"])
def Shout(inputs: StepInput, suffix: RuntimeParameter[str] = "!") -> "StepOutput":
    for row in inputs:
        row["shout"] = row["instruction"].upper() + suffix
    yield inputs


@step(inputs={"instruction": True, "system_prompt": False}, outputs={"length": True})
def Length(*inputs: StepInput, unit: "Unknown" = 1) -> "StepOutput":  # type: ignore[name-defined]  # noqa: F821
    for row in inputs[0]:
        row["length"] = len(row["instruction"]) * unit
    yield inputs[0]


@step(outputs=["n"], step_type="generator")
def Numbers(
    offset: int = 0,
    count: "RuntimeParameter[Undefined]" = 3,  # type: ignore[name-defined]  # noqa: F821
) -> "GeneratorStepOutput":  # type: ignore[name-defined]  # noqa: F821
    yield [{"n": i} for i in range(offset, count)], True


def test_string_annotations_under_type_checking_define_the_class() -> None:
    assert Shout.model_fields["suffix"].default == "!"
    assert Shout(name="shout").inputs == ["instruction"]
    assert Length(name="length").outputs == ["length"]
    assert Length(name="length").inputs == ["instruction"]  # optional inputs aren't required


def test_steps_with_such_annotations_run_in_a_pipeline() -> None:
    with Pipeline(name="decorated") as pipeline:
        load = LoadDataFromDicts(data=[{"instruction": "hi"}, {"instruction": "yo"}])
        shout = Shout(name="shout")
        length = Length(name="length")
        load >> shout >> length
    distiset = pipeline.run(parameters={"shout": {"suffix": "?"}}, progress=False)
    rows = distiset["default"]["train"].to_list()
    assert [r["shout"] for r in rows] == ["HI?", "YO?"]
    assert [r["length"] for r in rows] == [2, 2]


def test_an_unresolvable_runtime_parameter_stays_settable() -> None:
    with Pipeline(name="gen") as pipeline:
        Numbers(name="numbers")
    distiset = pipeline.run(parameters={"numbers": {"count": 2}}, progress=False)
    assert distiset["default"]["train"]["n"] == [0, 1]
