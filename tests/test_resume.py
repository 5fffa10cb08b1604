"""Output on disk as it arrives; a crashed run's rows stay readable and a re-run resumes."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from datasets import Dataset

from synthflow.errors import StepError
from synthflow.pipeline import Pipeline
from synthflow.runtime_parameters import RuntimeParameter
from synthflow.steps import LoadDataFromDicts, Step, StepInput
from synthflow.steps.base import Row

OFFSETS: list[int] = []


class RecordingLoad(LoadDataFromDicts):
    def process(self, offset: int = 0) -> Iterator[list[Row]]:
        OFFSETS.append(offset)
        yield from super().process(offset)


POWER_CUT_AT: list[int] = []  # an outside event, not a parameter of the run


class FailAt(Step):
    label: RuntimeParameter[str] = "seen"

    @property
    def inputs(self) -> list[str]:
        return ["n"]

    def process(self, inputs: StepInput) -> Iterator[list[Row]]:
        for row in inputs:
            if row["n"] in POWER_CUT_AT:
                raise RuntimeError("power cut")
            row[self.label] = True
        yield inputs


def run_until_a_power_cut(pipeline: Pipeline, at: int = 42) -> None:
    """Run ``pipeline`` until the row numbered ``at`` takes the power down with it."""
    POWER_CUT_AT[:] = [at]
    try:
        with pytest.raises(StepError, match="power cut"):
            pipeline.run(progress=False)
    finally:
        POWER_CUT_AT.clear()


def build() -> Pipeline:
    with Pipeline(name="resumable") as pipeline:
        load = RecordingLoad(name="load", data=[{"n": i} for i in range(100)], batch_size=5)
        load >> FailAt(name="work", input_batch_size=5)
    return pipeline


def test_a_crashed_run_keeps_its_rows_and_the_next_run_appends() -> None:
    OFFSETS.clear()
    pipeline = build()
    run_until_a_power_cut(pipeline)

    # The parts are Arrow streams: datasets (or pyarrow) reads them as they are.
    parts = sorted((pipeline.run_dir / "data" / "work").glob("part-*.arrow"))
    written = [n for p in parts for n in Dataset.from_file(str(p))["n"]]
    assert written == list(range(len(written))) and 0 < len(written) <= 42

    distiset = pipeline.run(progress=False)  # the same run again
    rows = list(distiset["default"]["train"])
    assert [r["n"] for r in rows] == list(range(100))
    assert all(r["seen"] for r in rows)
    assert "_sf_row_id" not in rows[0]
    assert [0, len(written)] == OFFSETS  # the second run's source started after the crash


def test_a_completed_run_is_rerun_from_the_start() -> None:
    OFFSETS.clear()
    pipeline = build()
    pipeline.run(progress=False)
    distiset = pipeline.run(progress=False)
    assert [r["n"] for r in distiset["default"]["train"]] == list(range(100))
    assert OFFSETS == [0, 0]


def test_use_cache_false_starts_over_after_a_crash() -> None:
    OFFSETS.clear()
    pipeline = build()
    run_until_a_power_cut(pipeline)
    distiset = pipeline.run(use_cache=False, progress=False)
    assert [r["n"] for r in distiset["default"]["train"]] == list(range(100))
    assert OFFSETS == [0, 0]


def test_changed_parameters_start_over_unless_they_only_change_speed(
    capsys: pytest.CaptureFixture[str],
) -> None:
    OFFSETS.clear()
    pipeline = build()
    run_until_a_power_cut(pipeline)

    # A faster batch size shapes no row: the run resumes.
    pipeline.run(parameters={"work": {"input_batch_size": 10}, "load": {"batch_size": 10}})
    assert OFFSETS[0] == 0 and OFFSETS[1] > 0

    # A parameter that shapes the rows, after another crash: the run starts over, and says so.
    OFFSETS.clear()
    run_until_a_power_cut(pipeline)
    distiset = pipeline.run(parameters={"work": {"label": "checked"}}, progress=False)
    assert OFFSETS == [0, 0]
    assert all(r["checked"] for r in distiset["default"]["train"])
    assert "runtime parameters changed since the interrupted run" in capsys.readouterr().err


def test_a_column_typed_differently_in_two_parts_becomes_text_instead_of_failing(
    tmp_path: Path,
) -> None:
    from synthflow.pipeline._sink import LeafWriter

    writer = LeafWriter(tmp_path / "leaf", part_rows=2)
    # Parts of 2 rows: "meta" is a struct in the first part and a number in the second.
    rows = [{"meta": {"a": 1}}, {"meta": {"a": 2}}, {"meta": 3}, {"meta": 4}]
    numbered = [{**row, "_sf_row_id": i} for i, row in enumerate(rows)]
    writer.write(numbered[:2])
    writer.write(numbered[2:])
    assert len(list((tmp_path / "leaf").glob("part-*.arrow"))) == 2

    dataset = Dataset.from_file(str(writer.finish()))
    assert dataset["meta"] == ['{"a":1}', '{"a":2}', "3", "4"]
    assert dataset.column_names == ["meta"]
