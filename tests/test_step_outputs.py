"""A ``@step`` that never sets an output column it declares is told so, once per step."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Iterator

import pytest

from synthflow.pipeline import Pipeline
from synthflow.steps import LoadDataFromDicts, StepInput, step
from synthflow.steps.base import Row


@step(inputs=["text"], outputs=["shout"])
def Misspelt(inputs: StepInput) -> Iterator[list[Row]]:
    for row in inputs:
        row["shuot"] = row["text"].upper()
    yield inputs


@step(inputs=["text"], outputs=["shout", "length"])
def NoneOfThem(inputs: StepInput) -> Iterator[list[Row]]:
    yield inputs


@step(inputs=["text"], outputs=["shout"])
async def AsyncMisspelt(inputs: StepInput) -> AsyncIterator[list[Row]]:
    for row in inputs:
        row["shuot"] = row["text"].upper()
    yield inputs


@step(inputs=["text"], outputs=["shout"])
def Sometimes(inputs: StepInput) -> Iterator[list[Row]]:
    for row in inputs:
        if row["text"] == "t37":  # one row of one late batch
            row["shout"] = "T37"
    yield inputs


def run(step_cls: type, caplog: pytest.LogCaptureFixture) -> list[str]:
    with Pipeline(name="outputs") as pipeline:
        data = [{"text": f"t{i}"} for i in range(40)]
        load = LoadDataFromDicts(name="load", data=data, batch_size=10)
        load >> step_cls(name="work", input_batch_size=10)
    with caplog.at_level(logging.WARNING, logger="synthflow.steps"):
        pipeline.run(progress=False, use_cache=False)
    return [r.getMessage() for r in caplog.records if r.name == "synthflow.steps"]


@pytest.mark.parametrize("step_cls", [Misspelt, AsyncMisspelt])
def test_an_output_never_set_is_named_once(
    step_cls: type, caplog: pytest.LogCaptureFixture
) -> None:
    warnings = run(step_cls, caplog)
    assert warnings == [
        f"step 'work' ({step_cls.__name__}) declares output column 'shout' but never set it in "
        "any row: set it in the function (row['shout'] = ...), or take it out of "
        "@step(outputs=...)"
    ]


def test_every_unset_output_is_named_in_the_one_warning(caplog: pytest.LogCaptureFixture) -> None:
    [warning] = run(NoneOfThem, caplog)
    assert "declares output columns 'length', 'shout' but never set them" in warning


def test_an_output_set_in_some_rows_is_not_warned_about(caplog: pytest.LogCaptureFixture) -> None:
    assert run(Sometimes, caplog) == []
