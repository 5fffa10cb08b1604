"""Cutting a pipeline at its global steps, for a sharded run.

A global step needs every row in one place, so a sharded run goes in stages. Each stage runs,
sharded, the steps that no global step still to run precedes; then the global steps whose
inputs are all made run once, in the driver. The next stage starts from what the earlier ones
made: their rows enter it through ``StageRows`` sources that keep each row's lineage id, so
joins by id, the dataset's order and the response cache's keys stay those of a one-process run.

Nothing here needs Ray.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

from pydantic import Field

from synthflow.distributed.merge import in_id_order
from synthflow.pipeline._validate import Plan
from synthflow.steps.base import ROW_ID, GeneratorStep, GlobalStep, Row

__all__ = ["Stage", "StageRows", "stages"]


class StageRows(GeneratorStep):
    """The rows an earlier stage made for a step, as a source for the next stage, with their
    lineage ids (``parts``: the shards' parts of them, each in id order, as Arrow tables with
    the id column or Parquet files on shared storage; none for no rows)."""

    numbers_rows: ClassVar[bool] = False
    parts: list[Any] = Field(default_factory=list, exclude=True)
    columns: list[str] = Field(default_factory=list)

    @property
    def outputs(self) -> list[str]:
        return list(self.columns)

    def process(self, offset: int = 0) -> Iterator[list[Row]]:
        _, tables = in_id_order(self.parts)
        for table in tables:
            for batch in table.to_batches(max_chunksize=self.batch_size):
                rows = [row for row in batch.to_pylist() if row[ROW_ID] >= offset]
                if rows:
                    yield rows


@dataclass(frozen=True)
class Stage:
    """Steps to run together: ``sharded`` over the workers, or once in the driver."""

    plan: Plan
    sharded: bool
    inputs: tuple[str, ...]
    """Steps of earlier stages whose rows this one starts from (its ``StageRows``)."""


def stages(full: Plan, made: Mapping[str, Any]) -> Iterator[Stage]:
    """The stages of ``full``, in order. Each stage's plan writes (as leaves) what later stages
    need; the caller runs it and puts those rows in ``made`` (step name -> its parts, as
    ``StageRows`` takes them) before asking for the next stage."""
    remaining = list(full.steps)
    while remaining:
        globals_ = [n for n in remaining if isinstance(full.steps[n], GlobalStep)]
        below = _descendants(full, globals_, set(remaining))
        work = [n for n in remaining if n not in below]
        if work:
            yield _stage(full, work, made, below, sharded=True)
        done = set(work)
        ready = [g for g in globals_ if all(p in made or p in done for p in full.predecessors[g])]
        for name in ready:
            yield _stage(full, [name], made, set(), sharded=False)
        remaining = [n for n in remaining if n not in done and n not in ready]


def _descendants(full: Plan, roots: list[str], within: set[str]) -> set[str]:
    seen = set(roots)
    stack = list(roots)
    while stack:
        for succ in full.successors[stack.pop()]:
            if succ in within and succ not in seen:
                seen.add(succ)
                stack.append(succ)
    return seen


def _stage(
    full: Plan, work: list[str], made: Mapping[str, Any], later: set[str], *, sharded: bool
) -> Stage:
    members = set(work)
    inputs = [name for name in full.steps if name in made and set(full.successors[name]) & members]
    sources = {name: _rows_of(full, name, made[name]) for name in inputs}
    names = [n for n in full.steps if n in members or n in sources]
    steps = {n: sources.get(n) or full.steps[n] for n in names}
    keep = set(names)
    predecessors = {
        n: [] if n in sources else [p for p in full.predecessors[n] if p in keep] for n in names
    }
    successors = {n: [s for s in full.successors[n] if s in keep] for n in names}
    handed_on = tuple(n for n in work if set(full.successors[n]) & later)
    sub = Plan(
        steps,
        predecessors,
        successors,
        owners={n: o for n, o in full.owners.items() if n in members},
        also_written=handed_on,
        routes={n: r for n, r in full.routes.items() if n in members},
        optional_inputs={n: o for n, o in full.optional_inputs.items() if n in members},
    )
    return Stage(sub, sharded, tuple(inputs))


def _rows_of(full: Plan, name: str, parts: list[Any] | None) -> StageRows:
    parts = parts or []
    step = full.steps[name]
    schema, _ = in_id_order(parts)
    columns = [c for c in schema.names if c != ROW_ID] if schema is not None else []
    size = getattr(step, "batch_size", None) or getattr(step, "input_batch_size", 50)
    return StageRows(name=name, parts=parts, columns=columns, batch_size=size)
