"""Putting a sharded run back together: rows, statistics and response caches.

Nothing here needs Ray: the shards' results are Arrow tables that keep each row's lineage id,
so the merged leaf is the shards' rows in global id order, which is the order one process
writes them in. A leaf's merged rows go through the same writer as a one-process run's, so the
Distiset is built from files of the same shape.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterable, Sequence
from dataclasses import fields
from pathlib import Path
from typing import Any

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
    "leaf_table",
    "merge_caches",
    "merge_stats",
    "write_leaf",
]


def leaf_table(directory: Path) -> Any:
    """The rows a leaf writer left in ``directory`` (its parts), lineage ids kept; None when
    the leaf made no rows."""
    parts = sorted(directory.glob(f"part-*{PART_SUFFIX}"))
    return concat_tables([read_part(p) for p in parts])


def write_leaf(directory: Path, tables: Sequence[Any]) -> Path:
    """Write the rows of ``tables`` (shards' leaf tables, with lineage ids) in id order as the
    leaf's data file in ``directory``; return its path."""
    shutil.rmtree(directory, ignore_errors=True)
    directory.mkdir(parents=True)
    merged = in_id_order(tables)
    if merged is not None and merged.num_rows:
        _write_stream(directory / f"part-00000{PART_SUFFIX}", merged.schema, [merged])
    return LeafWriter(directory, resume=True).finish()


def in_id_order(tables: Sequence[Any]) -> Any:
    """The rows of ``tables`` (shards' parts of one step's rows) as one table, in the order
    one process makes them: by lineage id. None when there are no rows."""
    import pyarrow.compute as pc

    merged = concat_tables([t for t in tables if t is not None])
    if merged is None or not merged.num_rows:
        return merged
    return merged.take(pc.sort_indices(merged, sort_keys=[(ROW_ID, "ascending")]))


def concat_tables(tables: Sequence[Any]) -> Any:
    """One table of ``tables``, whose columns may differ in type from one to another (a column
    that is all nulls in one shard and text in another, or JSON text where types clash, as the
    leaf writer does across its parts)."""
    import pyarrow as pa

    tables = [t for t in tables if t.num_rows or t.num_columns]
    if not tables:
        return None
    schema, as_text = _unified_schema([t.schema for t in tables])
    if any(ROW_ID in t.schema.names for t in tables):
        schema = schema.append(pa.field(ROW_ID, pa.int64()))
    return pa.concat_tables([_conform(t, schema, as_text) for t in tables])


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
