"""The collector is tuned while a run is in progress and put back exactly as it was after it."""

from __future__ import annotations

import gc
import threading
from collections.abc import Iterator

import anyio
import pytest

from synthflow.errors import StepError
from synthflow.pipeline import Pipeline
from synthflow.pipeline._gc import YOUNG_THRESHOLD
from synthflow.steps import LoadDataFromDicts, StepInput, step
from synthflow.steps.base import Row

SEEN: list[tuple[tuple[int, int, int], int]] = []


@step(inputs=["n"], outputs=[])
def RecordCollector(inputs: StepInput) -> Iterator[list[Row]]:
    SEEN.append((gc.get_threshold(), gc.get_freeze_count()))
    if any(row["n"] < 0 for row in inputs):
        raise ValueError("negative")
    yield inputs


FAST_RUN_ENDED = threading.Event()


@step(inputs=["n"], outputs=[])
def WaitForFastRun(inputs: StepInput) -> Iterator[list[Row]]:
    FAST_RUN_ENDED.wait(timeout=10)
    yield inputs


def build(name: str, data: list[Row]) -> Pipeline:
    with Pipeline(name=name) as pipeline:
        LoadDataFromDicts(name="load", data=data) >> RecordCollector(name="record")
    return pipeline


@pytest.fixture(autouse=True)
def _restore_collector() -> Iterator[None]:
    threshold, enabled = gc.get_threshold(), gc.isenabled()
    SEEN.clear()
    yield
    gc.set_threshold(*threshold)
    gc.unfreeze()
    (gc.enable if enabled else gc.disable)()


def test_a_run_raises_the_young_threshold_freezes_and_restores_both() -> None:
    gc.set_threshold(700, 10, 10)
    build("gc", [{"n": 1}]).run(progress=False)
    (threshold, frozen), *_ = SEEN
    assert threshold == (YOUNG_THRESHOLD, 10, 10) and frozen > 0
    assert gc.get_threshold() == (700, 10, 10)
    assert gc.get_freeze_count() == 0


def test_a_failed_run_restores_the_collector_too() -> None:
    gc.set_threshold(500, 7, 9)
    with pytest.raises(StepError, match="negative"):
        build("gc-fails", [{"n": -1}]).run(progress=False)
    assert SEEN[0][0][0] == YOUNG_THRESHOLD
    assert gc.get_threshold() == (500, 7, 9)
    assert gc.get_freeze_count() == 0


def test_objects_the_application_froze_stay_frozen() -> None:
    gc.freeze()
    frozen_by_app = gc.get_freeze_count()
    build("gc-app-froze", [{"n": 1}]).run(progress=False)
    # Frozen objects can still be freed by reference counting, so counts only go down.
    assert 0 < SEEN[0][1] <= frozen_by_app  # the run froze nothing more
    assert 0 < gc.get_freeze_count() <= frozen_by_app  # and unfroze nothing


def test_a_disabled_collector_is_left_alone() -> None:
    gc.disable()
    gc.set_threshold(700, 10, 10)
    build("gc-off", [{"n": 1}]).run(progress=False)
    assert SEEN == [((700, 10, 10), 0)]
    assert not gc.isenabled()


def test_overlapping_runs_restore_the_collector_when_the_last_one_ends() -> None:
    gc.set_threshold(700, 10, 10)
    FAST_RUN_ENDED.clear()
    with Pipeline(name="gc-slow") as slow:
        LoadDataFromDicts(name="load", data=[{"n": 1}]) >> WaitForFastRun(
            name="wait", executor="thread"
        )
    fast = build("gc-fast", [{"n": 1}])
    after_fast_run: list[tuple[int, int, int]] = []

    async def run_fast_then_let_slow_end() -> None:
        await fast.arun(progress=False)
        after_fast_run.append(gc.get_threshold())
        FAST_RUN_ENDED.set()

    async def main() -> None:
        async with anyio.create_task_group() as tg:
            tg.start_soon(slow.arun, None)
            tg.start_soon(run_fast_then_let_slow_end)

    anyio.run(main)
    assert after_fast_run == [(YOUNG_THRESHOLD, 10, 10)]  # the slow run was still going
    assert gc.get_threshold() == (700, 10, 10)
    assert gc.get_freeze_count() == 0
