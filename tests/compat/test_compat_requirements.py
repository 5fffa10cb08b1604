"""Requirements as distilabel users declare them: ``@requirements([...])`` on a custom step and
``Pipeline(requirements=[...])``; a run refuses to start until they are installed."""

from __future__ import annotations

import pytest

from synthflow.pipeline import Pipeline
from synthflow.steps import LoadDataFromDicts, Step, StepInput
from synthflow.typing import StepOutput
from synthflow.utils.requirements import requirements

CALLS: list[int] = []


@requirements(["orjson>=3", "pyyaml"])
class Shout(Step):
    @property
    def inputs(self) -> list[str]:
        return ["text"]

    @property
    def outputs(self) -> list[str]:
        return ["loud"]

    def process(self, inputs: StepInput) -> StepOutput:  # type: ignore[override]
        CALLS.append(len(inputs))
        for row in inputs:
            row["loud"] = row["text"].upper()
        yield inputs


@requirements(["orjson<1"])
class ShoutOnOldOrjson(Shout):
    pass


def build(step: type[Step], needs: list[str] | None = None) -> Pipeline:
    with Pipeline(name="needs", requirements=needs) as pipeline:
        LoadDataFromDicts(data=[{"text": "hi"}]) >> step()
    return pipeline


def test_a_run_whose_requirements_are_installed_goes_ahead() -> None:
    distiset = build(Shout, ["datasets"]).run(use_cache=False)
    assert list(distiset["default"]["train"]) == [{"text": "hi", "loud": "HI"}]


def test_a_missing_pipeline_requirement_stops_the_run_before_any_step() -> None:
    CALLS.clear()
    with pytest.raises(ModuleNotFoundError, match=r"synthflow-no-such-package>=2 .*pip install"):
        build(Shout, ["synthflow-no-such-package>=2"]).run(use_cache=False)
    assert CALLS == []


def test_a_step_requirement_adds_to_its_bases_and_is_checked_by_version() -> None:
    assert ShoutOnOldOrjson.requirements == ["orjson>=3", "pyyaml", "orjson<1"]
    assert Shout.requirements == ["orjson>=3", "pyyaml"]
    with pytest.raises(ModuleNotFoundError, match=r"orjson<1"):
        build(ShoutOnOldOrjson).run(use_cache=False)


def test_a_malformed_requirement_is_refused_where_it_is_declared() -> None:
    with pytest.raises(ValueError, match="not a PEP 508"):
        requirements(["nltk >>> 3"])
