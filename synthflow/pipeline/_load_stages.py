"""Load groups: steps loaded together, and apart from the rest (distilabel's ``load_groups``).

A step's ``load`` may take a GPU's memory (a local model). ``run(load_groups=[[a, b], [c]])``
says which steps may hold their resources at the same time: the run goes in *load stages*, and
a stage's steps load only after every step of the stages before it has finished and unloaded.
The stages are distilabel's: each group is a stage; each global step is a stage of its own; the
steps in no group form stages of their own, between the groups, in topological order.
``"sequential_step_execution"`` puts every step in a group of its own.

The rows are those of a run without groups, in the same order: the DAG and its streams are the
same, only the edges into a later stage hold what reaches them until that stage starts (in
memory, as distilabel's batch manager holds them).
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping, Sequence
from typing import Any, Literal, TypeAlias

from synthflow.errors import PipelineValidationError
from synthflow.pipeline._validate import neighbours, topological_order
from synthflow.steps.base import GlobalStep, _Step

LoadGroups: TypeAlias = Sequence[Sequence[Any]] | Literal["sequential_step_execution"]
"""Lists of steps (names or the steps themselves) to load together, or
``"sequential_step_execution"``: one step at a time."""

LoadStages: TypeAlias = tuple[list[list[str]], list[list[str]]]
"""distilabel's shape: the steps of each stage, and each stage's last steps (sorted)."""


def load_stages(
    groups: LoadGroups | None, steps: Mapping[str, _Step], edges: Sequence[tuple[str, str]]
) -> LoadStages:
    """The load stages of the DAG of ``steps`` and ``edges`` with ``groups`` (distilabel's
    ``get_load_stages``); a one-line error for groups that can't be loaded so."""
    predecessors, successors = neighbours(steps, edges)
    order = topological_order(predecessors, successors)
    named = _named(groups, order)
    _check(named, steps, predecessors)
    return _stages(named, steps, order, predecessors, successors)


def _named(groups: LoadGroups | None, order: list[str]) -> list[list[Any]]:
    if groups is None:
        return []
    if isinstance(groups, str):
        if groups != "sequential_step_execution":
            raise PipelineValidationError(
                f"load_groups={groups!r}: give lists of steps, e.g. [['a', 'b'], ['c']], or "
                "'sequential_step_execution'"
            )
        return [[name] for name in order]
    named = []
    for i, group in enumerate(groups):
        if isinstance(group, str | _Step) or not isinstance(group, Sequence):
            raise PipelineValidationError(
                f"load group {i} is {group!r}, not a list of steps: write "
                f"load_groups=[[...], ...], one list per group"
            )
        named.append([s.name if isinstance(s, _Step) else s for s in group])
    return named


def _check(
    groups: list[list[Any]], steps: Mapping[str, _Step], predecessors: dict[str, list[str]]
) -> None:
    seen: dict[str, int] = {}
    for i, group in enumerate(groups):
        if not group:
            raise PipelineValidationError(f"load group {i} is empty; remove it or name its steps")
        for name in group:
            if name not in steps:
                close = difflib.get_close_matches(str(name), list(steps), n=1, cutoff=0.6)
                hint = f"did you mean {close[0]!r}?" if close else f"steps: {', '.join(steps)}"
                raise PipelineValidationError(
                    f"load group {i} names {name!r}, which is not a step of the pipeline; {hint}"
                )
            if name in seen:
                raise PipelineValidationError(
                    f"step {name!r} is in load groups {seen[name]} and {i}; a step loads once: "
                    "keep it in one group"
                )
            seen[name] = i
            if isinstance(steps[name], GlobalStep) and len(group) > 1:
                raise PipelineValidationError(
                    f"global step {name!r} is in load group {i} with other steps; a global "
                    "step runs in a stage of its own: give it a group of its own"
                )
            _check_inputs_in_reach(name, set(group), predecessors, i)


def _check_inputs_in_reach(
    name: str, group: set[str], predecessors: dict[str, list[str]], index: int
) -> None:
    """A step whose input comes, from outside its group, after another step of the group
    could never load with it (distilabel's rule: ``a >> b >> c`` can't group ``a`` and ``c``
    without ``b``)."""
    for pred in predecessors[name]:
        if pred in group:
            continue
        stack, seen = [pred], {pred}
        while stack:
            for above in predecessors[stack.pop()]:
                if above in group:
                    raise PipelineValidationError(
                        f"step {name!r} can't be in load group {index} with {above!r}: its "
                        f"input from {pred!r}, outside the group, needs {above!r} to have run; "
                        f"add {pred!r} to the group, or move {name!r} to a later one"
                    )
                if above not in seen:
                    seen.add(above)
                    stack.append(above)


def _stages(
    groups: list[list[str]],
    steps: Mapping[str, _Step],
    order: list[str],
    predecessors: Mapping[str, list[str]],
    successors: Mapping[str, list[str]],
) -> LoadStages:
    """distilabel's stages for checked ``groups``; refuses groups whose stages would need the
    output of a later stage (distilabel would wait forever)."""
    groups = [*groups, *([n] for n in order if isinstance(steps[n], GlobalStep))]
    position = {name: i for i, name in enumerate(order)}
    groups.sort(key=lambda group: position[group[0]])
    grouped = {name for group in groups for name in group}
    stages: list[list[str]] = []
    loose: list[str] = []  # steps in no group, since the last group's first step
    for name in order:
        if name not in grouped:
            loose.append(name)
            continue
        if loose:
            stages.append(loose)
            loose = []
        group = next(g for g in groups if name in g)
        if group not in stages:
            stages.append(group)
    if loose:
        stages.append(loose)
    stage_of = {name: i for i, stage in enumerate(stages) for name in stage}
    for name in order:
        for pred in predecessors[name]:
            if stage_of[pred] > stage_of[name]:
                raise PipelineValidationError(
                    f"step {name!r} (load stage {stage_of[name]}) needs the rows of {pred!r}, "
                    f"which loads later (stage {stage_of[pred]}); put {pred!r} in an earlier "
                    f"load group, or {name!r} in a later one"
                )
    last = [
        sorted(n for n in stage if not any(stage_of[s] == i for s in successors[n]))
        for i, stage in enumerate(stages)
    ]
    return stages, last
