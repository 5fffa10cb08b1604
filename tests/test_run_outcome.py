"""How a run ends: parts that disagree on types, a full disk, and failed rows counted."""

from __future__ import annotations

import errno
import gc
import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar

import anyio
import pyarrow as pa
import pytest

from synthflow.errors import DiskFullError
from synthflow.pipeline import Pipeline, _disk, _sink
from synthflow.steps import GlobalStep, LoadDataFromDicts, StepInput, step
from synthflow.steps.base import Row
from synthflow.steps.tasks import TextGeneration
from synthflow.testing import FunctionLLM


class CachedFunctionLLM(FunctionLLM):
    """A scripted LLM whose answers go to the response cache, as a paid API's do."""

    cacheable: ClassVar[bool] = True


def answer_unless(failing: set[str]) -> FunctionLLM:
    """An LLM that fails the rows whose instruction is in ``failing`` and answers the rest."""

    def fn(messages: list[dict[str, Any]]) -> str:
        prompt = messages[-1]["content"]
        if prompt in failing:
            raise RuntimeError(f"no answer for {prompt}")
        return f"answer to {prompt}"

    return FunctionLLM(fn=fn)


def one_line(exc: BaseException) -> str:
    text = str(exc)
    assert "\n" not in text
    return text


# -- parts that disagree on a column's type (issue 8, case 11) ---------------------------------


def test_parts_that_disagree_on_a_column_type_join_into_one_dataset(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The first rows fail (their `generation` is null), the later ones succeed (text): parts of
    # two rows each hold `generation` as null in some and as text in others.
    monkeypatch.setattr(_sink, "PART_ROWS", 2)
    prompts = [f"q{i}" for i in range(8)]
    with Pipeline(name="mixed-parts") as pipeline:
        load = LoadDataFromDicts(data=[{"instruction": p} for p in prompts], batch_size=2)
        llm = answer_unless(set(prompts[:4]))
        load >> TextGeneration(name="gen", llm=llm, on_error="null", concurrency=1)
    distiset = pipeline.run(progress=False)

    parts = sorted((pipeline.run_dir / "data" / "gen").glob("part-*.arrow"))
    assert len(parts) > 1
    rows = distiset["default"]["train"]
    assert rows["generation"] == [None] * 4 + [f"answer to {p}" for p in prompts[4:]]
    assert [e is not None for e in rows["synthflow_error"]] == [True] * 4 + [False] * 4


# -- a full disk, through the seam every write of a run takes ------------------------------------


class Quota:
    """Room for ``left`` more bytes on the run's filesystem. ``install`` puts it behind
    ``synthflow.pipeline._disk.open_for_writing``, the seam every file a run writes goes
    through: a write past the room fails with ENOSPC, as a full disk's does."""

    def __init__(self, left: int) -> None:
        self.left = left
        self.full_at: float | None = None

    def install(self, monkeypatch: pytest.MonkeyPatch) -> Quota:
        monkeypatch.setattr(_disk, "open_for_writing", self.open)
        return self

    def open(self, path: Path) -> Any:
        return pa.PythonFile(_QuotaFile(self, path), mode="w")


class _QuotaFile:
    def __init__(self, quota: Quota, path: Path) -> None:
        self._quota = quota
        self._path = path
        self._file = open(path, "wb")  # noqa: SIM115 (closed by close())
        self._written = 0
        self.closed = False

    def write(self, data: bytes) -> int:
        if len(data) > self._quota.left:
            self._quota.left = 0
            self._quota.full_at = self._quota.full_at or time.monotonic()
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(self._path))
        self._quota.left -= len(data)
        self._written += len(data)
        return self._file.write(data)

    def tell(self) -> int:
        return self._written

    def flush(self) -> None:
        self._file.flush()

    def writable(self) -> bool:
        return True

    def close(self) -> None:
        self._file.close()
        self.closed = True


