"""Requirements as distilabel users declare them: ``@requirements([...])`` on a custom step and
``Pipeline(requirements=[...])``; a run refuses to start until they are installed."""

from __future__ import annotations

from pathlib import Path

import pytest

from synthflow.errors import SerializationError
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


def test_a_saved_pipeline_keeps_its_requirements(tmp_path: Path) -> None:
    with Pipeline(name="needs", requirements=["synthflow-no-such-package>=2"]) as pipeline:
        LoadDataFromDicts(data=[{"text": "hi"}])
    pipeline.save(tmp_path / "p.yaml")
    loaded = Pipeline.from_yaml(tmp_path / "p.yaml")
    assert loaded.requirements == ["synthflow-no-such-package>=2"]
    with pytest.raises(ModuleNotFoundError, match="synthflow-no-such-package"):
        loaded.run(use_cache=False)


def test_a_distilabel_files_requirements_are_checked_but_distilabel_itself() -> None:
    # distilabel writes them at the top level of its files; synthflow runs the file instead.
    data = {
        "distilabel": {"version": "1.5.3"},
        "pipeline": {
            "name": "p",
            "steps": [
                {
                    "step": {
                        "name": "load",
                        "data": {"0": {"text": "hi"}},
                        "type_info": {
                            "module": "distilabel.steps.generators.data",
                            "name": "LoadDataFromDicts",
                        },
                    },
                    "name": "load",
                }
            ],
            "connections": [],
        },
        "requirements": ["distilabel[openai]>=1.5", "pyyaml"],
    }
    assert Pipeline.from_dict(data).requirements == ["pyyaml"]
    data["requirements"] = ["nltk >>> 3"]
    with pytest.raises(SerializationError, match="not a PEP 508 specifier"):
        Pipeline.from_dict(data)
