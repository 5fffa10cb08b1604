"""Re-running only the rows that failed (``run(retry_failed=True)``, ``--retry-failed``).

The failure record of the last finished run names the source ids of its failed rows. The retry
runs the pipeline with each source sending only those rows (numbered as before, so each keeps
its lineage id, and with it its response-cache entries: what was answered is not asked again),
into leaf parts of its own. When it has finished, each leaf's dataset is rewritten with the
retried rows in place of the old ones, at their source positions (a row dropped the first time
goes back where it belongs), and its failure record replaces the old one: rows that succeeded
leave it. A retry that is interrupted changes neither the dataset nor the record.
"""

from __future__ import annotations

import heapq
import shutil
from collections.abc import Iterator
from pathlib import Path

from synthflow.errors import PipelineValidationError
from synthflow.pipeline._failures import FAILURES_FILE, failed_row_ids, read_failures
from synthflow.pipeline._sink import PART_SUFFIX, LeafWriter, read_part
from synthflow.steps.base import ERROR_COLUMN, ROW_ID, GlobalStep, Row, _Step

RETRY_DIR = "retry"
RETRY_FAILURES_FILE = "failures.retry.jsonl"
MERGE_BATCH_ROWS = 4096


def rows_to_retry(
    run_dir: Path, steps: dict[str, _Step], fingerprint: str, previous: str | None, complete: bool
) -> frozenset[int]:
    """The source ids of the failed rows of the last run in ``run_dir``; raises when they
    can't be retried alone (one line, saying what to do instead)."""
    global_steps = [name for name, step in steps.items() if isinstance(step, GlobalStep)]
    if global_steps:
        raise PipelineValidationError(
            f"retry_failed can't re-run some rows alone through global step "
            f"{global_steps[0]!r}, which needs every row: run the pipeline again without it "
            "(LLM answers come from the cache)"
        )
    if not complete:
        raise PipelineValidationError(
            "retry_failed re-runs the failed rows of a finished run, but the last run of this "
            "pipeline did not finish: run it again without retry_failed first (it resumes)"
        )
    if previous is not None and previous != fingerprint:
        raise PipelineValidationError(
            "retry_failed: the runtime parameters changed since the last run, so its rows "
            "can't be mixed with new ones; run the pipeline again without retry_failed "
            "(LLM answers come from the cache)"
        )
    return frozenset(failed_row_ids(read_failures(run_dir / FAILURES_FILE)))


def finish_retry(
    run_dir: Path, retried_dirs: dict[str, Path], retried: frozenset[int], done: bool
) -> dict[str, Path]:
    """Merge the retried rows (each leaf's parts in ``retried_dirs``, under ``RETRY_DIR``) into
    each leaf's data, and the retry's failures (``RETRY_FAILURES_FILE``) into the record.
    A retry cut short (a budget) changes nothing: its answers are in the cache for the next."""
    files: dict[str, Path] = {}
    for leaf, directory in retried_dirs.items():
        data = run_dir / "data" / leaf
        files[leaf] = merge_leaf(data, directory, retried) if done else data / "data.arrow"
    shutil.rmtree(run_dir / RETRY_DIR, ignore_errors=True)
    fresh = run_dir / RETRY_FAILURES_FILE
    if done:
        if fresh.exists():
            fresh.replace(run_dir / FAILURES_FILE)
        else:  # every retried row succeeded
            (run_dir / FAILURES_FILE).unlink(missing_ok=True)
    else:
        fresh.unlink(missing_ok=True)
    return files


def merge_leaf(data_dir: Path, retried_dir: Path, replaced: frozenset[int]) -> Path:
    """Rewrite the leaf in ``data_dir`` with the rows of ``retried_dir`` in place of its rows
    whose ids are in ``replaced``, in source order; return its ``data.arrow``."""
    target = data_dir / "data.arrow"
    new_parts = sorted(retried_dir.glob(f"part-*{PART_SUFFIX}"))
    old_parts = sorted(data_dir.glob(f"part-*{PART_SUFFIX}"))
    if not replaced and not new_parts and target.exists():
        return target
    keep_errors = _any_error(old_parts, replaced, keep=False) or _any_error(new_parts, replaced)
    merged = data_dir.with_name(f".merging-{data_dir.name}")
    shutil.rmtree(merged, ignore_errors=True)
    writer = LeafWriter(merged)
    old = (r for r in _rows(old_parts) if r[ROW_ID] not in replaced)
    pending: list[Row] = []
    for row in heapq.merge(old, _rows(new_parts), key=_row_id):
        if not keep_errors:
            row.pop(ERROR_COLUMN, None)  # no failure left: as a run without failures writes it
        pending.append(row)
        if len(pending) == MERGE_BATCH_ROWS:
            writer.write(pending)
            pending = []
    writer.write(pending)
    writer.finish()
    stale = data_dir.with_name(f".replaced-{data_dir.name}")
    shutil.rmtree(stale, ignore_errors=True)
    data_dir.rename(stale)
    merged.rename(data_dir)
    shutil.rmtree(stale, ignore_errors=True)
    return target


def _row_id(row: Row) -> int:
    rid: int = row[ROW_ID]
    return rid


def _rows(parts: list[Path]) -> Iterator[Row]:
    for part in parts:
        for batch in read_part(part).to_batches():
            yield from batch.to_pylist()


def _any_error(parts: list[Path], replaced: frozenset[int], *, keep: bool = True) -> bool:
    """Whether a row of ``parts`` (those with ids in ``replaced`` when ``keep``, the others
    when not) holds an error."""
    import pyarrow as pa
    import pyarrow.compute as pc

    ids = pa.array(sorted(replaced), type=pa.int64())
    for part in parts:
        table = read_part(part)
        if ERROR_COLUMN not in table.column_names:
            continue
        chosen = pc.is_in(table.column(ROW_ID), value_set=ids)
        if not keep:
            chosen = pc.invert(chosen)
        errors = table.filter(chosen).column(ERROR_COLUMN)
        if errors.null_count < len(errors):
            return True
    return False
