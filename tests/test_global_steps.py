"""Global steps: all rows in, output streamed on batch by batch, lineage kept or renumbered."""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence

import pytest

from synthflow.errors import StepError
from synthflow.pipeline import Pipeline
from synthflow.steps import DropDuplicates, GlobalStep, LoadDataFromDicts, StepInput, step
from synthflow.steps.base import Row
from synthflow.steps.tasks import ERROR_COLUMN

DOWNSTREAM_GOT_ROWS = threading.Event()
WAITED: list[bool] = []


class YieldThenWait(GlobalStep):
    """Yields its first half, then waits until the next step has received it."""

    @property
    def inputs(self) -> list[str]:
        return ["n"]

    def process(self, inputs: Sequence[Row]) -> Iterator[list[Row]]:
        rows = list(inputs)
        yield rows[: len(rows) // 2]
        WAITED.append(DOWNSTREAM_GOT_ROWS.wait(timeout=10))
        yield rows[len(rows) // 2 :]


@step(inputs=["n"])
def Notice(inputs: StepInput) -> Iterator[list[Row]]:
    DOWNSTREAM_GOT_ROWS.set()
    yield inputs


class Reorder(GlobalStep):
    """Keeps the first ``keep`` rows in order, then yields the rest in reverse."""

    keep: int = 0

    @property
    def inputs(self) -> list[str]:
        return ["n"]

    def process(self, inputs: Sequence[Row]) -> Iterator[list[Row]]:
        rows = list(inputs)
        yield rows[: self.keep]
        yield rows[self.keep :][::-1]


class FailAfter(GlobalStep):
    """Yields ``before`` rows, then raises."""

    before: int = 0

    @property
    def inputs(self) -> list[str]:
        return ["n"]

    @property
    def outputs(self) -> list[str]:
        return ["score"]

    def process(self, inputs: Sequence[Row]) -> Iterator[list[Row]]:
        rows = [{**row, "score": 1} for row in inputs]
        if self.before:
            yield rows[: self.before]
        raise RuntimeError("judge unavailable")


def numbers(n: int) -> LoadDataFromDicts:
    return LoadDataFromDicts(name="load", data=[{"n": i} for i in range(n)], batch_size=7)


def rows_of(distiset: object) -> list[dict[str, object]]:
    return list(distiset["default"]["train"])  # type: ignore[index]


def test_a_global_step_sends_each_batch_on_before_it_finishes() -> None:
    DOWNSTREAM_GOT_ROWS.clear()
    WAITED.clear()
    with Pipeline(name="global-streams") as pipeline:
        numbers(40) >> YieldThenWait(name="global", executor="thread") >> Notice(name="notice")

    distiset = pipeline.run(progress=False)
    # The next step had the first half while process() was still running.
    assert WAITED == [True]
    assert [r["n"] for r in rows_of(distiset)] == list(range(40))
    assert distiset.stats["global"].batches == 2


@pytest.mark.parametrize("keep", [0, 5])
def test_rows_after_the_first_out_of_order_one_start_a_new_lineage(keep: int) -> None:
    with Pipeline(name=f"global-reorders-{keep}") as pipeline:
        numbers(20) >> Reorder(name="reorder", keep=keep) >> Notice(name="after")

    rows = rows_of(pipeline.run(progress=False))
    # The dataset is in the global step's output order, every row once.
    assert [r["n"] for r in rows] == list(range(keep)) + list(range(19, keep - 1, -1))


def test_a_global_step_that_fails_before_yielding_follows_its_error_policy() -> None:
    with Pipeline(name="global-fails-early") as pipeline:
        numbers(5) >> FailAfter(name="judge", on_error="null")

    rows = rows_of(pipeline.run(progress=False))
    assert [r["n"] for r in rows] == list(range(5))
    assert all(r["score"] is None for r in rows)
    assert all(r[ERROR_COLUMN] == "judge: RuntimeError: judge unavailable" for r in rows)


def test_a_global_step_that_fails_after_yielding_fails_the_run() -> None:
    with Pipeline(name="global-fails-late") as pipeline:
        numbers(5) >> FailAfter(name="judge", before=2, on_error="null")

    with pytest.raises(StepError, match="step 'judge' failed: RuntimeError: judge unavailable"):
        pipeline.run(progress=False)


class ReturnsList(GlobalStep):
    """A plain function (not a generator) returning one batch; records its thread."""

    @property
    def inputs(self) -> list[str]:
        return ["n"]

    def process(self, inputs: Sequence[Row]) -> list[Row]:  # type: ignore[override]
        called_from.append(threading.get_ident())
        return [row for row in inputs if row["n"] % 3 == 0]


called_from: list[int] = []


@pytest.mark.parametrize("executor", ["loop", "thread", "process"])
def test_a_global_step_returning_a_list_runs_on_its_executor(executor: str) -> None:
    called_from.clear()
    with Pipeline(name=f"global-returns-{executor}") as pipeline:
        numbers(10) >> ReturnsList(name="every_third", executor=executor)

    rows = rows_of(pipeline.run(progress=False))
    assert [r["n"] for r in rows] == [0, 3, 6, 9]
    if executor == "loop":
        assert called_from == [threading.get_ident()]
    elif executor == "thread":
        assert called_from and called_from[0] != threading.get_ident()
    else:
        assert called_from == []  # it ran in a worker process


def test_a_spilled_input_reaches_a_global_step_in_a_worker_process() -> None:
    data = [{"t": f"t{i % 7}"} for i in range(60)]
    with Pipeline(name="global-spills-to-a-worker") as pipeline:
        load = LoadDataFromDicts(name="load", data=data, batch_size=8)
        dedup = DropDuplicates(name="d", columns=["t"], spill_threshold=10, executor="process")
        load >> dedup

    distiset = pipeline.run(progress=False)
    assert distiset["default"]["train"]["t"] == [f"t{i}" for i in range(7)]
    assert distiset.stats["d"].spilled
    assert not list((pipeline.run_dir / "spill").glob("**/*.spill"))  # removed after the run


@step(inputs=["n"], outputs=["seen"])
def Seen(inputs: StepInput) -> Iterator[list[Row]]:
    yield [{**row, "seen": True} for row in inputs]


@step(inputs=["n"])
def JoinBranches(*inputs: StepInput) -> Iterator[list[Row]]:
    yield [{**a, **b} for a, b in zip(*inputs, strict=True)]


@pytest.mark.parametrize("join", ["merged", "separate"])
def test_a_join_of_a_global_step_with_rows_that_bypass_it_finishes(join: str) -> None:
    """``load >> dedup >> join`` and ``load >> join``: the join holds the bypassing rows until
    the global step has seen every row, so the source must never wait on them (it did: on a
    bounded edge the run hung past 8 batches)."""
    with Pipeline(name="bypass") as pipeline:
        load = numbers(400)  # 58 batches
        dedup = DropDuplicates(name="dedup", columns=["n"])
        seen = Seen(name="seen")
        last = JoinBranches(name="join") if join == "separate" else Seen(name="join")
        load >> dedup >> last
        load >> seen >> last
    rows = rows_of(pipeline.run(progress=False, use_cache=False))
    assert [row["n"] for row in rows] == list(range(400))
    assert all(row["seen"] for row in rows)
