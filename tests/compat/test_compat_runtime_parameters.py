"""Runtime parameters given later, as distilabel pipelines give them: left out when the step is
built, supplied by ``run(parameters=...)`` or the CLI's ``--param``, checked when the run starts."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import pytest
from pydantic import Field
from typer.testing import CliRunner

from synthflow.cli import app
from synthflow.distiset import Distiset
from synthflow.errors import RuntimeParameterError
from synthflow.pipeline import Pipeline
from synthflow.runtime_parameters import RuntimeParameter
from synthflow.steps import (
    KeepColumns,
    LoadDataFromFileSystem,
    LoadDataFromHub,
    Step,
    StepInput,
    StepOutput,
)
from synthflow.steps.tasks import TextGeneration
from synthflow.testing import OfflineLLM
from tests.test_cli import assert_one_line_error


class AddPrefix(Step):
    """A distilabel-style custom step whose required runtime parameter defaults to None."""

    prefix: RuntimeParameter[str] = Field(default=None, description="Put before the text.")

    @property
    def inputs(self) -> list[str]:
        return ["instruction"]

    @property
    def outputs(self) -> list[str]:
        return ["prefixed"]

    def process(self, inputs: StepInput) -> StepOutput:
        for row in inputs:
            row["prefixed"] = self.prefix + row["instruction"]
        yield inputs


@pytest.fixture
def hub_dir(tmp_path: Path) -> Path:
    """A dataset directory laid out as a Hub repo (there is no network here)."""
    data = tmp_path / "repo" / "data"
    data.mkdir(parents=True)
    rows = [{"instruction": f"q{i}"} for i in range(3)]
    (data / "test.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return data.parent


def hub_pipeline() -> Pipeline:
    with Pipeline(name="later") as pipeline:
        load = LoadDataFromHub(name="load")
        prefix = AddPrefix(name="prefix")
        generate = TextGeneration(name="generate", llm=OfflineLLM())
        load >> prefix >> generate
    return pipeline


def test_a_loader_built_without_its_source_gets_it_from_run(hub_dir: Path) -> None:
    pipeline = hub_pipeline()
    distiset = pipeline.run(
        parameters={
            "load": {"repo_id": str(hub_dir), "split": "test"},
            "prefix": {"prefix": ">> "},
        },
        progress=False,
    )
    rows = distiset["default"]["train"].to_list()
    assert [r["prefixed"] for r in rows] == [">> q0", ">> q1", ">> q2"]
    assert all(r["generation"] for r in rows)


def test_the_run_names_every_missing_parameter_in_one_error() -> None:
    pipeline = hub_pipeline()
    with pytest.raises(RuntimeParameterError) as info:
        pipeline.run(progress=False)
    message = str(info.value)
    assert "load.repo_id" in message and "prefix.prefix" in message
    assert "\n" not in message
    assert "run(parameters=" in message


def test_a_pipeline_waiting_for_parameters_round_trips(tmp_path: Path, hub_dir: Path) -> None:
    saved = hub_pipeline().save(tmp_path / "pipeline.yaml")
    loaded = Pipeline.from_file(saved, allowed_modules=[__name__])
    info = {
        p["name"]: p["optional"]
        for p in loaded.dump()["pipeline"]["steps"][0]["runtime_parameters_info"]
    }
    assert info["repo_id"] is False and info["split"] is True
    distiset = loaded.run(
        parameters={"load": {"repo_id": str(hub_dir), "split": "test"}, "prefix": {"prefix": "-"}},
        progress=False,
    )
    assert len(distiset["default"]["train"]) == 3


def test_data_files_from_the_cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    rows = tmp_path / "rows.jsonl"
    rows.write_text("".join(json.dumps({"instruction": f"q{i}", "x": i}) + "\n" for i in range(4)))
    with Pipeline(name="files") as pipeline:
        LoadDataFromFileSystem(name="load") >> KeepColumns(name="keep", columns=["instruction"])
    config = str(pipeline.save(tmp_path / "files.yaml"))
    out = tmp_path / "out"
    monkeypatch.chdir(tmp_path)
    runner = CliRunner()

    missing = runner.invoke(app, ["pipeline", "run", "--config", config, "--progress", "plain"])
    assert_one_line_error(missing, 2, "missing runtime parameter load.data_files")

    given = ["--param", f"load.data_files={rows}", "--output", str(out)]
    result = runner.invoke(app, ["pipeline", "run", "--config", config, *given])
    assert result.exit_code == 0, result.stderr
    saved = Distiset.load_from_disk(out)
    assert saved["default"]["train"]["instruction"] == ["q0", "q1", "q2", "q3"]


class Repeat(Step):
    """distilabel writes optional runtime parameters as Optional[RuntimeParameter[T]]."""

    times: Optional[RuntimeParameter[int]] = Field(default=None, description="Copies.")  # noqa: UP045

    @property
    def inputs(self) -> list[str]:
        return ["instruction"]

    @property
    def outputs(self) -> list[str]:
        return ["repeated"]

    def process(self, inputs: StepInput) -> StepOutput:
        for row in inputs:
            row["repeated"] = row["instruction"] * (self.times or 1)
        yield inputs


def test_optional_runtime_parameters_written_distilabels_way(hub_dir: Path) -> None:
    with Pipeline(name="optional") as pipeline:
        load = LoadDataFromHub(name="load", streaming=True)  # accepted: synthflow streams
        load >> Repeat(name="repeat")
    distiset = pipeline.run(
        parameters={"load": {"repo_id": str(hub_dir), "split": "test"}, "repeat": {"times": 2}},
        progress=False,
    )
    assert distiset["default"]["train"]["repeated"] == ["q0q0", "q1q1", "q2q2"]
