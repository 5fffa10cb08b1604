"""Routing batch functions (``sample_n_steps``, ``@routing_batch_function``) against an
independent reference model, plus resume, saving and the errors.

Each generated case is a small DAG: a source, an optional step that does the routing, k routed
branches (chains of marking and filtering steps), an optional plain branch beside them, and a
convergence step that merges the rows or takes the branches apart (``process(*inputs)``). The
reference model is written from the rules in ``synthflow.pipeline.routing``'s docstring:

- a batch is the rows whose ids share ``id // batch_size`` of the routing step;
- the routed successors of a batch are ``random.Random(f"{step}:{batch}").sample(names, n)``;
- the convergence step gets each row once, from the routed branches that took it (and kept it),
  provided every plain branch kept it too; a separate-inputs step gets one batch per such branch.
"""

from __future__ import annotations

import itertools
import random
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import pytest

from synthflow.errors import PipelineValidationError, SerializationError
from synthflow.pipeline import Pipeline, routing_batch_function, sample_n_steps
from synthflow.steps import GroupColumns, LoadDataFromDicts, Step, StepInput
from synthflow.steps.base import Row
from synthflow.steps.tasks import TextGeneration
from synthflow.testing import FunctionLLM


def dropped(step: str, n: int) -> bool:
    return zlib.crc32(f"{step}|{n}".encode()) % 4 == 0


class Mark(Step):
    """Writes ``column`` = its name; with ``filtering``, drops the rows ``dropped`` picks."""

    column: str
    filtering: bool = False

    @property
    def inputs(self) -> list[str]:
        return ["n"]

    @property
    def outputs(self) -> list[str]:
        return [self.column]

    def process(self, inputs: StepInput) -> Iterator[list[Row]]:
        kept = [r for r in inputs if not (self.filtering and dropped(self.name, r["n"]))]
        for row in kept:
            row[self.column] = self.name
        yield kept


class Pass(Step):
    """Changes nothing (a routing step that isn't the source)."""

    @property
    def inputs(self) -> list[str]:
        return ["n"]

    def process(self, inputs: StepInput) -> Iterator[list[Row]]:
        yield inputs


class Gather(Step):
    """Takes its inputs apart: ``got`` lists, per row, the branch of each batch it was given."""

    @property
    def inputs(self) -> list[str]:
        return ["n"]

    @property
    def outputs(self) -> list[str]:
        return ["got"]

    def process(self, *inputs: StepInput) -> Iterator[list[Row]]:
        out = []
        for parts in zip(*inputs, strict=True):
            row = dict(parts[0])
            row["got"] = [part["branch"] for part in parts]
            out.append(row)
        yield out


@dataclass
class Case:
    rows: int
    source_batch: int
    router_step: bool  # route from a step after the source, rather than from the source
    router_batch: int
    n: int
    branches: list[list[tuple[str, bool]]]  # per branch: (step name, filters?) in order
    plain: list[tuple[str, bool]] = field(default_factory=list)  # a branch not routed
    separate: bool = False
    shared_column: bool = False  # every routed branch writes "out" (allowed when n == 1)

    @property
    def router(self) -> str:
        return "route" if self.router_step else "load"

    @property
    def batch(self) -> int:
        return self.router_batch if self.router_step else self.source_batch


def random_case(rng: random.Random) -> Case:
    k = rng.randint(2, 4)
    n = rng.randint(1, k)
    branches = [
        [(f"b{i}_{j}", rng.random() < 0.3) for j in range(rng.randint(1, 2))] for i in range(k)
    ]
    plain = [("p_0", rng.random() < 0.5)] if rng.random() < 0.3 else []
    separate = rng.random() < 0.4
    return Case(
        rows=rng.randint(1, 14),
        source_batch=rng.randint(1, 4),
        router_step=rng.random() < 0.4,
        router_batch=rng.randint(1, 4),
        n=n,
        branches=branches,
        plain=plain if not separate else [],
        separate=separate,
        shared_column=n == 1 and not separate and rng.random() < 0.5,
    )


