"""The engine, through the public API: streaming, ordering, joins, concurrency, errors."""

from __future__ import annotations

import asyncio
import os
import random
from collections.abc import AsyncIterator, Iterator

import anyio
import anyio.lowlevel
import pytest

from synthflow.errors import PipelineValidationError, StepError
from synthflow.models.llms import OfflineLLM
from synthflow.pipeline import Pipeline
from synthflow.steps import (
    CombineColumns,
    DropDuplicates,
    GeneratorStep,
    KeepColumns,
    LoadDataFromDicts,
    RuntimeParameter,
    StepInput,
    step,
)
from synthflow.steps.base import Row
from synthflow.steps.tasks import ERROR_COLUMN, METADATA_COLUMN, TextGeneration
from synthflow.testing import FunctionLLM
from tests.helpers import FailsToLoad, Passthrough, PidSource, RecordPid, numbers


@step(inputs=["instruction"], outputs=["shout"])
def Shout(inputs: StepInput, suffix: RuntimeParameter[str] = "!") -> Iterator[list[Row]]:
    for row in inputs:
        row["shout"] = row["instruction"].upper() + suffix
    yield inputs


@step(inputs=["n"], outputs=[])
def KeepEven(inputs: StepInput) -> Iterator[list[Row]]:
    yield [row for row in inputs if row["n"] % 2 == 0]


@step(inputs=["n"], outputs=["double"])
def Double(inputs: StepInput) -> Iterator[list[Row]]:
    yield [{**row, "double": row["n"] * 2} for row in inputs]


@step(inputs=["n"], outputs=["neg"])
async def AsyncNegate(inputs: StepInput) -> AsyncIterator[list[Row]]:
    await anyio.lowlevel.checkpoint()
    yield [{**row, "neg": -row["n"]} for row in inputs]


def rows_of(distiset: object, name: str = "default") -> list[dict[str, object]]:
    return list(distiset[name]["train"])  # type: ignore[index]


def test_seed_example_runs_and_sets_runtime_parameters() -> None:
    with Pipeline(name="demo") as pipeline:
        load = LoadDataFromDicts(name="load", data=[{"instruction": f"hi {i}"} for i in range(7)])
        shout = Shout(name="shout")
        load >> shout

    distiset = pipeline.run(parameters={"load": {"batch_size": 3}, "shout": {"suffix": "?"}})

    assert [r["shout"] for r in rows_of(distiset)] == [f"HI {i}?" for i in range(7)]
    assert distiset.stats["load"].batches == 3
    assert distiset.stats["shout"].rows_in == 7
    assert distiset.stats["shout"].rows_out == 7


def test_connect_forms_fan_out_and_fan_in_with_a_filter_on_one_branch() -> None:
    with Pipeline() as pipeline:
        load = LoadDataFromDicts(name="load", data=numbers(100), batch_size=7)
        evens = KeepEven(name="evens", input_batch_size=5)
        double = Double(name="double")
        negate = AsyncNegate(name="negate")
        join = Passthrough(name="join")
        load >> [evens, double]
        load.connect(negate)
        [evens, double, negate] >> join

    rows = rows_of(pipeline.run())

    # Inner join by lineage: odd rows were filtered on one branch, so they leave the join.
    assert [r["n"] for r in rows] == list(range(0, 100, 2))
    assert all(r["double"] == 2 * r["n"] and r["neg"] == -r["n"] for r in rows)


def test_branches_do_not_see_each_others_in_place_changes() -> None:
    @step(inputs=["n"], outputs=["tag"])
    def TagA(inputs: StepInput) -> Iterator[list[Row]]:
        for row in inputs:
            row["tag"] = "a"
        yield inputs

    with Pipeline() as pipeline:
        load = LoadDataFromDicts(data=numbers(5))
        tag = TagA(name="tag_a")
        keep = KeepColumns(name="keep", columns=["n"])
        load >> [tag, keep]

    distiset = pipeline.run()
    assert all("tag" not in r for r in rows_of(distiset, "keep"))
    assert all(r["tag"] == "a" for r in rows_of(distiset, "tag_a"))


