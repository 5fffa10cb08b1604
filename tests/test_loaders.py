"""Dataset loaders: a Hugging Face dataset (here a local dataset directory, as there is no
network) and data files, streamed in batches, with resume offsets and one-line errors."""

from __future__ import annotations

import gc
import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from synthflow.distiset import Distiset
from synthflow.errors import PipelineValidationError
from synthflow.pipeline import Pipeline
from synthflow.steps import KeepColumns, LoadDataFromDicts, LoadDataFromFileSystem, LoadDataFromHub
from tests.test_cli import synthflow


def write_jsonl(path: Path, rows: list[dict[str, object]]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return path


@pytest.fixture
def dataset_dir(tmp_path: Path) -> Path:
    """A dataset directory laid out as on the Hub: one file per split."""
    root = tmp_path / "instructions"
    write_jsonl(root / "data" / "train.jsonl", [{"prompt": f"p{i}", "n": i} for i in range(25)])
    write_jsonl(root / "data" / "test.jsonl", [{"prompt": f"t{i}", "n": i} for i in range(5)])
    return root


def test_a_dataset_split_streams_in_batches_with_its_columns(dataset_dir: Path) -> None:
    with Pipeline(name="hub") as pipeline:
        load = LoadDataFromHub(name="load_dataset", repo_id=str(dataset_dir), batch_size=4)
        load >> KeepColumns(name="keep", columns=["prompt"])  # "prompt" read from the data

    distiset = pipeline.run(progress=False, parameters={"load_dataset": {"split": "test"}})
    assert distiset["default"]["train"]["prompt"] == [f"t{i}" for i in range(5)]
    assert distiset.stats["load_dataset"].batches == 2
    assert load.outputs == ["prompt", "n"]


def test_columns_follow_the_source_the_runtime_parameters_pick(
    dataset_dir: Path, tmp_path: Path
) -> None:
    other = write_jsonl(tmp_path / "other" / "train.jsonl", [{"question": "q"}])
    load = LoadDataFromHub(name="load", repo_id=str(dataset_dir))
    assert load.outputs == ["prompt", "n"]
    load.repo_id = str(other.parent)
    assert load.outputs == ["question"]


def test_loaders_round_trip_through_yaml(dataset_dir: Path, tmp_path: Path) -> None:
    with Pipeline(name="loaders") as pipeline:
        LoadDataFromHub(name="hub", repo_id=str(dataset_dir), split="test", num_examples=2)
        LoadDataFromFileSystem(name="files", data_files=[str(dataset_dir / "data/*.jsonl")])
    loaded = Pipeline.from_file(pipeline.save(tmp_path / "pipeline.yaml"))
    assert loaded.dump() == pipeline.dump()
    loaded.trust(paths=[dataset_dir])  # a loaded file reads outside the working directory
    distiset = loaded.run(progress=False)
    assert distiset["hub"]["train"]["prompt"] == ["t0", "t1"]
    assert len(distiset["files"]["train"]) == 30


def test_columns_num_examples_and_a_resume_offset(dataset_dir: Path) -> None:
    load = LoadDataFromHub(
        name="load", repo_id=str(dataset_dir), columns=["n"], num_examples=10, batch_size=4
    )
    assert load.outputs == ["n"]
    # A resumed run starts the source after the rows it already has.
    batches = list(load.process(offset=6))
    assert batches == [[{"n": 6}, {"n": 7}, {"n": 8}, {"n": 9}]]


# datasets' CSV reader leaves its file to the garbage collector when a stream stops early (the
# step reads the first row to learn the columns): collected inside the test, and not ours.
@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
@pytest.mark.parametrize("kind", ["jsonl", "csv", "parquet"])
def test_data_files_of_each_type_and_glob_patterns(tmp_path: Path, kind: str) -> None:
    rows = [{"prompt": f"p{i}", "n": i} for i in range(6)]
    for part in (0, 1):
        path = tmp_path / "files" / f"part{part}.{kind}"
        chunk = rows[part * 3 : part * 3 + 3]
        if kind == "jsonl":
            write_jsonl(path, chunk)
        elif kind == "csv":
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text("prompt,n\n" + "".join(f"{r['prompt']},{r['n']}\n" for r in chunk))
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
            pq.write_table(pa.Table.from_pylist(chunk), path)

    with Pipeline(name=f"files-{kind}") as pipeline:
        LoadDataFromFileSystem(name="files", data_files=str(tmp_path / "files" / f"*.{kind}"))

    got = pipeline.run(progress=False)["default"]["train"]
    assert sorted(zip(got["prompt"], got["n"], strict=True)) == [(f"p{i}", i) for i in range(6)]
    gc.collect()


@pytest.mark.parametrize(
    ("step", "message"),
    [
        (
            lambda tmp: LoadDataFromHub(name="load", repo_id=str(tmp / "missing")),
            "step 'load': can't load dataset '",
        ),
        (
            lambda tmp: LoadDataFromFileSystem(name="load", data_files=str(tmp / "nothing.jsonl")),
            "step 'load': can't load data files '",
        ),
        (
            lambda tmp: LoadDataFromFileSystem(name="load", data_files=str(tmp / "rows.xlsx")),
            "can't tell the type of '",
        ),
    ],
    ids=["missing-dataset", "missing-files", "unknown-extension"],
)
def test_a_source_that_cant_be_read_is_one_line_before_the_run(
    tmp_path: Path, step: object, message: str
) -> None:
    with Pipeline(name="bad-source") as pipeline:
        step(tmp_path) >> KeepColumns(name="keep", columns=["prompt"])  # type: ignore[operator]

    with pytest.raises(PipelineValidationError) as info:
        pipeline.run(progress=False)
    assert message in str(info.value) and "\n" not in str(info.value)


def test_the_seed_cli_example_picks_the_split_with_a_param(
    dataset_dir: Path, tmp_path: Path
) -> None:
    with Pipeline(name="from-hub") as pipeline:
        load = LoadDataFromHub(name="load_dataset", repo_id=str(dataset_dir))
        load >> KeepColumns(name="keep", columns=["prompt"])
    config = pipeline.save(tmp_path / "pipeline.yaml")

    result = synthflow(
        "pipeline", "run", "--config", str(config), "-o", str(tmp_path / "out"),
        "--param", f"load_dataset.repo_id={dataset_dir}", "--param", "load_dataset.split=test",
    )  # fmt: skip

    assert result.returncode == 0, result.stderr
    saved = Distiset.load_from_disk(tmp_path / "out")
    assert saved["default"]["train"]["prompt"] == [f"t{i}" for i in range(5)]


def test_a_saved_distiset_feeds_another_pipeline(tmp_path: Path) -> None:
    with Pipeline(name="first") as first:
        LoadDataFromDicts(name="load", data=[{"prompt": f"p{i}"} for i in range(4)])
    first.run(progress=False).save_to_disk(tmp_path / "saved")

    with Pipeline(name="second") as second:
        load = LoadDataFromHub(name="previous", repo_id=str(tmp_path / "saved"), config="default")
        load >> KeepColumns(name="keep", columns=["prompt"])
    assert second.run(progress=False)["default"]["train"]["prompt"] == [f"p{i}" for i in range(4)]
