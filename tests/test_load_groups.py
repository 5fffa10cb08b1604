"""Load groups (distilabel's ``run(load_groups=...)``): the run goes in load stages, a stage's
steps load only once the earlier stages' steps have finished and unloaded, and the rows are
those of a run without groups."""

from __future__ import annotations

import random
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from synthflow.errors import PipelineValidationError, StepError
from synthflow.pipeline import Pipeline
from synthflow.steps import GlobalStep, LoadDataFromDicts, Step, StepInput, step
from synthflow.steps.base import Row

EVENTS: list[tuple[str, str]] = []
"""("load" | "unload", step name), in the order they happened."""


class Recorded:
    """Records the step's load and unload in ``EVENTS``; writes the column named after it."""

    name: str

    @property
    def outputs(self) -> list[str]:
        return [self.name]

    def load(self) -> None:
        EVENTS.append(("load", self.name))

    def unload(self) -> None:
        EVENTS.append(("unload", self.name))


class Tag(Recorded, Step):
    """Writes ``<name>`` = "<name>(<text>)"."""

    @property
    def inputs(self) -> list[str]:
        return ["text"]

    def process(self, inputs: StepInput) -> Iterator[list[Row]]:
        for row in inputs:
            row[self.name] = f"{self.name}({row['text']})"
        yield inputs


class Count(Recorded, GlobalStep):
    """A global step: writes how many rows it saw."""

    def process(self, inputs: StepInput) -> Iterator[list[Row]]:
        for row in inputs:
            row[self.name] = len(inputs)
        yield inputs


def assert_stages_loaded_apart(stages: list[list[str]]) -> None:
    """Every recorded step of a stage loaded after every recorded step of the stages before
    it unloaded; and each loaded once."""
    where = {(kind, name): i for i, (kind, name) in enumerate(EVENTS)}
    recorded = {name for _, name in EVENTS}
    assert len(where) == len(EVENTS), EVENTS
    for k, stage in enumerate(stages):
        for name in (n for n in stage if n in recorded):
            for earlier in (n for s in stages[:k] for n in s if n in recorded):
                assert where["unload", earlier] < where["load", name], (stages, EVENTS)


# -- the stages: distilabel's shape -----------------------------------------------------------


@step(inputs=["instruction"], outputs=["instruction2"])
def Dummy(inputs: StepInput) -> Iterator[list[Row]]:
    yield inputs


@step(inputs=["instruction"], outputs=["instruction2"], step_type="global")
def GlobalDummy(inputs: StepInput) -> Iterator[list[Row]]:
    yield inputs


def test_global_steps_and_groups_make_distilabel_s_stages() -> None:
    with Pipeline() as pipeline:
        load = LoadDataFromDicts(name="load", data=[{"instruction": "Hi"}] * 5)
        a, g, b = Dummy(name="a"), GlobalDummy(name="g"), Dummy(name="b")
        load >> a >> g >> b
    assert pipeline.get_load_stages() == ([["load", "a"], ["g"], ["b"]], [["a"], ["g"], ["b"]])
    assert pipeline.get_load_stages([[a]]) == (
        [["load"], ["a"], ["g"], ["b"]],
        [["load"], ["a"], ["g"], ["b"]],
    )
    assert pipeline.get_load_stages("sequential_step_execution")[0] == [
        ["load"],
        ["a"],
        ["g"],
        ["b"],
    ]


def test_steps_in_no_group_make_stages_between_the_groups() -> None:
    with Pipeline() as pipeline:
        load = LoadDataFromDicts(name="load", data=[{"text": "x"}])
        a, b, c, d = (Tag(name=n) for n in "abcd")
        load >> a >> [b, c]
        [b, c] >> d
    stages, last = pipeline.get_load_stages([["b", c]])
    assert stages == [["load", "a"], ["b", "c"], ["d"]]
    assert last == [["a"], ["b", "c"], ["d"]]


@pytest.mark.parametrize(
    ("groups", "message"),
    [
        ([["a", "bb"]], "load group 0 names 'bb', which is not a step of the pipeline; did you "),
        ([["a"], ["a", "b"]], "step 'a' is in load groups 0 and 1; a step loads once"),
        ([["a", "c"]], "step 'c' can't be in load group 0 with 'a': its input from 'b'"),
        ([["g", "c"]], "global step 'g' is in load group 0 with other steps"),
        ([[]], "load group 0 is empty"),
        (["a"], "load group 0 is 'a', not a list of steps"),
        ("sequential", "load_groups='sequential': give lists of steps"),
        ([["a", "y"], ["x"]], "step 'y' (load stage 1) needs the rows of 'x', which loads later"),
    ],
)
def test_bad_groups_are_refused_in_one_line(groups: Any, message: str) -> None:
    with Pipeline() as pipeline:
        load = LoadDataFromDicts(name="load", data=[{"text": "x"}])
        load >> Tag(name="a") >> Tag(name="b") >> Tag(name="c") >> Count(name="g")
        other = LoadDataFromDicts(name="other", data=[{"text": "y"}])
        other >> Tag(name="x") >> Tag(name="y")
    with pytest.raises(PipelineValidationError) as info:
        pipeline.get_load_stages(groups)
    assert message in str(info.value) and "\n" not in str(info.value)
    with pytest.raises(PipelineValidationError, match=r"load group|load stage|load_groups"):
        pipeline.run(load_groups=groups, progress=False)


