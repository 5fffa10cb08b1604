"""Live progress: rows out counted as they leave a step, totals and ETA where the source size is
known, and the pipeline's name on every line and in the table's title."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import anyio
import pytest

from synthflow.errors import StepError
from synthflow.pipeline import Pipeline, _progress
from synthflow.steps import GlobalStep, LoadDataFromDicts, Step, StepInput
from synthflow.steps.base import Row
from synthflow.steps.tasks import TextGeneration
from synthflow.testing import FunctionLLM


def one_slow_row(slow: str, seconds: float) -> FunctionLLM:
    """Answers at once, except the prompt ``slow``, which takes ``seconds``."""

    async def fn(messages: list[dict[str, Any]]) -> str:
        prompt = str(messages[-1]["content"])
        if prompt == slow:
            await anyio.sleep(seconds)
        return f"answer to {prompt}"

    return FunctionLLM(fn=fn)


def ten_rows(llm: FunctionLLM, name: str = "live") -> Pipeline:
    with Pipeline(name=name) as pipeline:
        load = LoadDataFromDicts(name="load", data=[{"instruction": f"q{i}"} for i in range(10)])
        load >> TextGeneration(name="gen", llm=llm, concurrency=10)
    return pipeline


def test_plain_lines_count_rows_out_as_they_leave_and_name_the_pipeline(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(_progress, "PLAIN_INTERVAL", 0.05)
    # Nine rows are answered at once; the tenth keeps the step running for a second.
    ten_rows(one_slow_row("q9", 1.0)).run(progress="plain")

    lines = capsys.readouterr().err.strip().splitlines()
    progress = [line for line in lines if ": in=" in line]
    assert progress and all(re.match(r"\[synthflow live +\d+\.\ds\] ", line) for line in progress)
    # While the slow row is in flight the step has already put nine rows out, of ten.
    during = [line for line in progress if " gen: in=10 out=9/10 " in line]
    assert during, "\n".join(progress)
    assert all(re.search(r" eta=\d+s", line) for line in during)
    assert " load: in=0 out=10/10 errors=0 " in progress[-2]
    assert " gen: in=10 out=10/10 errors=0 " in progress[-1] and " eta=0s" in progress[-1]


def test_the_rich_table_is_titled_with_the_pipeline_and_shows_totals(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("COLUMNS", "200")  # one table row per line
    ten_rows(one_slow_row("q9", 0.0), name="titled").run(progress="rich")

    table = capsys.readouterr().err
    assert re.search(r"titled — \d+\.\ds", table)
    gen = next(line for line in table.splitlines() if " gen " in line)
    assert " 10/10 " in gen


class Total(GlobalStep):
    @property
    def inputs(self) -> list[str]:
        return ["n"]

    def process(self, inputs: StepInput) -> Iterator[list[Row]]:
        yield [{"n": sum(row["n"] for row in inputs)}]


class Double(Step):
    @property
    def inputs(self) -> list[str]:
        return ["n"]

    def process(self, inputs: StepInput) -> Iterator[list[Row]]:
        for row in inputs:
            row["n"] *= 2
        yield inputs


def test_totals_follow_the_sources_until_a_global_step() -> None:
    with Pipeline(name="totals") as pipeline:
        load = LoadDataFromDicts(name="load", data=[{"n": i} for i in range(10)])
        load >> Double(name="double") >> Total(name="total") >> Double(name="after")
    stats = pipeline.run(progress=False).stats

    assert {name: s.rows_total for name, s in stats.items()} == {
        "load": 10,
        "double": 10,
        "total": 10,
        "after": None,  # a global step may make any number of rows
    }
    assert stats["load"].source and not stats["double"].source


def test_a_dataset_given_to_run_has_a_known_size() -> None:
    with Pipeline(name="fed") as pipeline:
        Double(name="double")
    stats = pipeline.run(dataset=[{"n": i} for i in range(7)], progress=False).stats
    assert stats["double"].rows_total == 7 and stats["double"].rows_out == 7


CUT_AT: list[int] = []


class PowerCut(Step):
    @property
    def inputs(self) -> list[str]:
        return ["n"]

    def process(self, inputs: StepInput) -> Iterator[list[Row]]:
        if any(row["n"] in CUT_AT for row in inputs):
            raise RuntimeError("power cut")
        yield inputs


def test_a_resumed_run_expects_only_the_rows_left() -> None:
    with Pipeline(name="resumed") as pipeline:
        load = LoadDataFromDicts(name="load", data=[{"n": i} for i in range(50)], batch_size=5)
        load >> PowerCut(name="work", input_batch_size=5, on_error="fail")
    CUT_AT[:] = [30]
    try:
        with pytest.raises(StepError):
            pipeline.run(progress=False)
    finally:
        CUT_AT.clear()
    stats = pipeline.run(progress=False).stats
    assert 0 < stats["load"].rows_total == stats["load"].rows_out < 50  # type: ignore[operator]


@pytest.mark.parametrize(
    ("seconds", "text"), [(0.2, "0s"), (42, "42s"), (61, "1m01s"), (3600 * 2 + 300, "2h05m")]
)
def test_durations_read_at_a_glance(seconds: float, text: str) -> None:
    assert _progress.format_duration(seconds) == text
