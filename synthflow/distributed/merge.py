"""Putting a sharded run back together: rows, statistics and response caches.

Nothing here needs Ray: the shards' results are Arrow tables (or Parquet files on shared
storage, ``storage.StoredPart``) that keep each row's lineage id, each in id order, so the
merged leaf is a k-way merge of them by id, which is the order one process writes rows in. The
merge streams: it holds one batch of each shard at a time, and takes runs of rows (a shard owns
whole blocks of ids) rather than single rows. A leaf's merged rows go through the same writer as
a one-process run's, so the Distiset is built from files of the same shape.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from synthflow.distributed.storage import StoredPart
from synthflow.models.callpath.cache import ResponseCache
from synthflow.models.callpath.calls import LLMCallStats
from synthflow.pipeline._sink import (
    PART_SUFFIX,
    LeafWriter,
    _conform,
    _unified_schema,
    _write_stream,
    read_part,
)
from synthflow.pipeline.stats import StepStats
from synthflow.steps.base import ROW_ID

__all__ = [
    "concat_tables",
    "in_id_order",
    "leaf_parts",
    "leaf_table",
    "merge_caches",
    "merge_stats",
    "write_leaf",
]

Rows = Any
"""One shard's (or the driver's) rows of a step, in id order: an Arrow table with the lineage
id column, or a ``StoredPart``."""


def leaf_parts(directory: Path) -> tuple[Any, list[Any]]:
    """The schema (lineage id kept) and the memory-mapped parts a leaf writer left in
    ``directory``, conformed to it; (None, []) when the leaf made no rows."""
    parts = [read_part(p) for p in sorted(directory.glob(f"part-*{PART_SUFFIX}"))]
    parts = [t for t in parts if t.num_rows or t.num_columns]
    if not parts:
        return None, []
    schema, as_text = _schema_with_ids([t.schema for t in parts])
    return schema, [_conform(t, schema, as_text) for t in parts]


def leaf_table(directory: Path) -> Any:
    """The rows a leaf writer left in ``directory`` (its parts), lineage ids kept; None when
    the leaf made no rows."""
    import pyarrow as pa

    schema, parts = leaf_parts(directory)
    return None if schema is None else pa.concat_tables(parts)


def write_leaf(directory: Path, sources: Sequence[Rows]) -> Path:
    """Write the rows of ``sources`` (shards' rows of a leaf) in id order as the leaf's data
    file in ``directory``; return its path."""
    shutil.rmtree(directory, ignore_errors=True)
    directory.mkdir(parents=True)
    schema, batches = in_id_order(sources)
    if schema is not None:
        _write_stream(directory / f"part-00000{PART_SUFFIX}", schema, batches)
    return LeafWriter(directory, resume=True).finish()


def in_id_order(sources: Sequence[Rows]) -> tuple[Any, Iterator[Any]]:
    """The schema of the rows of ``sources`` (shards' parts of one step's rows, each in id
    order) and their tables in the order one process makes them: by lineage id. (None, no
    tables) when there are no rows."""
    present = [s for s in sources if s is not None and _holds_rows(s)]
    if not present:
        return None, iter(())
    schema, as_text = _schema_with_ids([_schema_of(s) for s in present])
    merged = _merge_by_id([_tables_of(s) for s in present])
    return schema, (_conform(t, schema, as_text) for t in merged)


def concat_tables(tables: Sequence[Any]) -> Any:
    """One table of ``tables``, whose columns may differ in type from one to another (a column
    that is all nulls in one shard and text in another, or JSON text where types clash, as the
    leaf writer does across its parts)."""
    import pyarrow as pa

    tables = [t for t in tables if t.num_rows or t.num_columns]
    if not tables:
        return None
    schema, as_text = _schema_with_ids([t.schema for t in tables])
    return pa.concat_tables([_conform(t, schema, as_text) for t in tables])


def _schema_with_ids(schemas: list[Any]) -> tuple[Any, set[str]]:
    import pyarrow as pa

    schema, as_text = _unified_schema(schemas)
    if any(ROW_ID in s.names for s in schemas):
        schema = schema.append(pa.field(ROW_ID, pa.int64()))
    return schema, as_text


def _holds_rows(source: Rows) -> bool:
    return bool(source.rows) if isinstance(source, StoredPart) else bool(source.num_rows)


def _schema_of(source: Rows) -> Any:
    return source.schema() if isinstance(source, StoredPart) else source.schema


def _tables_of(source: Rows) -> Iterator[Any]:
    if isinstance(source, StoredPart):
        yield from source.tables()
    else:
        yield source


@dataclass
class _Head:
    """A source's table in hand, its lineage ids, and where the merge is in it."""

    table: Any
    ids: Any
    at: int
    rest: Iterator[Any]

    @property
    def next_id(self) -> int:
        return int(self.ids[self.at])


def _merge_by_id(sources: list[Iterator[Any]]) -> Iterator[Any]:
    """Slices of the tables of ``sources`` (each in id order) in id order: each time, the run
    of the source with the lowest next id up to the next id of any other source."""
    import numpy as np

    heads = [h for h in (_next_head(s) for s in sources) if h is not None]
    while heads:
        heads.sort(key=lambda h: h.next_id)  # a few sources: cheaper than a heap's bookkeeping
        first = heads[0]
        end = len(first.ids)
        if len(heads) > 1:
            bound = heads[1].next_id
            end = int(np.searchsorted(first.ids, bound, side="left"))
            if end == first.at:  # one id in two sources: take the first's rows of it
                end = int(np.searchsorted(first.ids, bound, side="right"))
        yield first.table.slice(first.at, end - first.at)
        first.at = end
        if first.at == len(first.ids):
            following = _next_head(first.rest)
            heads[0:1] = [following] if following is not None else []


def _next_head(tables: Iterator[Any]) -> _Head | None:
    for table in tables:
        if table.num_rows:
            ids = table.column(ROW_ID).to_numpy()
            return _Head(table, ids, 0, tables)
    return None


def merge_stats(per_shard: Iterable[dict[str, StepStats]]) -> dict[str, StepStats]:
    """Every shard's counters added up, step by step."""
    merged: dict[str, StepStats] = {}
    calls: dict[str, list[LLMCallStats]] = {}
    for stats in per_shard:
        for name, part in stats.items():
            total = merged.setdefault(name, StepStats(name, source=part.source))
            for f in fields(StepStats):
                value = getattr(part, f.name)
                if f.name in ("name", "source", "llm", "rows_total", "spilled"):
                    continue
                if f.name == "queue_fill":
                    total.queue_fill = max(total.queue_fill, value)
                else:
                    setattr(total, f.name, getattr(total, f.name) + value)
            total.spilled = total.spilled or part.spilled
            if part.rows_total is not None:  # every shard expects the same rows of a source
                total.rows_total = part.rows_total
            if part.llm is not None:
                calls.setdefault(name, []).append(part.llm)
    for name, parts in calls.items():
        merged[name].llm = LLMCallStats.total(parts)
    return merged


def merge_caches(target: Path, sources: Iterable[Path]) -> int:
    """Add every generation of the caches at ``sources`` to the cache at ``target``."""
    existing = [p for p in sources if p.exists()]
    if not existing:
        return 0
    cache = ResponseCache(target)
    try:
        return sum(cache.merge_from(path) for path in existing)
    finally:
        cache.close()