def test_step_taking_one_batch_per_predecessor_gets_aligned_batches() -> None:
    with Pipeline() as pipeline:
        load = LoadDataFromDicts(data=[{"instruction": f"q{i}"} for i in range(20)])
        a = TextGeneration(name="a", llm=OfflineLLM(model="model-a", jitter=0.01))
        b = TextGeneration(name="b", llm=OfflineLLM(model="model-b", jitter=0.01))
        combine = CombineColumns(
            name="combine",
            columns=["generation", "model_name"],
            output_columns=["generations", "model_names"],
        )
        load >> [a, b] >> combine

    rows = rows_of(pipeline.run())
    assert [r["instruction"] for r in rows] == [f"q{i}" for i in range(20)]
    assert all(r["model_names"] == ["model-a", "model-b"] for r in rows)
    assert all(len(r["generations"]) == 2 for r in rows)


def test_source_order_is_kept_when_rows_take_random_time() -> None:
    delays = random.Random(7)

    async def slow_then_echo(messages: list[dict[str, str]]) -> str:
        await anyio.sleep(delays.random() * 0.03)
        return messages[-1]["content"]

    with Pipeline() as pipeline:
        load = LoadDataFromDicts(data=[{"instruction": str(i)} for i in range(300)])
        gen = TextGeneration(name="gen", llm=FunctionLLM(fn=slow_then_echo), concurrency=32)
        load >> gen

    rows = rows_of(pipeline.run())
    assert [r["generation"] for r in rows] == [str(i) for i in range(300)]


def test_llm_step_has_no_batch_barrier_and_one_slow_row_holds_no_one_back() -> None:
    in_flight = 0
    peak = 0
    finished_while_slow_row_ran: list[int] = []
    slow_running = False

    async def script(messages: list[dict[str, str]]) -> str:
        nonlocal in_flight, peak, slow_running
        in_flight += 1
        peak = max(peak, in_flight)
        try:
            if messages[-1]["content"] == "0":
                slow_running = True
                await anyio.sleep(0.5)
                slow_running = False
            else:
                await anyio.sleep(0.01)
                if slow_running:
                    finished_while_slow_row_ran.append(1)
        finally:
            in_flight -= 1
        return "ok"

    with Pipeline() as pipeline:
        # Batches of 4 rows, 16 calls in flight: a batch barrier would cap concurrency at 4.
        load = LoadDataFromDicts(data=[{"instruction": str(i)} for i in range(80)], batch_size=4)
        gen = TextGeneration(name="gen", llm=FunctionLLM(fn=script), concurrency=16)
        load >> gen

    rows = rows_of(pipeline.run())
    assert len(rows) == 80
    assert peak == 16
    # Most other rows completed while row 0 was still waiting on its slow call.
    assert len(finished_while_slow_row_ran) >= 60


def test_num_generations_expand_rows_or_group_them() -> None:
    with Pipeline() as pipeline:
        load = LoadDataFromDicts(data=[{"instruction": "a"}, {"instruction": "b"}])
        grouped = TextGeneration(
            name="grouped", llm=OfflineLLM(), num_generations=3, group_generations=True
        )
        expanded = TextGeneration(name="expanded", llm=OfflineLLM(), num_generations=3)
        load >> [grouped, expanded]

    distiset = pipeline.run()
    grouped_rows = rows_of(distiset, "grouped")
    assert [len(r["generation"]) for r in grouped_rows] == [3, 3]
    expanded_rows = rows_of(distiset, "expanded")
    assert [r["instruction"] for r in expanded_rows] == ["a"] * 3 + ["b"] * 3
    assert len({r["generation"] for r in expanded_rows}) == 6


def test_runtime_parameters_nest_into_the_llm() -> None:
    seen: list[dict[str, object]] = []
    llm = FunctionLLM(fn=lambda messages: "x")

    class Spy(TextGeneration):
        async def generate(self, row: Row):  # type: ignore[no-untyped-def]
            seen.append(dict(self.llm.generation_kwargs))
            return await super().generate(row)

    with Pipeline() as pipeline:
        load = LoadDataFromDicts(data=[{"instruction": "a"}])
        gen = Spy(name="gen", llm=llm)
        load >> gen

    pipeline.run(parameters={"gen": {"llm": {"generation_kwargs": {"temperature": 0.7}}}})
    assert seen == [{"temperature": 0.7}]


def test_input_and_output_mappings_rename_columns() -> None:
    with Pipeline() as pipeline:
        load = LoadDataFromDicts(data=[{"prompt": "hello"}])
        shout = Shout(
            name="shout",
            input_mappings={"instruction": "prompt"},
            output_mappings={"shout": "loud"},
        )
        load >> shout

    assert rows_of(pipeline.run()) == [{"prompt": "hello", "loud": "HELLO!"}]


