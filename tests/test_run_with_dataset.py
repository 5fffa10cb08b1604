"""``pipeline.run(dataset=...)``: rows given at run time feed a pipeline without a source."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import datasets
import pandas as pd
import pytest

from synthflow.errors import PipelineValidationError
from synthflow.models.llms import OfflineLLM
from synthflow.pipeline import Pipeline
from synthflow.steps import KeepColumns, LoadDataFromDicts, StepInput, step
from synthflow.steps.base import Row
from synthflow.steps.generators import RowsOfDataset
from synthflow.steps.tasks import TextGeneration


@step(inputs=["instruction"], outputs=["loud"])
def Loud(inputs: StepInput) -> Iterator[list[Row]]:
    for row in inputs:
        row["loud"] = row["instruction"].upper()
    yield inputs


def sourceless() -> Pipeline:
    with Pipeline(name="sourceless") as pipeline:
        # A step named like the source run() adds: the source takes another name.
        Loud(name="dataset") >> TextGeneration(name="gen", llm=OfflineLLM())
    return pipeline


@pytest.mark.parametrize(
    "data",
    [
        [{"instruction": "a"}, {"instruction": "b"}, {"instruction": "c"}],
        pd.DataFrame({"instruction": ["a", "b", "c"]}),
        datasets.Dataset.from_dict({"instruction": ["a", "b", "c"]}),
    ],
    ids=["list", "dataframe", "dataset"],
)
def test_rows_of_each_kind_feed_the_first_steps(data: Any) -> None:
    distiset = sourceless().run(dataset=data, progress=False)
    rows = list(distiset["default"]["train"])
    assert [(r["instruction"], r["loud"]) for r in rows] == [("a", "A"), ("b", "B"), ("c", "C")]
    assert all(r["generation"] for r in rows)


def test_runs_over_different_datasets_give_their_own_rows() -> None:
    pipeline = sourceless()
    first = pipeline.run(dataset=[{"instruction": "x"}], progress=False)
    second = pipeline.run(dataset=[{"instruction": "y"}, {"instruction": "z"}], progress=False)
    assert first["default"]["train"]["loud"] == ["X"]
    assert second["default"]["train"]["loud"] == ["Y", "Z"]


def test_a_source_resumes_from_an_offset() -> None:
    for data in ([{"n": i} for i in range(5)], datasets.Dataset.from_dict({"n": list(range(5))})):
        source = RowsOfDataset.of(data, name="rows")
        source.batch_size = 2
        assert list(source.process(offset=3)) == [[{"n": 3}, {"n": 4}]]


@pytest.mark.parametrize(
    ("case", "message"),
    [
        ("has-a-source", "'load' is a generator step with rows of its own"),
        ("not-rows", "dataset must be a list of dicts, a pandas DataFrame or a datasets.Dataset"),
        ("missing-column", "step 'dataset' needs column 'instruction'"),
    ],
)
def test_bad_input_is_one_line_before_the_run(case: str, message: str) -> None:
    pipeline = sourceless()
    data: Any = [{"instruction": "a"}]
    if case == "has-a-source":
        with Pipeline(name="with-source") as pipeline:
            load = LoadDataFromDicts(name="load", data=data)
            load >> KeepColumns(name="keep", columns=["instruction"])
    elif case == "not-rows":
        data = "instruction,a"
    else:
        data = [{"prompt": "a"}]
    with pytest.raises(PipelineValidationError) as info:
        pipeline.run(dataset=data, progress=False)
    assert message in str(info.value) and "\n" not in str(info.value)
