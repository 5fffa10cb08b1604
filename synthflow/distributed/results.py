"""Where a run on Ray leaves what it made: in the pipeline's run directory, as one process does.

The shards and stages work under ``<run dir>/ray/``. Once a run has finished, its data (each
leaf's under ``<run dir>/data/``), its failure record (``failures.jsonl``), the fingerprint of its
runtime parameters and the mark that it finished are where a one-process run writes them. So the
last finished run, local or on Ray, is the one that ``retry_failed`` starts from, whichever
backend runs the retry. A run that starts takes the mark away; one stopped early (its budget
spent) leaves the rest as it was and writes its own rows under ``<run dir>/ray/``, and an
interrupted one writes nothing there (its shards resume when it runs again).

A retry on Ray reads the failed rows' ids here, in the driver, and hands them to every shard
(``RunOptions.only_ids``): a shard's sources send only those of its own rows, as a new run whose
data holds just them. The driver then merges the rows that came back into the last finished
run's data, and their failures into its record, exactly as a local retry does
(``synthflow.pipeline._retry``).

Nothing here needs Ray.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import replace
from pathlib import Path

from synthflow.distributed.checkpoints import join_stored_failure_records
from synthflow.distributed.merge import Rows, merge_caches, write_leaf
from synthflow.pipeline._engine import (
    CACHE_FILE,
    COMPLETE_MARKER,
    RunOptions,
    mark_finished,
    rows_to_retry_in,
)
from synthflow.pipeline._failures import FAILURES_FILE
from synthflow.pipeline._retry import RETRY_DIR, RETRY_FAILURES_FILE, finish_retry
from synthflow.pipeline._validate import Plan

__all__ = [
    "WORK_DIR",
    "add_answers_from_ray",
    "ids_digest",
    "join_failure_records",
    "keep_result",
    "start_result",
]

WORK_DIR = "ray"
"""Where, in the run directory, a run on Ray keeps its stages and shards."""


def start_result(plan: Plan, home: Path, options: RunOptions) -> RunOptions:
    """Start a run whose result goes to ``home``; return the options of its shards. A retry
    reads the ids of the rows that the last finished run failed, as ``only_ids`` (one that
    can't be says so here, in one line). Any other run makes the last finished one no longer
    the last run: until it finishes too, a retry is refused, as after a local run cut short."""
    if not options.retry_failed:
        (home / COMPLETE_MARKER).unlink(missing_ok=True)
        return options
    return replace(options, retry_failed=False, only_ids=rows_to_retry_in(plan, home))


def add_answers_from_ray(home: Path) -> None:
    """Before a local retry: add what runs on Ray were answered (each stage's cache) to the
    run's own cache, so that a retry after a run on Ray asks again only what failed."""
    merge_caches(home / CACHE_FILE, sorted((home / WORK_DIR).glob(f"stage-*/{CACHE_FILE}")))


def ids_digest(ids: frozenset[int]) -> str:
    """A short fingerprint of a set of row ids: shards made for other ids don't resume."""
    data = ",".join(map(str, sorted(ids))).encode()
    return hashlib.sha256(data).hexdigest()[:16]


def keep_result(
    plan: Plan,
    home: Path,
    work: Path,
    made: Mapping[str, Sequence[Rows]],
    stored: Mapping[str, tuple[str, list[str]]],
    options: RunOptions,
    *,
    finished: bool,
) -> tuple[dict[str, Path], Path | None]:
    """Write what the run made (``made``: each leaf's parts; ``stored``: the stages whose
    failure records are on storage) where it belongs (see the module's docstring); return each
    leaf's data file and the failure record (None when no row failed)."""
    retried = options.only_ids
    if retried is not None:
        retried_dirs = {leaf: home / RETRY_DIR / leaf for leaf in plan.leaves}
        for leaf, directory in retried_dirs.items():
            write_leaf(directory, made.get(leaf, []))
        join_failure_records(work, stored, home / RETRY_FAILURES_FILE)
        files = finish_retry(home, retried_dirs, retried, finished)
        if finished:
            mark_finished(plan, home, options)
        record = home / FAILURES_FILE
    else:
        out = home if finished else work
        files = {leaf: write_leaf(out / "data" / leaf, made.get(leaf, [])) for leaf in plan.leaves}
        record = out / FAILURES_FILE
        join_failure_records(work, stored, record)
        if finished:
            mark_finished(plan, home, options, fingerprint=True)
    return files, record if record.exists() else None


def join_failure_records(
    work: Path, stored: Mapping[str, tuple[str, list[str]]], target: Path | None = None
) -> Path | None:
    """One failure record for the run at ``target`` (default: ``failures.jsonl`` in ``work``):
    every shard's and stage's lines, in order; None, and no file, when no row failed. Those of
    the stages in ``stored`` (stage directory -> its storage and shards) come from storage."""
    target = target if target is not None else work / FAILURES_FILE

    def parts() -> Iterator[bytes]:
        for stage in sorted(p for p in work.glob("stage-*") if p.is_dir()):
            if stage.name in stored:
                yield from join_stored_failure_records(*stored[stage.name])
            else:
                yield from (p.read_bytes() for p in sorted(stage.glob(f"**/{FAILURES_FILE}")))

    lines = (part for part in parts() if part)
    first = next(lines, None)
    if first is None:
        target.unlink(missing_ok=True)  # an earlier run's record would name rows that didn't fail
        return None
    target.parent.mkdir(parents=True, exist_ok=True)
    with target.open("wb") as out:
        out.write(first)
        for part in lines:
            out.write(part)
    return target