def test_error_policies() -> None:
    def flaky(messages: list[dict[str, str]]) -> str:
        if messages[-1]["content"] == "bad":
            raise RuntimeError("endpoint exploded")
        return "fine"

    data = [{"instruction": "ok"}, {"instruction": "bad"}, {"instruction": "ok"}]
    with Pipeline() as pipeline:
        load = LoadDataFromDicts(data=data)
        keep = TextGeneration(name="keep", llm=FunctionLLM(fn=flaky))  # default: "null"
        drop = TextGeneration(name="drop", llm=FunctionLLM(fn=flaky), on_error="drop")
        load >> [keep, drop]

    distiset = pipeline.run()
    kept = rows_of(distiset, "keep")
    assert [r["generation"] for r in kept] == ["fine", None, "fine"]
    assert kept[1][ERROR_COLUMN] == "keep: RuntimeError: endpoint exploded"
    assert kept[0][ERROR_COLUMN] is None
    assert [r["generation"] for r in rows_of(distiset, "drop")] == ["fine", "fine"]
    assert distiset.stats["keep"].errors == 1


def test_fail_policy_cancels_the_run_and_names_step_and_row() -> None:
    @step(inputs=["n"])
    def Explode(inputs: StepInput) -> Iterator[list[Row]]:
        for row in inputs:
            if row["n"] == 13:
                raise ValueError("thirteen")
        yield inputs

    with Pipeline() as pipeline:
        load = LoadDataFromDicts(data=numbers(40), batch_size=1)
        boom = Explode(name="boom", input_batch_size=1)
        load >> boom

    with pytest.raises(
        StepError, match=r"step 'boom' failed on row 13: ValueError: thirteen"
    ) as info:
        pipeline.run()
    assert info.value.step == "boom"
    assert info.value.row_id == 13
    assert isinstance(info.value.__cause__, ValueError)


def test_error_in_a_generator_is_reraised_with_its_step() -> None:
    class Broken(GeneratorStep):
        @property
        def outputs(self) -> list[str]:
            return ["n"]

        def process(self, offset: int = 0) -> Iterator[list[Row]]:
            yield [{"n": 1}]
            raise OSError("disk gone")

    with Pipeline() as pipeline:
        Broken(name="src") >> Passthrough(name="pass")

    with pytest.raises(StepError, match="step 'src' failed: OSError: disk gone"):
        pipeline.run()


def test_global_step_sees_all_rows_and_spills_to_disk() -> None:
    data = [{"text": f"t{i % 30}"} for i in range(200)]
    with Pipeline() as pipeline:
        load = LoadDataFromDicts(data=data, batch_size=16)
        dedup = DropDuplicates(name="dedup", columns=["text"], spill_threshold=50)
        load >> dedup

    distiset = pipeline.run()
    assert [r["text"] for r in rows_of(distiset)] == [f"t{i}" for i in range(30)]
    assert distiset.stats["dedup"].spilled


def test_backpressure_bounds_how_far_a_source_runs_ahead() -> None:
    produced = 0
    lead: list[int] = []

    class Counting(GeneratorStep):
        @property
        def outputs(self) -> list[str]:
            return ["n"]

        def process(self, offset: int = 0) -> Iterator[list[Row]]:
            nonlocal produced
            for i in range(400):
                produced += 1
                yield [{"n": i}]

    @step(inputs=["n"])
    async def Slow(inputs: StepInput) -> AsyncIterator[list[Row]]:
        await anyio.sleep(0.001)
        lead.append(produced - inputs[-1]["n"])
        yield inputs

    with Pipeline() as pipeline:
        Counting(name="src") >> Slow(name="slow", input_batch_size=1)

    pipeline.run()
    # The source never gets more than a few queue lengths ahead of the slow consumer.
    assert max(lead) <= 40


def test_process_pool_step_loads_once_per_worker_in_another_process(tmp_path) -> None:  # type: ignore[no-untyped-def]
    with Pipeline() as pipeline:
        load = LoadDataFromDicts(data=numbers(60), batch_size=5)
        square = RecordPid(
            name="square", pid_dir=str(tmp_path), executor="process", workers=2, input_batch_size=5
        )
        load >> square

    rows = rows_of(pipeline.run())
    assert [r["square"] for r in rows] == [i * i for i in range(60)]
    pids = {r["pid"] for r in rows}
    assert os.getpid() not in pids
    loaded = {int(p.stem) for p in tmp_path.glob("*.pid")}
    assert pids <= loaded and len(loaded) <= 2