def build(case: Case, tmp: Path) -> Pipeline:
    with Pipeline(name="routing-case", cache_dir=tmp) as pipeline:
        load = LoadDataFromDicts(
            name="load", data=[{"n": i} for i in range(case.rows)], batch_size=case.source_batch
        )
        router: Any = load
        if case.router_step:
            router = load >> Pass(name="route", input_batch_size=case.router_batch)
        heads, tails = [], []
        for i, chain in enumerate(case.branches):
            steps = [
                Mark(
                    name=name,
                    column="out" if case.shared_column and j == len(chain) - 1 else f"c_{name}",
                    filtering=filters,
                    input_batch_size=3,
                )
                for j, (name, filters) in enumerate(chain)
            ]
            steps[-1].output_mappings = (
                {steps[-1].column: "branch"} if case.separate else steps[-1].output_mappings
            )
            for a, b in itertools.pairwise(steps):
                a >> b
            heads.append(steps[0])
            tails.append(steps[-1])
            assert i == len(heads) - 1
        router >> sample_n_steps(case.n) >> heads
        for name, filters in case.plain:
            tails.append(load >> Mark(name=name, column=f"c_{name}", filtering=filters))
        join = Gather(name="join") if case.separate else Pass(name="join")
        tails >> join
    return pipeline


def reference(case: Case) -> list[dict[str, Any]]:
    names = [chain[0][0] for chain in case.branches]
    out = []
    for n in range(case.rows):
        if case.plain and any(filters and dropped(s, n) for s, filters in case.plain):
            continue
        chosen = random.Random(f"{case.router}:{n // case.batch}").sample(names, case.n)
        row: dict[str, Any] = {"n": n}
        got = []
        for chain in case.branches:
            if chain[0][0] not in chosen:
                continue
            if any(filters and dropped(s, n) for s, filters in chain):
                continue
            got.append(chain[-1][0])
            for j, (s, _) in enumerate(chain):
                last = j == len(chain) - 1
                if case.separate and last:
                    continue
                row["out" if case.shared_column and last else f"c_{s}"] = s
        if not got:
            continue
        for s, _ in case.plain:
            row[f"c_{s}"] = s
        if case.separate:
            row = {"n": n, "got": got, "branch": got[0]}  # the first part, and the branches
            first = next(ch for ch in case.branches if ch[-1][0] == got[0])
            row.update({f"c_{s}": s for s, _ in first[:-1]})
        out.append(row)
    return out


@pytest.mark.parametrize("seed", range(40))
def test_random_routed_dags_follow_the_routing_rules(seed: int, tmp_path: Path) -> None:
    case = random_case(random.Random(seed))
    pipeline = build(case, tmp_path)
    rows = list(pipeline.run(progress=False, use_cache=False)["default"]["train"])
    got = [{k: v for k, v in row.items() if v is not None} for row in rows]
    assert got == reference(case), case


def test_two_routed_branches_that_may_meet_may_not_write_one_column() -> None:
    with Pipeline(name="routing-conflict") as pipeline:
        load = LoadDataFromDicts(data=[{"n": 1}])
        a, b = Mark(name="a", column="out"), Mark(name="b", column="out")
        load >> sample_n_steps(2) >> [a, b] >> Pass(name="join")
    with pytest.raises(PipelineValidationError, match="both write column 'out'"):
        pipeline.run(progress=False)


# -- a distilabel pipeline: several LLMs, each row to two of them, grouped --------------------


class PaidLLM(FunctionLLM):
    """A scripted LLM whose answers the response cache keeps, as a paid API's."""

    cacheable: ClassVar[bool] = True


def llm(name: str, calls: list[str]) -> FunctionLLM:
    def answer(messages: list[dict[str, Any]]) -> str:
        calls.append(name)
        return f"{name}: {messages[-1]['content']}"

    return PaidLLM(fn=answer, model=name)


def preference_pipeline(calls: list[str], rows: int = 12) -> Pipeline:
    with Pipeline(name="routing-llms") as pipeline:
        load = LoadDataFromDicts(
            name="load", data=[{"instruction": f"q{i}"} for i in range(rows)], batch_size=3
        )
        generations = [TextGeneration(name=f"gen_{m}", llm=llm(m, calls)) for m in ("a", "b", "c")]
        group = GroupColumns(name="group", columns=["generation", "model_name"])
        load >> sample_n_steps(2) >> generations >> group
    return pipeline


