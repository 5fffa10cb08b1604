"""LoadDataFromDisk over every saved layout (a datasets directory, synthflow's Distiset,
distilabel's Distiset) and DataSampler, standalone and in pipelines."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from datasets import Dataset, DatasetDict

from synthflow.errors import PipelineValidationError
from synthflow.models.llms import OfflineLLM
from synthflow.pipeline import Pipeline
from synthflow.steps import (
    CombineOutputs,
    DataSampler,
    KeepColumns,
    LoadDataFromDicts,
    LoadDataFromDisk,
)
from synthflow.steps.tasks import TextGeneration


def rows_of(distiset: Any, name: str = "default") -> list[dict[str, Any]]:
    return list(distiset[name]["train"])


def batches(step: Any, offset: int = 0) -> list[list[dict[str, Any]]]:
    step.load()
    return [list(batch) for batch in step.process(offset)]


@pytest.fixture
def saved_distiset(tmp_path: Path) -> Path:
    """A Distiset of two leaves, saved by a real run."""
    with Pipeline(name="two-leaves") as pipeline:
        load = LoadDataFromDicts(data=[{"instruction": f"q{i}"} for i in range(7)])
        gen = TextGeneration(name="gen", llm=OfflineLLM(model="m"))
        load >> gen >> KeepColumns(name="answers", columns=["instruction", "generation"])
        load >> KeepColumns(name="questions", columns=["instruction"])
    pipeline.run(progress=False).save_to_disk(tmp_path / "distiset")
    return tmp_path / "distiset"


def test_a_dataset_saved_with_save_to_disk_streams_in_batches(tmp_path: Path) -> None:
    Dataset.from_dict({"text": [f"t{i}" for i in range(10)], "n": list(range(10))}).save_to_disk(
        tmp_path / "ds"
    )
    loader = LoadDataFromDisk(dataset_path=str(tmp_path / "ds"), batch_size=4)
    assert [len(b) for b in batches(loader)] == [4, 4, 2]
    assert batches(loader, offset=8) == [[{"text": "t8", "n": 8}, {"text": "t9", "n": 9}]]
    assert loader.outputs == ["text", "n"]


def test_a_dataset_dict_split_feeds_a_pipeline(tmp_path: Path) -> None:
    DatasetDict(
        {
            "train": Dataset.from_dict({"instruction": ["a", "b"]}),
            "test": Dataset.from_dict({"instruction": ["c", "d", "e"]}),
        }
    ).save_to_disk(tmp_path / "dd")
    with Pipeline(name="from-disk") as pipeline:
        load = LoadDataFromDisk(name="load", dataset_path=tmp_path / "dd", split="test")
        load >> TextGeneration(name="gen", llm=OfflineLLM(model="m"))

    rows = rows_of(pipeline.run(progress=False))
    assert [r["instruction"] for r in rows] == ["c", "d", "e"]
    assert all(r["generation"] for r in rows)
    assert batches(LoadDataFromDisk(dataset_path=str(tmp_path / "dd"))) == [
        [{"instruction": "a"}, {"instruction": "b"}]
    ]


def test_a_subset_of_a_saved_distiset_feeds_another_pipeline(saved_distiset: Path) -> None:
    with Pipeline(name="second") as pipeline:
        load = LoadDataFromDisk(
            name="load", dataset_path=str(saved_distiset), config="answers", num_examples=5
        )
        load >> KeepColumns(name="keep", columns=["generation", "instruction"])

    rows = rows_of(pipeline.run(progress=False))
    assert [r["instruction"] for r in rows] == [f"q{i}" for i in range(5)]
    assert all(r["generation"] for r in rows)
    questions = LoadDataFromDisk(dataset_path=str(saved_distiset), config="questions")
    assert questions.outputs == ["instruction"]


def test_a_distiset_of_one_leaf_loads_under_its_default_config(tmp_path: Path) -> None:
    with Pipeline(name="one-leaf") as pipeline:
        LoadDataFromDicts(data=[{"a": 1}, {"a": 2}])
    pipeline.run(progress=False).save_to_disk(tmp_path / "one")
    loader = LoadDataFromDisk(dataset_path=str(tmp_path / "one"), is_distiset=True)
    assert batches(loader) == [[{"a": 1}, {"a": 2}]]


def test_a_distiset_saved_by_distilabel_loads_by_config_and_split(tmp_path: Path) -> None:
    root = tmp_path / "distilabel-distiset"  # distilabel saves each subset as a DatasetDict
    DatasetDict({"train": Dataset.from_dict({"prompt": ["x", "y"]})}).save_to_disk(root / "leaf")
    (root / "pipeline.yaml").write_text("distilabel: {}\n")
    loader = LoadDataFromDisk(dataset_path=str(root), is_distiset=True, config="leaf")
    assert batches(loader) == [[{"prompt": "x"}, {"prompt": "y"}]]


def test_one_line_errors_name_what_there_is(saved_distiset: Path, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="set config to one of: answers, questions"):
        batches(LoadDataFromDisk(dataset_path=str(saved_distiset), config="nope"))
    with pytest.raises(ValueError, match="no split 'test'; set split to one of: train"):
        batches(LoadDataFromDisk(dataset_path=str(saved_distiset), config="answers", split="test"))
    with pytest.raises(ValueError, match="is not a directory"):
        batches(LoadDataFromDisk(dataset_path=str(tmp_path / "missing")))
    with Pipeline(name="bad") as pipeline:
        load = LoadDataFromDisk(dataset_path=str(saved_distiset), config="nope")
        load >> KeepColumns(columns=["instruction"])
    with pytest.raises(PipelineValidationError, match="set config to one of"):
        pipeline.run(progress=False)


def test_load_data_from_disk_round_trips_through_yaml(saved_distiset: Path) -> None:
    from synthflow.serialization import to_text

    with Pipeline(name="yaml") as pipeline:
        LoadDataFromDisk(dataset_path=str(saved_distiset), config="questions", batch_size=3)
    loaded = Pipeline.from_yaml(to_text(pipeline.dump(), "yaml"))
    assert loaded.signature == pipeline.signature
    loaded.trust(paths=[saved_distiset])  # a loaded file reads outside the working directory
    assert [r["instruction"] for r in rows_of(loaded.run(progress=False))] == [
        f"q{i}" for i in range(7)
    ]


# -- DataSampler ------------------------------------------------------------------------------


def test_data_sampler_standalone_as_in_distilabels_docs() -> None:
    sampler = DataSampler(
        data=[{"sample": f"sample {i}"} for i in range(30)], samples=10, size=2, batch_size=4
    )
    got = batches(sampler)
    assert [len(b) for b in got] == [4, 4, 2]
    for row in (r for b in got for r in b):
        assert list(row) == ["sample"] and len(row["sample"]) == 2
        assert all(s.startswith("sample ") for s in row["sample"])
    assert sampler.outputs == ["sample"]


def test_data_sampler_with_a_seed_draws_the_same_and_resumes_the_same() -> None:
    data = [{"q": f"q{i}", "a": f"a{i}"} for i in range(50)]
    first = batches(DataSampler(data=data, samples=9, size=3, batch_size=4, seed=7))
    again = batches(DataSampler(data=data, samples=9, size=3, batch_size=4, seed=7))
    resumed = batches(DataSampler(data=data, samples=9, size=3, batch_size=4, seed=7), offset=4)
    other = batches(DataSampler(data=data, samples=9, size=3, batch_size=4, seed=8))
    assert first == again
    assert [r for b in resumed for r in b] == [r for b in first for r in b][4:]
    assert first != other
    for row in (r for b in first for r in b):  # each sample's columns come from the same rows
        assert [q[1:] for q in row["q"]] == [a[1:] for a in row["a"]]


def test_data_sampler_gives_each_row_of_another_source_its_examples() -> None:
    examples = [{"example": f"e{i}"} for i in range(20)]
    with Pipeline(name="few-shot") as pipeline:
        seeds = LoadDataFromDicts(data=[{"topic": f"t{i}"} for i in range(6)], batch_size=4)
        sampler = DataSampler(data=examples, size=3, samples=6, batch_size=4, seed=1)
        [seeds, sampler] >> CombineOutputs(name="combine")

    rows = rows_of(pipeline.run(progress=False))
    assert [r["topic"] for r in rows] == [f"t{i}" for i in range(6)]
    assert all(len(r["example"]) == 3 for r in rows)


def test_data_sampler_needs_rows() -> None:
    with pytest.raises(ValueError, match="at least one row"):
        DataSampler(data=[])


def test_data_sampler_keeps_its_data_through_yaml() -> None:
    from synthflow.serialization import to_text

    with Pipeline(name="sampler-yaml") as pipeline:
        DataSampler(data=[{"x": 1}, {"x": 2}], size=2, samples=3, seed=5)
    loaded = Pipeline.from_yaml(to_text(pipeline.dump(), "yaml"))
    assert loaded.signature == pipeline.signature
    rows = rows_of(loaded.run(progress=False))
    assert len(rows) == 3 and all(set(r["x"]) <= {1, 2} and len(r["x"]) == 2 for r in rows)
