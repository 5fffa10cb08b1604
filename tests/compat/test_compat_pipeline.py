"""distilabel's Pipeline surface: steps joined with pipeline=, save/load by path, run over a
dataset, dry runs, ray(), StepResources, make_generator_step and the pipeline templates."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from pydantic import Field

import synthflow.steps.tasks
from synthflow.models.llms import LLM, OpenAILLM
from synthflow.pipeline import InstructionResponsePipeline, Pipeline
from synthflow.steps import (
    GeneratorStep,
    KeepColumns,
    LoadDataFromDicts,
    LoadDataFromHub,
    Step,
    StepInput,
    StepOutput,
    StepResources,
    make_generator_step,
)
from synthflow.steps.tasks import TextGeneration
from synthflow.testing import OfflineLLM
from tests.servers import Reply, Request, fake_api


class Double(Step):
    @property
    def inputs(self) -> list[str]:
        return ["n"]

    @property
    def outputs(self) -> list[str]:
        return ["double"]

    def process(self, inputs: StepInput) -> StepOutput:
        for row in inputs:
            row["double"] = row["n"] * 2
        yield inputs


def numbers(n: int) -> list[dict[str, Any]]:
    return [{"n": i, "instruction": f"q{i}"} for i in range(n)]


def test_steps_join_a_pipeline_given_outside_a_with_block() -> None:
    pipeline = Pipeline(name="explicit")
    load = LoadDataFromDicts(name="load", data=numbers(3), pipeline=pipeline)
    double = Double(name="double", pipeline=pipeline)
    load >> double
    assert list(pipeline.steps) == ["load", "double"] and double.pipeline is pipeline
    distiset = pipeline.run(progress=False)
    assert distiset["default"]["train"]["double"] == [0, 2, 4]


def saved_pipeline() -> Pipeline:
    with Pipeline(name="saved") as pipeline:
        load = LoadDataFromDicts(name="load", data=numbers(2))
        load >> TextGeneration(name="gen", llm=OfflineLLM())
    return pipeline


@pytest.mark.parametrize("fmt", ["yaml", "json"])
def test_save_with_a_format_and_load_from_a_path(tmp_path: Path, fmt: str) -> None:
    pipeline = saved_pipeline()
    path = pipeline.save(tmp_path / "pipeline.cfg", format=fmt)  # type: ignore[arg-type]
    load = Pipeline.from_yaml if fmt == "yaml" else Pipeline.from_json
    for source in (path, str(path)):
        loaded = load(source)
        assert loaded.signature == pipeline.signature
        assert list(loaded.steps) == ["load", "gen"]


def test_from_yaml_and_from_json_still_take_text(tmp_path: Path) -> None:
    pipeline = saved_pipeline()
    yaml_text = pipeline.save(tmp_path / "p.yaml").read_text()
    json_text = pipeline.save(tmp_path / "p.json").read_text()
    assert Pipeline.from_yaml(yaml_text).signature == pipeline.signature
    assert Pipeline.from_json(json_text).signature == pipeline.signature
    assert Pipeline.from_json(json_text.encode()).signature == pipeline.signature


def test_run_over_a_dataset_in_batches_of_a_given_size() -> None:
    with Pipeline(name="fed") as pipeline:
        Double(name="double")
    distiset = pipeline.run(dataset=numbers(5), dataset_batch_size=2, progress=False)
    assert distiset["default"]["train"]["double"] == [0, 2, 4, 6, 8]
    assert distiset.stats["dataset"].batches == 3


def test_a_dry_run_takes_one_row_and_leaves_the_pipeline_as_it_was() -> None:
    with Pipeline(name="dry") as pipeline:
        load = LoadDataFromDicts(name="load", data=numbers(10), batch_size=4)
        load >> Double(name="double")
    signature = pipeline.signature
    distiset = pipeline.dry_run(parameters={"load": {"batch_size": 5}})
    assert distiset["default"]["train"]["double"] == [0]
    assert pipeline.steps["load"] is load and load.batch_size == 5
    assert pipeline.signature == signature
    assert len(pipeline.run(progress=False)["default"]["train"]) == 10


def test_a_dry_run_over_a_dataset() -> None:
    with Pipeline(name="dry-fed") as pipeline:
        Double(name="double")
    distiset = pipeline.dry_run(dataset=numbers(5), batch_size=2)
    assert distiset["default"]["train"]["double"] == [0, 2]


def test_ray_makes_the_pipeline_run_on_ray(monkeypatch: pytest.MonkeyPatch) -> None:
    pipeline = saved_pipeline()
    monkeypatch.setitem(sys.modules, "ray", None)  # Ray not installed
    with pytest.raises(ImportError) as info:
        pipeline.ray()
    assert "pip install 'synthflow[ray]'" in str(info.value) and "\n" not in str(info.value)
    monkeypatch.undo()
    pytest.importorskip("ray")
    assert pipeline.ray("ray://head:10001", {"namespace": "n"}) is pipeline  # distilabel's shape


def test_step_resources_map_replicas_onto_workers(tmp_path: Path) -> None:
    with Pipeline(name="resources") as pipeline:
        load = LoadDataFromDicts(name="load", data=numbers(6), batch_size=2)
        double = Double(name="double", resources=StepResources(replicas=3, cpus=1, gpus=1))
        gen = TextGeneration(name="gen", llm=OfflineLLM(), resources=StepResources(replicas=2))
        pinned = Double(name="pinned", workers=1, resources=StepResources(replicas=4))
        load >> double >> gen
        load >> pinned
    assert (double.executor, double.workers) == ("thread", 3)
    assert (gen.executor, gen.workers) == ("loop", 1)  # a task's rows are concurrent already
    assert pinned.workers == 1  # workers given explicitly win
    loaded = Pipeline.from_file(pipeline.save(tmp_path / "p.yaml"), allowed_modules=[__name__])
    resources = loaded.steps["double"].resources
    assert (resources.replicas, resources.gpus) == (3, 1)
    distiset = pipeline.run(parameters={"double": {"resources": {"replicas": 2}}}, progress=False)
    assert double.workers == 2
    assert sorted(distiset["pinned"]["train"]["double"]) == [0, 2, 4, 6, 8, 10]
    assert sorted(distiset["gen"]["train"]["double"]) == [0, 2, 4, 6, 8, 10]


def test_make_generator_step_from_a_list_and_a_dataframe() -> None:
    pandas = pytest.importorskip("pandas")
    pipeline = Pipeline(name="made")
    load = make_generator_step(numbers(3), pipeline=pipeline, batch_size=2)
    load >> Double(name="double", pipeline=pipeline)
    assert pipeline.run(progress=False)["default"]["train"]["double"] == [0, 2, 4]
    frame = make_generator_step(pandas.DataFrame({"n": [7]}), output_mappings={"n": "m"})
    assert frame.data == [{"n": 7}] and frame.output_mappings == {"n": "m"}
    with pytest.raises(TypeError, match="list of dicts"):
        make_generator_step("rows.jsonl")


class FakeMagpie(GeneratorStep):
    """Stands in for the catalog's MagpieGenerator (issue 10) to check the template's wiring."""

    llm: LLM
    system_prompt: str | None = None
    n_turns: int = 1
    num_rows: int = Field(default=10)

    @property
    def outputs(self) -> list[str]:
        return ["instruction", "response", "model_name"]

    def process(self, offset: int = 0) -> Iterator[list[dict[str, Any]]]:
        rows = [
            {"instruction": f"{self.system_prompt} {i}", "response": "r", "model_name": "m"}
            for i in range(offset, self.num_rows)
        ]
        for start in range(0, len(rows), self.batch_size):
            yield rows[start : start + self.batch_size]


def test_instruction_response_pipeline(monkeypatch: pytest.MonkeyPatch) -> None:
    if not hasattr(synthflow.steps.tasks, "MagpieGenerator"):
        with pytest.raises(NotImplementedError, match="MagpieGenerator"):
            InstructionResponsePipeline(llm=OfflineLLM())
        monkeypatch.setattr(synthflow.steps.tasks, "MagpieGenerator", FakeMagpie, raising=False)
    template = InstructionResponsePipeline(
        llm=OfflineLLM(), system_prompt="Be a poet.", num_rows=3, batch_size=2
    )
    assert list(template.pipeline.steps) == ["magpie"]
    distiset = template.run(progress=False)
    assert len(distiset["default"]["train"]) == 3


def test_keep_columns_after_a_pipeline_given_step() -> None:
    pipeline = Pipeline(name="keep")
    load = LoadDataFromDicts(data=numbers(2), pipeline=pipeline)
    keep = KeepColumns(columns=["n"], pipeline=pipeline)
    load >> keep
    assert pipeline.run(progress=False)["default"]["train"].column_names == ["n"]


def openai_answer(request: Request) -> Reply:
    body = request.json
    return Reply(
        body={
            "id": "c",
            "object": "chat.completion",
            "model": body["model"],
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": body["messages"][-1]["content"]},
                    "finish_reason": "stop",
                }
            ],
            "usage": {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5},
        }
    )


def test_a_distilabel_docs_shaped_pipeline_end_to_end(tmp_path: Path) -> None:
    """The shape of distilabel's quickstart: names assigned by the pipeline, the loader's source
    and the LLM's generation kwargs given at run time, a template over two columns."""
    data = tmp_path / "repo" / "data"
    data.mkdir(parents=True)
    rows = [{"prompt": f"p{i}", "topic": "cats"} for i in range(3)]
    (data / "test.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    with fake_api(openai_answer) as api:
        with Pipeline(name="simple-text-generation", description="docs shape") as pipeline:
            load_dataset = LoadDataFromHub(output_mappings={"prompt": "instruction"})
            text_generation = TextGeneration(
                llm=OpenAILLM(model="gpt-4o-mini", base_url=f"{api.url}/v1", api_key="sk-t"),
                template="About {{ topic }}: {{ instruction }}",
                columns=["instruction", "topic"],
                add_raw_input=True,
            )
            load_dataset >> text_generation
        distiset = pipeline.run(
            parameters={
                load_dataset.name: {"repo_id": str(data.parent), "split": "test"},
                text_generation.name: {"llm": {"generation_kwargs": {"temperature": 0.7}}},
            },
            use_cache=False,
            progress=False,
        )
    assert (load_dataset.name, text_generation.name) == (
        "load_data_from_hub_0",
        "text_generation_0",
    )
    out = distiset["default"]["train"].to_list()
    assert [r["generation"] for r in out] == ["About cats: p0", "About cats: p1", "About cats: p2"]
    assert {r["model_name"] for r in out} == {"gpt-4o-mini"}
    metadata = out[0]["synthflow_metadata"]
    assert metadata["raw_input_text_generation_0"][-1]["content"] == "About cats: p0"
    assert api.requests[0].json["temperature"] == 0.7


def test_sample_n_steps_routes_each_batch_to_n_llms_and_groups_them() -> None:
    """distilabel's routing example: every batch to two of three LLMs, grouped after."""
    from synthflow.pipeline import sample_n_steps
    from synthflow.steps import GroupColumns

    with fake_api(openai_answer) as api:
        with Pipeline(name="routing-batch-function") as pipeline:
            load_data = LoadDataFromDicts(data=numbers(6), batch_size=2)
            generations = [
                TextGeneration(
                    name=f"text_generation_with_{model.replace('.', '_')}",
                    llm=OpenAILLM(model=model, base_url=f"{api.url}/v1", api_key="sk-t"),
                )
                for model in ("gpt-4o", "gpt-4o-mini", "gpt-4.1")
            ]
            combine_columns = GroupColumns(columns=["generation", "model_name"])
            load_data >> sample_n_steps(2) >> generations >> combine_columns
        out = pipeline.run(use_cache=False, progress=False)["default"]["train"].to_list()
    assert [r["grouped_generation"] for r in out] == [[f"q{i}", f"q{i}"] for i in range(6)]
    assert all(len(set(r["grouped_model_name"])) == 2 for r in out)
    assert len(api.requests) == 12
