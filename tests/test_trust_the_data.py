"""Regression tests for the ways a run used to write wrong data without a word: the judge
pattern, batch errors hitting innocent rows, a later error hiding the first, branches
overwriting each other, and answers that can't be parsed."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest

from synthflow.errors import OutputParseError, PipelineValidationError, StepError
from synthflow.models.llms.openai import OpenAILLM
from synthflow.pipeline import Pipeline
from synthflow.steps import KeepColumns, LoadDataFromDicts, Step, StepInput, step
from synthflow.steps.base import Row
from synthflow.steps.tasks import ERROR_COLUMN, METADATA_COLUMN, Task, TextGeneration
from synthflow.testing import FunctionLLM
from tests.servers import Reply, Request, fake_api


def echo_server(seen: Counter[str]) -> Any:
    def handler(request: Request) -> Reply:
        prompt = request.json["messages"][-1]["content"]
        seen[prompt] += 1
        return Reply(
            body={
                "id": "c",
                "object": "chat.completion",
                "model": "m",
                "choices": [
                    {
                        "index": 0,
                        "message": {"role": "assistant", "content": f"re: {prompt}"},
                        "finish_reason": "stop",
                    }
                ],
                "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
            }
        )

    return handler


@pytest.mark.parametrize("critique_column", [None, "critique"])
def test_a_judge_reading_the_generation_is_sent_the_generation(
    critique_column: str | None,
) -> None:
    seen: Counter[str] = Counter()
    with fake_api(echo_server(seen)) as api:
        with Pipeline(name="judge") as pipeline:
            client = OpenAILLM(model="m", base_url=f"{api.url}/v1", api_key="k")
            load = LoadDataFromDicts(data=[{"instruction": f"q{i}"} for i in range(3)])
            gen = TextGeneration(name="gen", llm=client)
            judge = TextGeneration(
                name="judge",
                llm=client,
                input_mappings={"instruction": "generation"},
                output_mappings={"generation": critique_column} if critique_column else {},
            )
            load >> gen >> judge
        rows = pipeline.run(progress=False)["default"]["train"].to_list()
    # Every second-stage request reached the server, with the first stage's answer as prompt.
    assert seen == Counter({f"q{i}": 1 for i in range(3)} | {f"re: q{i}": 1 for i in range(3)})
    for i, row in enumerate(rows):
        assert row["instruction"] == f"q{i}"
        if critique_column:
            assert row["generation"] == f"re: q{i}"
            assert row["critique"] == f"re: re: q{i}"
        else:  # the judge's output is an assignment: it replaces the column it writes
            assert row["generation"] == f"re: re: q{i}"


class FailsOnSome(Step):
    """Raises on every 20th row; marks the others."""

    @property
    def inputs(self) -> list[str]:
        return ["n"]

    @property
    def outputs(self) -> list[str]:
        return ["checked"]

    def process(self, inputs: StepInput) -> Iterator[list[Row]]:
        for row in inputs:
            if row["n"] % 20 == 7:
                raise ValueError(f"bad n {row['n']}")
            row["checked"] = True
        yield inputs


@pytest.mark.parametrize("policy", ["null", "drop"])
def test_a_step_that_raises_on_some_rows_fails_only_those_rows(policy: str) -> None:
    with Pipeline(name="row-errors") as pipeline:
        load = LoadDataFromDicts(data=[{"n": i} for i in range(300)], batch_size=64)
        load >> FailsOnSome(name="check", on_error=policy, input_batch_size=50)
    distiset = pipeline.run(progress=False)
    rows = distiset["default"]["train"].to_list()
    bad = {n for n in range(300) if n % 20 == 7}
    assert distiset.stats["check"].errors == len(bad) == 15
    if policy == "drop":
        assert [r["n"] for r in rows] == [n for n in range(300) if n not in bad]
        assert all(r["checked"] for r in rows)
        return
    assert [r["n"] for r in rows] == list(range(300))
    for row in rows:
        if row["n"] in bad:  # each failed row carries its own error
            assert row["checked"] is None
            assert row[ERROR_COLUMN] == f"check: ValueError: bad n {row['n']}"
        else:
            assert row["checked"] is True
            assert row[ERROR_COLUMN] is None


def test_isolate_failures_false_applies_the_policy_to_the_whole_batch() -> None:
    with Pipeline(name="whole-batch") as pipeline:
        load = LoadDataFromDicts(data=[{"n": i} for i in range(40)], batch_size=10)
        load >> FailsOnSome(
            name="check", on_error="drop", input_batch_size=10, isolate_failures=False
        )
    distiset = pipeline.run(progress=False)
    assert [r["n"] for r in distiset["default"]["train"]] == list(range(10, 20)) + list(
        range(30, 40)
    )


def test_a_row_that_failed_upstream_keeps_its_first_error_and_is_counted_once() -> None:
    def fn(messages: list[dict[str, str]]) -> str:
        if messages[-1]["content"] == "q1":
            raise RuntimeError("upstream down")
        return f"a:{messages[-1]['content']}"

    calls: list[str] = []

    def judge_fn(messages: list[dict[str, str]]) -> str:
        calls.append(messages[-1]["content"])
        return "fine"

    @step(inputs=["generation"], outputs=["length"])
    def Length(inputs: StepInput) -> Iterator[list[Row]]:
        for row in inputs:
            row["length"] = len(row["generation"])  # a None would raise TypeError
        yield inputs

    with Pipeline(name="first-error") as pipeline:
        load = LoadDataFromDicts(data=[{"instruction": f"q{i}"} for i in range(3)])
        gen = TextGeneration(name="gen", llm=FunctionLLM(fn=fn))
        judge = TextGeneration(
            name="judge",
            llm=FunctionLLM(fn=judge_fn),
            input_mappings={"instruction": "generation"},
            output_mappings={"generation": "verdict"},
        )
        length = Length(name="length", on_error="null")
        load >> gen >> judge >> length
    distiset = pipeline.run(progress=False)
    rows = distiset["default"]["train"].to_list()
    assert calls == ["a:q0", "a:q2"]  # the failed row was not sent to the judge
    failed = rows[1]
    assert failed[ERROR_COLUMN] == "gen: RuntimeError: upstream down"
    assert failed["verdict"] is None and failed["length"] is None
    assert [distiset.stats[s].errors for s in ("gen", "judge", "length")] == [1, 0, 0]
    assert rows[0]["length"] == len("a:q0") and rows[0][ERROR_COLUMN] is None


def test_a_failed_row_keeps_its_columns_through_keep_columns() -> None:
    # distilabel's image generation example: a task reads "persona" through input_mappings,
    # then KeepColumns(["persona", "model_name", "image"]). A row whose call failed kept its
    # "id" and lost its "persona" (set to null) when it skipped KeepColumns.
    def fn(messages: list[dict[str, str]]) -> str:
        if "baker" in messages[-1]["content"]:
            raise RuntimeError("no answer")
        return "drawn"

    data = [{"id": i, "persona": p} for i, p in enumerate(["a pilot", "a baker", "a nurse"])]
    with Pipeline(name="keep-failed") as pipeline:
        load = LoadDataFromDicts(data=data)
        draw = TextGeneration(
            name="draw",
            llm=FunctionLLM(fn=fn),
            input_mappings={"instruction": "persona"},
            output_mappings={"generation": "image"},
        )
        load >> draw >> KeepColumns(name="keep", columns=["persona", "model_name", "image"])
    train = pipeline.run(progress=False)["default"]["train"]

    assert train.column_names == ["persona", "model_name", "image", ERROR_COLUMN]
    assert train.to_list() == [
        {"persona": "a pilot", "model_name": "function-llm", "image": "drawn", ERROR_COLUMN: None},
        {
            "persona": "a baker",
            "model_name": "function-llm",
            "image": None,
            ERROR_COLUMN: "draw: RuntimeError: no answer",
        },
        {"persona": "a nurse", "model_name": "function-llm", "image": "drawn", ERROR_COLUMN: None},
    ]


def test_a_step_that_raises_on_a_failed_rows_null_passes_it_without_stopping_the_run() -> None:
    def fn(messages: list[dict[str, str]]) -> str:
        if messages[-1]["content"] == "q1":
            raise RuntimeError("upstream down")
        return "fine"

    seen: list[Any] = []

    @step(inputs=["generation"], outputs=["shout", "generation"])
    def Shout(inputs: StepInput) -> Iterator[list[Row]]:
        for row in inputs:
            seen.append(row["generation"])
            row["shout"] = row["generation"].upper()  # raises on the failed row's None
        yield inputs

    with Pipeline(name="raise-on-null") as pipeline:
        load = LoadDataFromDicts(data=[{"instruction": f"q{i}"} for i in range(4)])
        load >> TextGeneration(name="gen", llm=FunctionLLM(fn=fn)) >> Shout(name="shout")
    distiset = pipeline.run(progress=False)  # Shout's on_error is "fail": the run still ends
    rows = distiset["default"]["train"].to_list()

    assert seen.count(None) == 1  # the failed row was tried, alone
    assert [r["shout"] for r in rows] == ["FINE", None, "FINE", "FINE"]
    assert rows[1][ERROR_COLUMN] == "gen: RuntimeError: upstream down"
    assert rows[1]["instruction"] == "q1"
    assert [distiset.stats[s].errors for s in ("gen", "shout")] == [1, 0]


def test_two_branches_writing_one_column_are_refused_before_the_run() -> None:
    with Pipeline(name="fan-in") as pipeline:
        load = LoadDataFromDicts(data=[{"instruction": "q"}])
        a = TextGeneration(name="a", llm=FunctionLLM(fn=lambda m: "x"))
        b = TextGeneration(
            name="b", llm=FunctionLLM(fn=lambda m: "y"), output_mappings={"generation": "other"}
        )

        @step(inputs=["generation", "other"], outputs=["both"])
        def Both(inputs: StepInput) -> Iterator[list[Row]]:
            yield inputs

        load >> [a, b] >> Both(name="both")
    with pytest.raises(PipelineValidationError) as info:
        pipeline.run(progress=False)
    message = str(info.value)
    assert "steps 'a' and 'b' both write column 'model_name'" in message
    assert "output_mappings={'model_name': 'model_name_2'} on 'b'" in message
    assert "\n" not in message


def test_branches_taken_apart_by_the_joining_step_may_write_the_same_columns() -> None:
    with Pipeline(name="fan-in-apart") as pipeline:
        load = LoadDataFromDicts(data=[{"instruction": "q"}])
        a = TextGeneration(name="a", llm=FunctionLLM(fn=lambda m: "x"))
        b = TextGeneration(name="b", llm=FunctionLLM(fn=lambda m: "y"))

        @step(inputs=["generation"], outputs=["generations"])
        def Group(*inputs: StepInput) -> Iterator[list[Row]]:
            rows = [dict(parts[0]) for parts in zip(*inputs, strict=True)]
            for row, *parts in zip(rows, *inputs, strict=True):
                row["generations"] = [p["generation"] for p in parts]
            yield rows

        load >> [a, b] >> Group(name="group")
    rows = pipeline.run(progress=False)["default"]["train"].to_list()
    assert rows[0]["generations"] == ["x", "y"]


def test_a_column_written_on_one_branch_survives_the_join() -> None:
    with Pipeline(name="one-writer") as pipeline:
        load = LoadDataFromDicts(data=[{"instruction": "q", "generation": "old"}])
        gen = TextGeneration(name="gen", llm=FunctionLLM(fn=lambda m: "new"))

        @step(inputs=["instruction"], outputs=["size"])
        def Size(inputs: StepInput) -> Iterator[list[Row]]:
            for row in inputs:
                row["size"] = len(row["instruction"])
            yield inputs

        @step(inputs=["generation", "size"], outputs=[])
        def Join(inputs: StepInput) -> Iterator[list[Row]]:
            yield inputs

        # The unchanged branch is connected last: its stale 'generation' must not win.
        load >> [gen, size := Size(name="size")]
        [gen, size] >> Join(name="join")
    row = pipeline.run(progress=False)["default"]["train"][0]
    assert row["generation"] == "new" and row["size"] == 1


class Scored(Task):
    """Reads ``instruction``; writes ``score`` parsed from the answer."""

    @property
    def inputs(self) -> list[str]:
        return ["instruction"]

    @property
    def outputs(self) -> list[str]:
        return ["score", "model_name"]

    def format_input(self, row: Row) -> list[dict[str, str]]:
        return [{"role": "user", "content": row["instruction"]}]

    def format_output(self, output: str | None, row: Row) -> dict[str, Any]:
        if output is None or not output.strip().isdigit():
            raise OutputParseError(f"expected a number, got {output!r}")
        return {"score": int(output)}


def test_an_unreadable_answer_fails_its_row_and_keeps_the_raw_answer() -> None:
    answers = {"a": "7", "b": "seven-ish", "c": "3"}
    with Pipeline(name="parse") as pipeline:
        load = LoadDataFromDicts(data=[{"instruction": k} for k in answers])
        load >> Scored(name="score", llm=FunctionLLM(fn=lambda m: answers[m[-1]["content"]]))
    distiset = pipeline.run(progress=False)
    rows = distiset["default"]["train"].to_list()
    assert [r["score"] for r in rows] == [7, None, 3]
    assert rows[1][ERROR_COLUMN] == "score: OutputParseError: expected a number, got 'seven-ish'"
    assert rows[1][METADATA_COLUMN]["raw_output_score"] == "seven-ish"
    assert distiset.stats["score"].errors == 1


def test_grouped_generations_fail_only_when_none_can_be_read() -> None:
    with Pipeline(name="parse-grouped") as pipeline:
        load = LoadDataFromDicts(data=[{"instruction": "a"}, {"instruction": "b"}])
        texts = {"a": ["1", "x"], "b": ["y", "z"]}
        load >> Scored(
            name="score",
            llm=FunctionLLM(fn=lambda m: texts[m[-1]["content"]]),
            num_generations=2,
            group_generations=True,
        )
    distiset = pipeline.run(progress=False)
    rows = distiset["default"]["train"].to_list()
    assert rows[0]["score"] == [1, None] and rows[0][ERROR_COLUMN] is None
    assert rows[1]["score"] is None and rows[1][ERROR_COLUMN].startswith("score: OutputParseError")
    assert distiset.stats["score"].errors == 1


def test_on_error_fail_names_the_row_that_failed() -> None:
    with Pipeline(name="fail") as pipeline:
        load = LoadDataFromDicts(data=[{"instruction": "a"}, {"instruction": "?"}])
        answers = {"a": "1", "?": "nope"}
        load >> Scored(
            name="score", llm=FunctionLLM(fn=lambda m: answers[m[-1]["content"]]), on_error="fail"
        )
    with pytest.raises(StepError, match="step 'score' failed on row 1: OutputParseError"):
        pipeline.run(progress=False)


@pytest.mark.parametrize("executor", ["loop", "thread"])
def test_a_task_fails_row_by_row_wherever_it_runs(executor: str) -> None:
    def fn(messages: list[dict[str, str]]) -> str:
        if messages[-1]["content"] == "q2":
            raise RuntimeError("no")
        return "1"

    with Pipeline(name="task-rows") as pipeline:
        load = LoadDataFromDicts(data=[{"instruction": f"q{i}"} for i in range(5)])
        load >> Scored(name="score", llm=FunctionLLM(fn=fn), executor=executor, input_batch_size=5)
    distiset = pipeline.run(progress=False)
    rows = distiset["default"]["train"].to_list()
    assert [r["score"] for r in rows] == [1, 1, None, 1, 1]
    assert rows[2][ERROR_COLUMN] == "score: RuntimeError: no"
    assert distiset.stats["score"].errors == 1