# -- running in stages ---------------------------------------------------------------------------


def test_a_later_stage_loads_after_the_earlier_stage_unloaded(tmp_path: Path) -> None:
    with Pipeline(name="stages", cache_dir=tmp_path) as pipeline:
        load = LoadDataFromDicts(name="load", data=[{"text": f"t{i}"} for i in range(20)])
        a = Tag(name="a", input_batch_size=3)
        b = Tag(name="b", executor="thread")
        load >> a >> b >> Tag(name="c")
    EVENTS.clear()
    distiset = pipeline.run(load_groups=[[a], ["c"]], progress=False, use_cache=False)
    stages = pipeline.get_load_stages([[a], ["c"]])[0]
    assert stages == [["load"], ["a"], ["b"], ["c"]]
    assert [(kind, n) for n in "abc" for kind in ("load", "unload")] == EVENTS
    assert_stages_loaded_apart(stages)
    assert distiset["default"]["train"]["c"] == [f"c(t{i})" for i in range(20)]

    EVENTS.clear()  # without groups, every step loads before any runs
    pipeline.run(progress=False, use_cache=False)
    assert [kind for kind, _ in EVENTS[:3]] == ["load"] * 3


def random_pipeline(rng: random.Random, tmp: Path) -> tuple[Pipeline, Any]:
    """A random DAG (fan-out, fan-in, a global step at times) and random valid load groups:
    consecutive runs of its topological order, a global step alone. Joins of a global step's
    rows with rows that bypass it are among them."""
    with Pipeline(name="random-stages", cache_dir=tmp) as pipeline:
        nodes: list[Any] = [
            LoadDataFromDicts(
                name="load",
                data=[{"text": f"t{i}"} for i in range(rng.randint(1, 12))],
                batch_size=rng.randint(1, 4),
            )
        ]
        for i in range(rng.randint(2, 7)):
            if rng.random() < 0.15:
                node: Any = Count(name=f"count{i}")
            else:
                executor = rng.choice(["loop", "loop", "thread"])
                node = Tag(name=f"tag{i}", input_batch_size=rng.randint(1, 4), executor=executor)
            for pred in rng.sample(nodes, min(len(nodes), rng.choice([1, 1, 2]))):
                pred >> node
            nodes.append(node)
    if rng.random() < 0.1:
        return pipeline, "sequential_step_execution"
    order = pipeline.get_load_stages("sequential_step_execution")[0]
    segments: list[list[Any]] = [[]]
    for (name,) in order:
        if isinstance(pipeline.steps[name], GlobalStep):
            segments += [[name], []]
        elif segments[-1] and rng.random() < 0.4:
            segments.append([name])
        else:
            segments[-1].append(name)
    segments = [s for s in segments if s]
    groups = [
        [pipeline.steps[n] if rng.random() < 0.3 else n for n in s]
        for s in segments
        if rng.random() < 0.6
    ]
    rng.shuffle(groups)  # their order doesn't matter: the DAG's does
    return pipeline, groups


@pytest.mark.parametrize("seed", range(40))
def test_random_pipelines_give_the_same_rows_with_load_groups(seed: int, tmp_path: Path) -> None:
    pipeline, groups = random_pipeline(random.Random(seed), tmp_path)
    plain = pipeline.run(progress=False, use_cache=False)
    EVENTS.clear()
    staged = pipeline.run(load_groups=groups, progress=False, use_cache=False)
    assert_stages_loaded_apart(pipeline.get_load_stages(groups)[0])
    assert sorted(staged) == sorted(plain), groups
    for name in plain:
        assert staged[name]["train"].to_list() == plain[name]["train"].to_list(), groups


# -- resuming ------------------------------------------------------------------------------------

POWER_CUT_AT: list[int] = []


class FailAt(Tag):
    def process(self, inputs: StepInput) -> Iterator[list[Row]]:
        for row in inputs:
            if row["n"] in POWER_CUT_AT:
                raise RuntimeError("power cut")
        yield from super().process(inputs)


@pytest.mark.parametrize("failing", ["first", "second"])
def test_a_run_cut_in_any_stage_resumes(failing: str, tmp_path: Path) -> None:
    with Pipeline(name="resume-stages", cache_dir=tmp_path) as pipeline:
        data = [{"n": i, "text": f"t{i}"} for i in range(60)]
        load = LoadDataFromDicts(name="load", data=data, batch_size=5)
        first = (FailAt if failing == "first" else Tag)(name="first", input_batch_size=5)
        second = (FailAt if failing == "second" else Tag)(name="second", input_batch_size=5)
        load >> first >> second
    POWER_CUT_AT[:] = [42]
    try:
        with pytest.raises(StepError, match="power cut"):
            pipeline.run(load_groups="sequential_step_execution", progress=False)
    finally:
        POWER_CUT_AT.clear()
    written = list((pipeline.run_dir / "data" / "second").glob("part-*.arrow"))
    assert bool(written) == (failing == "second")  # the second stage had begun to write

    distiset = pipeline.run(load_groups="sequential_step_execution", progress=False)
    rows = distiset["default"]["train"].to_list()
    assert [r["n"] for r in rows] == list(range(60))
    assert [r["second"] for r in rows] == [f"second(t{i})" for i in range(60)]