def test_each_batch_goes_to_two_llms_and_comes_back_grouped() -> None:
    calls: list[str] = []
    distiset = preference_pipeline(calls).run(progress=False)
    rows = list(distiset["default"]["train"])
    assert [r["instruction"] for r in rows] == [f"q{i}" for i in range(12)]
    for i, row in enumerate(rows):
        models = row["grouped_model_name"]
        assert len(models) == 2 and models == sorted(models)
        assert row["grouped_generation"] == [f"{m}: q{i}" for m in models]
        assert models == rows[i - i % 3]["grouped_model_name"]  # one choice per batch of 3
    assert len(calls) == 24
    assert len({tuple(r["grouped_model_name"]) for r in rows}) > 1


def test_a_rerun_routes_every_row_as_before_so_the_cache_answers() -> None:
    calls: list[str] = []
    pipeline = preference_pipeline(calls)
    first = list(pipeline.run(progress=False)["default"]["train"])
    calls.clear()
    second = preference_pipeline(calls).run(progress=False)
    assert calls == []
    assert list(second["default"]["train"]) == first


def marks_pipeline(rows: int = 6) -> Pipeline:
    with Pipeline(name="routing-marks") as pipeline:
        load = LoadDataFromDicts(name="load", data=[{"n": i} for i in range(rows)], batch_size=2)
        marks = [Mark(name=f"m{i}", column="out") for i in range(3)]
        load >> sample_n_steps(1) >> marks >> Pass(name="join")
    return pipeline


def test_saved_and_loaded_it_routes_the_same() -> None:
    pipeline = marks_pipeline()
    text = pipeline.dump()
    routes = text["pipeline"]["routing_batch_functions"]
    assert routes == [
        {
            "step": "load",
            "description": "Sample 1 steps from the list of downstream steps.",
            "type_info": {
                "module": "synthflow.pipeline.routing",
                "name": "sample_n_steps",
                "kwargs": {"n": 1},
            },
            "targets": ["m0", "m1", "m2"],
        }
    ]
    loaded = Pipeline.from_dict(text, allowed_modules=[__name__])
    assert loaded.signature == pipeline.signature
    assert loaded.routes["load"].targets == ["m0", "m1", "m2"]
    rows = list(pipeline.run(progress=False, use_cache=False)["default"]["train"])
    again = list(loaded.run(progress=False, use_cache=False)["default"]["train"])
    assert again == rows
    assert [r["out"] for r in rows][::2] == [r["out"] for r in rows][1::2]  # batches of 2


def test_a_route_to_a_step_that_is_no_successor_is_refused_on_load() -> None:
    text = marks_pipeline().dump()
    text["pipeline"]["routing_batch_functions"][0]["targets"] = ["join"]
    with pytest.raises(SerializationError, match="routes to 'join', which is not a successor"):
        Pipeline.from_dict(text, allowed_modules=[__name__])


def test_routing_changes_the_signature() -> None:
    with Pipeline(name="sig") as plain:
        load = LoadDataFromDicts(name="load", data=[{"n": 1}])
        load >> [Mark(name="a", column="x"), Mark(name="b", column="y")]
    with Pipeline(name="sig") as routed:
        load = LoadDataFromDicts(name="load", data=[{"n": 1}])
        load >> sample_n_steps(1) >> [Mark(name="a", column="x"), Mark(name="b", column="y")]
    assert plain.signature != routed.signature


# -- a routing function of the user's ------------------------------------------------------------


@routing_batch_function(description="the first two, shuffled")
def first_two(steps: list[str]) -> list[str]:
    return random.sample(steps[:2], 2)