def test_a_generator_step_can_run_in_a_worker_process() -> None:
    with Pipeline() as pipeline:
        source = PidSource(name="source", n=230, batch_size=7, executor="process")
        source >> Passthrough(name="pass")

    rows = rows_of(pipeline.run())
    assert [r["i"] for r in rows] == list(range(230))
    (pid,) = {r["pid"] for r in rows}  # one worker, kept between fetches
    assert pid != os.getpid()
    assert pipeline.run().stats["source"].batches == 33


def test_a_generator_step_in_a_process_has_one_worker() -> None:
    with Pipeline() as pipeline:
        PidSource(name="source", n=3, executor="process", workers=2) >> Passthrough(name="pass")
    with pytest.raises(PipelineValidationError, match="set workers=1, not 2"):
        pipeline.run()


def test_thread_executor_runs_blocking_steps_off_the_loop() -> None:
    import threading

    threads: set[str] = set()

    @step(inputs=["n"])
    def Blocking(inputs: StepInput) -> Iterator[list[Row]]:
        threads.add(threading.current_thread().name)
        yield inputs

    with Pipeline() as pipeline:
        load = LoadDataFromDicts(data=numbers(20), batch_size=2)
        load >> Blocking(name="blocking", executor="thread", workers=3, input_batch_size=2)

    rows = rows_of(pipeline.run())
    assert [r["n"] for r in rows] == list(range(20))
    assert threading.main_thread().name not in threads


def test_run_works_inside_a_running_event_loop() -> None:
    with Pipeline() as pipeline:
        LoadDataFromDicts(data=[{"instruction": "x"}]) >> Shout(name="shout")

    async def notebook_cell() -> object:
        return pipeline.run()  # as in Jupyter: a loop is already running

    distiset = asyncio.run(notebook_cell())
    assert rows_of(distiset) == [{"instruction": "x", "shout": "X!"}]


@pytest.mark.anyio
async def test_arun_in_an_async_app() -> None:
    with Pipeline() as pipeline:
        LoadDataFromDicts(data=[{"instruction": "x"}]) >> Shout(name="shout")

    distiset = await pipeline.arun(progress=False)
    assert rows_of(distiset) == [{"instruction": "x", "shout": "X!"}]


def test_plain_progress_prints_one_line_per_step(capsys: pytest.CaptureFixture[str]) -> None:
    with Pipeline() as pipeline:
        LoadDataFromDicts(name="load", data=numbers(3)) >> Passthrough(name="pass")

    pipeline.run(progress="plain")
    err = capsys.readouterr().err
    assert "load: in=0 out=3" in err
    assert "pass: in=3 out=3" in err


def test_rich_progress_renders_a_table(capsys: pytest.CaptureFixture[str]) -> None:
    with Pipeline() as pipeline:
        LoadDataFromDicts(name="load", data=numbers(3)) >> Passthrough(name="pass")

    pipeline.run(progress="rich")
    err = capsys.readouterr().err
    assert "rows in" in err and "pass" in err


def test_a_worker_that_fails_to_load_reports_why() -> None:
    with Pipeline() as pipeline:
        load = LoadDataFromDicts(data=numbers(3))
        load >> FailsToLoad(name="broken", executor="process")

    with pytest.raises(
        StepError, match="load\\(\\) failed in a worker process: ImportError: the model"
    ):
        pipeline.run(progress=False)


def test_rows_flow_on_as_they_finish_and_the_dataset_is_still_in_source_order() -> None:
    slow_row_done = anyio.Event()
    seen_downstream_before_slow_row: list[str] = []

    async def first(messages: list[dict[str, str]]) -> str:
        text = messages[-1]["content"]
        if text == "0":
            await anyio.sleep(0.4)
            slow_row_done.set()
        return f"{text}!"

    def second(messages: list[dict[str, str]]) -> str:
        if not slow_row_done.is_set():
            seen_downstream_before_slow_row.append(messages[-1]["content"])
        return "done"

    with Pipeline() as pipeline:
        load = LoadDataFromDicts(data=[{"instruction": str(i)} for i in range(30)])
        a = TextGeneration(name="a", llm=FunctionLLM(fn=first), output_mappings={"generation": "x"})
        b = TextGeneration(
            name="b", llm=FunctionLLM(fn=second), input_mappings={"instruction": "x"}
        )
        load >> a >> b

    rows = rows_of(pipeline.run())
    # The slow first row held back none of the others on their way to the next task...
    assert len(seen_downstream_before_slow_row) == 29
    # ...and the dataset is in source order all the same.
    assert [r["x"] for r in rows] == [f"{i}!" for i in range(30)]