class Calls:
    """What a scripted LLM was asked: when each call started, and each prompt answered."""

    def __init__(self) -> None:
        self.started: list[float] = []
        self.answered: list[str] = []

    def llm(self) -> FunctionLLM:
        async def fn(messages: list[dict[str, Any]]) -> str:
            self.started.append(time.monotonic())
            await anyio.sleep(0.001)  # a request on the wire: a cancelled run stops it here
            prompt = str(messages[-1]["content"])
            self.answered.append(prompt)
            return f"answer to {prompt}"

        return CachedFunctionLLM(fn=fn)


ROWS = 400


def llm_pipeline(calls: Calls) -> Pipeline:
    with Pipeline(name="full-disk") as pipeline:
        data = [{"instruction": f"q{i}"} for i in range(ROWS)]
        load = LoadDataFromDicts(name="load", data=data, batch_size=10)
        load >> TextGeneration(name="gen", llm=calls.llm(), concurrency=4)
    return pipeline


def test_a_full_disk_stops_the_run_and_a_rerun_pays_only_for_what_was_never_answered(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(_sink, "PART_ROWS", 20)
    quota = Quota(left=6_000).install(monkeypatch)
    first = Calls()
    pipeline = llm_pipeline(first)

    with pytest.raises(DiskFullError) as info:
        pipeline.run(progress=False)

    message = one_line(info.value)
    assert info.value.path.startswith(str(pipeline.run_dir / "data" / "gen"))
    assert message.startswith(f"disk full: writing {info.value.path} failed (No space left")
    assert "run the pipeline again: it resumes where it stopped" in message
    assert "LLM answers already received are in the response cache" in message
    # The run stopped at once: far from every row was asked for, and no call started after the
    # disk filled but the few already on their way (at most one per concurrency slot).
    assert quota.full_at is not None
    assert len(first.answered) < ROWS // 2
    assert sum(1 for t in first.started if t > quota.full_at) <= 4
    capsys.readouterr()

    quota.left = 10**9  # space is freed
    second = Calls()
    pipeline = llm_pipeline(second)
    distiset = pipeline.run(progress=False)

    assert "resuming an interrupted run" in capsys.readouterr().err
    rows = distiset["default"]["train"]
    assert rows["instruction"] == [f"q{i}" for i in range(ROWS)]
    assert rows["generation"] == [f"answer to q{i}" for i in range(ROWS)]
    # Every answer of the first run was kept: the re-run asked only for the others.
    assert sorted(first.answered + second.answered) == sorted(f"q{i}" for i in range(ROWS))


def test_a_full_disk_without_the_response_cache_says_what_is_lost(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(_sink, "PART_ROWS", 20)
    Quota(left=6_000).install(monkeypatch)
    with pytest.raises(DiskFullError) as info:
        llm_pipeline(Calls()).run(progress=False, use_cache=False)

    message = one_line(info.value)
    assert "run the pipeline again (it starts over)" in message
    assert "LLM answers of rows not saved are lost (gen not using the response cache)" in message


def test_a_full_disk_at_the_start_names_the_bookkeeping_file(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    Quota(left=0).install(monkeypatch)
    pipeline = llm_pipeline(Calls())
    with pytest.raises(DiskFullError) as info:
        pipeline.run(progress=False)
    assert info.value.path == str(pipeline.run_dir / "parameters.sha256")


class Total(GlobalStep):
    @property
    def inputs(self) -> list[str]:
        return ["n"]

    def process(self, inputs: StepInput) -> Iterator[list[Row]]:
        yield [{"n": sum(row["n"] for row in inputs)}]


def test_a_full_disk_when_the_data_is_joined_at_the_end(monkeypatch: pytest.MonkeyPatch) -> None:
    # Parts fit, the final data file doesn't: the run stops there and a re-run finishes it.
    quota = Quota(left=10**9).install(monkeypatch)
    real_finish = _sink.LeafWriter.finish

    def finish_on_a_full_disk(writer: _sink.LeafWriter) -> Path:
        quota.left = 0
        return real_finish(writer)

    monkeypatch.setattr(_sink.LeafWriter, "finish", finish_on_a_full_disk)
    with Pipeline(name="joined") as pipeline:
        LoadDataFromDicts(data=[{"n": i} for i in range(10)]) >> Total(name="total")
    with pytest.raises(DiskFullError) as info:
        pipeline.run(progress=False)
    assert info.value.path == str(pipeline.run_dir / "data" / "total" / "data.arrow")
    assert "(it starts over)" in str(info.value)  # a global step needs every row in one pass

    monkeypatch.setattr(_sink.LeafWriter, "finish", real_finish)
    quota.left = 10**9
    assert pipeline.run(progress=False)["default"]["train"]["n"] == [45]


def test_saving_a_distiset_to_a_full_disk_names_the_target_and_leaves_nothing(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    with Pipeline(name="small") as pipeline:
        LoadDataFromDicts(data=[{"n": i} for i in range(10)])
    distiset = pipeline.run(progress=False)
    Quota(left=100).install(monkeypatch)

    target = tmp_path / "out"
    with pytest.raises(DiskFullError) as info:
        distiset.save_to_disk(target)

    assert info.value.path == str(target)
    assert one_line(info.value).endswith(
        "free space there and save again (nothing of the run is lost)"
    )
    assert list(tmp_path.iterdir()) == [tmp_path / "synthflow-cache"]


def test_low_free_space_is_warned_about_at_the_start(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    with Pipeline(name="warned") as pipeline:
        LoadDataFromDicts(data=[{"n": 1}])
    monkeypatch.setenv(_disk.MIN_FREE_ENV, "1000000000")  # a billion GiB: never free
    pipeline.run(progress=False)
    warnings = [line for line in capsys.readouterr().err.splitlines() if "warning" in line]
    assert len(warnings) == 1
    assert "free for the run directory" in warnings[0]
    assert _disk.MIN_FREE_ENV in warnings[0]

    monkeypatch.setenv(_disk.MIN_FREE_ENV, "0")  # off
    pipeline.run(progress=False)
    assert "warning" not in capsys.readouterr().err


# -- a full disk for real: a small tmpfs ---------------------------------------------------------


@step(inputs=["n"], outputs=["blob"])
def Blob(inputs: StepInput) -> Iterator[list[Row]]:
    for row in inputs:
        row["blob"] = f"{row['n']}:" + "x" * 20_000
    yield inputs


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 2 MiB tmpfs, unmounted afterwards; skipped where mounting isn't allowed."""
    mount = tmp_path / "small"
    mount.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(mount)],
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        pytest.skip(f"can't mount a tmpfs here (needs root): {done.stderr.strip()}")
    try:
        yield mount
    finally:
        gc.collect()  # datasets memory-map files on it
        subprocess.run(["umount", "-l", str(mount)], check=False)


def test_a_real_full_disk_stops_the_run_and_a_rerun_resumes_once_space_is_freed(
    small_disk: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(_sink, "PART_ROWS", 20)  # parts of ~400 KB: the disk holds a few
    monkeypatch.setenv(_disk.MIN_FREE_ENV, "1")  # warn below 1 GiB free (the default)

    def build() -> Pipeline:
        with Pipeline(name="blobs", cache_dir=small_disk) as pipeline:
            data = [{"n": i} for i in range(300)]  # ~6 MB of blobs for a 2 MiB disk
            LoadDataFromDicts(data=data, batch_size=10) >> Blob(name="blob")
        return pipeline

    pipeline = build()
    with pytest.raises(DiskFullError) as info:
        pipeline.run(progress=False)

    assert info.value.path.startswith(str(small_disk))
    assert "it resumes where it stopped" in one_line(info.value)
    err = capsys.readouterr().err
    assert "warning: only" in err and "free for the run directory" in err

    subprocess.run(["mount", "-o", "remount,size=64m", str(small_disk)], check=True)
    distiset = build().run(progress=False)
    assert "resuming an interrupted run" in capsys.readouterr().err
    assert distiset["default"]["train"]["n"] == list(range(300))
    del distiset


@step(inputs=["n"], outputs=["checked"])
def RefusesAtLength(inputs: StepInput) -> Iterator[list[Row]]:
    for row in inputs:
        raise ValueError(f"row {row['n']}: " + "refused " * 5_000)
    yield inputs  # pragma: no cover (a generator all the same)


def test_a_failure_record_that_fills_the_disk_stops_the_run_with_a_disk_full_error(
    small_disk: Path,
) -> None:
    # Dropped rows write no data: only the failure record (40 KB a line) grows.
    with Pipeline(name="long-errors", cache_dir=small_disk) as pipeline:
        data = [{"n": i} for i in range(300)]
        load = LoadDataFromDicts(data=data, batch_size=10)
        load >> RefusesAtLength(name="refuse", on_error="drop", input_batch_size=10)
    with pytest.raises(DiskFullError) as info:
        pipeline.run(progress=False)
    assert info.value.path.endswith("failures.jsonl")
    assert info.value.path.startswith(str(small_disk))


# -- failed rows, counted on the result ------------------------------------------------------------


def flaky_run(failing: set[str], **task: Any) -> Any:
    prompts = [f"q{i}" for i in range(6)]
    with Pipeline(name="flaky") as pipeline:
        load = LoadDataFromDicts(name="load", data=[{"instruction": p} for p in prompts])
        load >> TextGeneration(name="gen", llm=answer_unless(failing), **task)
    return pipeline.run(progress=False)


def test_the_result_counts_failed_rows_per_step(capsys: pytest.CaptureFixture[str]) -> None:
    distiset = flaky_run({"q1", "q4"})

    assert distiset.failed_rows == {"gen": 2}
    assert distiset.stats["gen"].errors == 2 and distiset.stats["load"].errors == 0
    assert distiset.source_rows == 6
    assert not distiset.all_rows_failed
    assert len(distiset["default"]["train"]) == 6  # the failed rows are kept, with their error
    assert capsys.readouterr().err.splitlines()[-1] == (
        "[synthflow] flaky: 2 of 6 rows failed (gen 2); "
        "their errors are in the synthflow_error column"
    )


def test_a_clean_run_has_no_failed_rows(capsys: pytest.CaptureFixture[str]) -> None:
    distiset = flaky_run(set())
    assert distiset.failed_rows == {}
    assert distiset.failure_summary() is None and not distiset.all_rows_failed
    assert "failed" not in capsys.readouterr().err


@pytest.mark.parametrize("on_error", ["null", "drop"])
def test_a_run_whose_every_row_failed_says_so(on_error: str) -> None:
    distiset = flaky_run({f"q{i}" for i in range(6)}, on_error=on_error)
    assert distiset.failed_rows == {"gen": 6}
    assert distiset.all_rows_failed


@step(inputs=["n"], outputs=["half"])
def Halve(inputs: StepInput) -> Iterator[list[Row]]:
    for row in inputs:
        if row["n"] % 5 == 3:
            raise ValueError(f"odd one out: {row['n']}")
        row["half"] = f"half of {row['n']}"
    yield inputs


def test_failed_rows_are_counted_once_in_the_step_where_they_failed() -> None:
    with Pipeline(name="chain") as pipeline:
        load = LoadDataFromDicts(name="load", data=[{"n": i} for i in range(10)], batch_size=10)
        halve = Halve(name="halve", on_error="null")
        (
            load
            >> halve
            >> TextGeneration(
                name="gen",
                llm=answer_unless(set()),
                input_mappings={"instruction": "half"},
            )
        )
    distiset = pipeline.run(progress=False)

    assert distiset.failed_rows == {"halve": 2}  # rows 3 and 8; gen let them pass
    assert distiset.failure_summary() == (
        "2 of 10 rows failed (halve 2); their errors are in the synthflow_error column"
    )


class WritesScratch(GlobalStep):
    """A global step whose own scratch file meets a full disk."""

    def process(self, inputs: StepInput) -> Iterator[list[Row]]:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), "/scratch/rows.tmp")
        yield inputs  # pragma: no cover (a generator all the same)


def test_a_step_that_meets_a_full_disk_stops_the_run_the_same_way() -> None:
    with Pipeline(name="scratch") as pipeline:
        LoadDataFromDicts(data=[{"n": 1}]) >> WritesScratch(name="scratch")
    with pytest.raises(DiskFullError) as info:
        pipeline.run(progress=False)
    assert info.value.path == "/scratch/rows.tmp"
    assert one_line(info.value).startswith(
        "disk full: writing /scratch/rows.tmp failed (No space left on device); free space"
    )