def test_a_decorated_function_routes_and_is_saved_by_reference() -> None:
    with Pipeline(name="routing-fn") as pipeline:
        load = LoadDataFromDicts(name="load", data=[{"n": i} for i in range(4)], batch_size=2)
        marks = [Mark(name=f"m{i}", column=f"c{i}") for i in range(3)]
        load >> first_two >> marks >> Pass(name="join")
    rows = list(pipeline.run(progress=False)["default"]["train"])
    assert [sorted(k for k, v in r.items() if v is not None) for r in rows] == [
        ["c0", "c1", "n"]
    ] * 4
    entry = pipeline.dump()["pipeline"]["routing_batch_functions"][0]
    assert entry["type_info"] == {"module": __name__, "name": "first_two"}
    with pytest.raises(SerializationError, match="not allowed"):
        Pipeline.from_dict(pipeline.dump())
    loaded = Pipeline.from_dict(pipeline.dump(), allowed_modules=[__name__])
    assert loaded.routes["load"].description == "the first two, shuffled"


def test_a_function_that_names_another_step_fails_the_run_with_what_to_return() -> None:
    @routing_batch_function
    def stray(steps: list[str]) -> list[str]:
        return ["elsewhere"]

    with Pipeline(name="routing-stray") as pipeline:
        load = LoadDataFromDicts(data=[{"n": 1}])
        load >> stray >> [Mark(name="a", column="x"), Mark(name="b", column="y")]
    with pytest.raises(Exception, match="return names from the list it is given"):
        pipeline.run(progress=False)


# -- misuse ----------------------------------------------------------------------------------------


def test_more_routes_than_successors_is_refused_before_the_run() -> None:
    with Pipeline(name="routing-many") as pipeline:
        load = LoadDataFromDicts(data=[{"n": 1}])
        load >> sample_n_steps(3) >> [Mark(name="a", column="x"), Mark(name="b", column="y")]
    with pytest.raises(PipelineValidationError, match=r"use sample_n_steps\(2\) or fewer"):
        pipeline.run(progress=False)


@pytest.mark.parametrize("n", [0, -1, 1.5, True])
def test_n_must_be_a_whole_number_of_at_least_one(n: Any) -> None:
    with pytest.raises(PipelineValidationError, match="whole number n >= 1"):
        sample_n_steps(n)


def test_routing_needs_an_upstream_step_and_a_list() -> None:
    with Pipeline(name="routing-misuse"):
        load = LoadDataFromDicts(data=[{"n": 1}])
        a = Mark(name="a", column="x")
        with pytest.raises(PipelineValidationError, match="goes between a step"):
            sample_n_steps(1) >> [a]
        with pytest.raises(PipelineValidationError, match="routes to a list of steps"):
            load >> sample_n_steps(1) >> a  # type: ignore[operator]


# -- resume --------------------------------------------------------------------------------------

POWER_CUT_AT: list[int] = []  # an outside event, not a parameter of the run


class FailAt(Step):
    """Passes rows on; the row numbered in ``POWER_CUT_AT`` takes the run down."""

    @property
    def inputs(self) -> list[str]:
        return ["n"]

    def process(self, inputs: StepInput) -> Iterator[list[Row]]:
        if any(row["n"] in POWER_CUT_AT for row in inputs):
            raise RuntimeError("power cut")
        yield inputs


def resumable() -> Pipeline:
    with Pipeline(name="routing-resume") as pipeline:
        load = LoadDataFromDicts(name="load", data=[{"n": i} for i in range(60)], batch_size=4)
        marks = [Mark(name=f"m{i}", column="out", filtering=i == 0) for i in range(3)]
        load >> sample_n_steps(1) >> marks >> FailAt(name="join", input_batch_size=4)
    return pipeline


def test_an_interrupted_routed_run_resumes_with_the_same_routes(
    capsys: pytest.CaptureFixture[str],
) -> None:
    complete = list(resumable().run(progress=False, use_cache=False)["default"]["train"])
    pipeline = resumable()
    POWER_CUT_AT[:] = [37]
    try:
        with pytest.raises(Exception, match="power cut"):
            pipeline.run(progress=False)
    finally:
        POWER_CUT_AT.clear()
    capsys.readouterr()
    saved = list(pipeline.run(progress=False)["default"]["train"])
    assert "resuming an interrupted run" in capsys.readouterr().err
    assert saved == complete
    assert 0 < len(complete) < 60  # m0 dropped some of the rows it took