def test_a_spilled_global_step_sees_mapped_columns() -> None:
    data = [{"body": f"t{i % 7}"} for i in range(60)]
    with Pipeline() as pipeline:
        load = LoadDataFromDicts(data=data, batch_size=8)
        dedup = DropDuplicates(
            name="dedup", columns=["text"], input_mappings={"text": "body"}, spill_threshold=10
        )
        load >> dedup

    distiset = pipeline.run()
    assert [r["body"] for r in rows_of(distiset)] == [f"t{i}" for i in range(7)]
    assert distiset.stats["dedup"].spilled


def test_a_failed_row_gets_nulls_under_its_mapped_output_columns() -> None:
    def fail(messages: list[dict[str, str]]) -> str:
        raise RuntimeError("down")

    with Pipeline() as pipeline:
        load = LoadDataFromDicts(data=[{"instruction": "q", "answer": "from before"}])
        load >> TextGeneration(
            name="gen", llm=FunctionLLM(fn=fail), output_mappings={"generation": "answer"}
        )

    row = rows_of(pipeline.run())[0]
    assert row["answer"] is None  # not the stale value of the same column
    assert "generation" not in row
    assert row[ERROR_COLUMN] == "gen: RuntimeError: down"


def test_mapped_names_never_clobber_the_columns_the_row_has() -> None:
    # The judge reads "judge_prompt" as its "instruction" and writes its "generation" as
    # "verdict": the row's own instruction and generation survive both.
    with Pipeline() as pipeline:
        load = LoadDataFromDicts(
            data=[{"instruction": "q", "generation": "an answer", "judge_prompt": "grade q"}]
        )
        judge = TextGeneration(
            name="judge",
            llm=FunctionLLM(fn=lambda messages: f"seen: {messages[-1]['content']}"),
            input_mappings={"instruction": "judge_prompt"},
            output_mappings={"generation": "verdict"},
        )
        load >> judge >> Shout(name="shout", input_mappings={"instruction": "verdict"})

    (row,) = rows_of(pipeline.run())
    assert row["instruction"] == "q"
    assert row["generation"] == "an answer"
    assert row["judge_prompt"] == "grade q"
    assert row["verdict"] == "seen: grade q"
    assert row["model_name"] is not None  # not mapped: the judge's own, as before
    assert row["shout"] == "SEEN: GRADE Q!"
    assert not [key for key in row if key.startswith("_sf")]


@step(inputs=["text"], outputs=["text"])
def UpperInPlace(inputs: StepInput) -> Iterator[list[Row]]:
    for row in inputs:
        row["text"] = row["text"].upper()
    yield inputs


def test_a_step_that_rewrites_its_input_under_a_mapped_output_keeps_the_original() -> None:
    with Pipeline() as pipeline:
        load = LoadDataFromDicts(data=[{"text": "quiet"}])
        load >> UpperInPlace(name="upper", output_mappings={"text": "loud"})

    (row,) = rows_of(pipeline.run())
    assert row == {"text": "quiet", "loud": "QUIET"}


def test_a_fan_in_keeps_the_metadata_of_every_branchs_task() -> None:
    with Pipeline() as pipeline:
        load = LoadDataFromDicts(data=[{"instruction": "q"}])
        a = TextGeneration(name="a", llm=OfflineLLM(model="A"))
        b = TextGeneration(name="b", llm=OfflineLLM(model="B"))
        combine = CombineColumns(
            name="combine", columns=["generation", "model_name"], output_columns=["gens", "models"]
        )
        load >> [a, b] >> combine

    (row,) = rows_of(pipeline.run())
    assert row["models"] == ["A", "B"]
    assert set(row[METADATA_COLUMN]) == {
        f"{entry}_{task}" for entry in ("statistics", "raw_output", "raw_input") for task in "ab"
    }
