"""What a run has done, kept in its directory as it goes: ``status.json``.

The engine rewrites the file every ``STATUS_SECONDS`` (and when the run starts and ends), from
the per-step counters it keeps anyway: nothing is done per row. ``synthflow pipeline status``
reads it, with the failure record, for a finished, running or interrupted run; a run whose
process is gone while the file still says "running" was interrupted (a kill, a power cut).

Per step, the counts add up: ``in + added = out + filtered + failed``. ``out`` counts the rows
the step sent on that did not fail in it (a row that failed under ``on_error="null"`` goes on,
but counts as failed); ``added`` the rows it made beyond those it took (``num_generations``
copies, ``ExpandColumns``); for a source, ``in`` is the rows it made. While a run is in
progress, ``filtered`` also holds rows in flight.
"""

from __future__ import annotations

import os
import time
from collections import Counter
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import anyio
import orjson

from synthflow.models.callpath.batch_state import read_batch_state
from synthflow.models.callpath.secrets import redact
from synthflow.pipeline._failures import read_failures
from synthflow.pipeline.stats import StepStats
from synthflow.steps.base import _Step

STATUS_FILE = "status.json"
STATUS_SECONDS = 2.0
"""Seconds between two writes of ``status.json`` while a run is in progress."""

States = ("running", "finished", "stopped", "failed", "interrupted")


class StatusFile:
    """Writes the status of the run in progress to ``<run_dir>/status.json``."""

    def __init__(
        self,
        run_dir: Path,
        *,
        pipeline: str,
        steps: Mapping[str, _Step],
        stats: Mapping[str, StepStats],
        resumable: bool,
        failures_file: Path,
        retrying: int | None = None,
        resumed_after: int = 0,
    ) -> None:
        self.path = run_dir / STATUS_FILE
        self.failures_file = failures_file
        self._stats = stats
        self._head = {
            "pipeline": pipeline,
            "pid": os.getpid(),
            "started": time.time(),
            "resumable": resumable,
            "retrying_failed_rows": retrying,
            "resumed_after_row": resumed_after - 1 if resumed_after else None,
            "on_error": {name: step.on_error for name, step in steps.items()},
        }

    def write(self, state: str, reason: str | None = None) -> None:
        record = {
            **self._head,
            "state": state,
            "reason": None if reason is None else redact(reason),
            "failures_file": self.failures_file.name,
            "updated": time.time(),
            "steps": {name: s.as_dict() for name, s in self._stats.items()},
        }
        partial = self.path.with_suffix(".tmp")
        try:
            partial.write_bytes(orjson.dumps(record, option=orjson.OPT_INDENT_2))
            partial.replace(self.path)  # a reader never sees half a file
        except OSError:
            pass  # bookkeeping: a full disk is reported by the writes that matter

    async def keep(self) -> None:
        """Rewrite the file every ``STATUS_SECONDS`` until cancelled."""
        while True:
            await anyio.sleep(STATUS_SECONDS)
            self.write("running")


# -- reading ---------------------------------------------------------------------------------


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def read_status(run_dir: Path) -> dict[str, Any] | None:
    """The status of the last run in ``run_dir``, with the counts per step worked out and its
    failures grouped by step and cause; None when no run has written one."""
    path = run_dir / STATUS_FILE
    try:
        record: dict[str, Any] = orjson.loads(path.read_bytes())
    except (FileNotFoundError, orjson.JSONDecodeError):
        return None
    if record.get("state") == "running" and not _alive(int(record.get("pid") or 0)):
        record["state"] = "interrupted"
    finished = record["state"] == "finished"
    record["resumable"] = bool(record.get("resumable")) and not finished
    failures = read_failures(run_dir / str(record.get("failures_file") or "failures.jsonl"))
    causes: dict[str, Counter[str]] = {}
    for failure in failures:
        causes.setdefault(str(failure.get("step")), Counter())[str(failure.get("error_class"))] += 1
    on_error = record.get("on_error") or {}
    steps: dict[str, Any] = {}
    totals: Counter[str] = Counter()
    cost: float | None = None
    for name, stats in (record.get("steps") or {}).items():
        counts = step_counts(stats, on_error.get(name, "fail"))
        llm = stats.get("llm") or {}
        by_cause = causes.get(name, Counter())
        counts["failed_by_cause"] = dict(sorted(by_cause.items(), key=lambda c: (-c[1], c[0])))
        for key in ("requests", "cache_hits", "input_tokens", "output_tokens"):
            counts[key] = int(llm.get(key) or 0)
            totals[key] += counts[key]
        counts["cost"] = llm.get("cost")
        if counts["cost"] is not None:
            cost = (cost or 0.0) + counts["cost"]
        totals["failed"] += counts["failed"]
        steps[name] = counts
    record["steps"] = steps
    record["totals"] = {**totals, "cost": cost}
    record["batches"] = read_batch_state(run_dir)
    record["failures_recorded"] = len(failures)
    record["failures_path"] = str(run_dir / str(record.get("failures_file")))
    record["run_dir"] = str(run_dir)
    return record


def step_counts(stats: Mapping[str, Any], on_error: str) -> dict[str, Any]:
    """``in``, ``out``, ``filtered``, ``added`` and ``failed`` of one step's counters, which add
    up: in + added = out + filtered + failed."""
    failed = int(stats.get("errors") or 0)
    sent = int(stats.get("rows_out") or 0)
    out = sent - failed if on_error == "null" else sent  # failed rows kept go on, as failed
    rows_in = out + failed if stats.get("source") else int(stats.get("rows_in") or 0)
    rest = rows_in - out - failed
    return {
        "source": bool(stats.get("source")),
        "in": rows_in,
        "out": out,
        "filtered": max(rest, 0),
        "added": max(-rest, 0),
        "failed": failed,
    }


def render(status: Mapping[str, Any]) -> str:
    """``status`` as ``synthflow pipeline status`` prints it."""
    state = status["state"]
    if status.get("reason"):
        state += f" ({status['reason']})"
    lines = [f"pipeline {status.get('pipeline')!s}: {state}", f"run directory: {status['run_dir']}"]
    if status.get("retrying_failed_rows") is not None:
        lines.append(f"this run retried {status['retrying_failed_rows']} failed rows")
    header = ["step", "in", "out", "filtered", "added", "failed", "requests", "hits", "tokens"]
    header.append("cost")
    table = [header]
    for name, s in status["steps"].items():
        tokens = s["input_tokens"] + s["output_tokens"]
        cost = "-" if s["cost"] is None else f"${s['cost']:.4f}"
        table.append(
            [
                name,
                *(str(s[k]) for k in ("in", "out", "filtered", "added", "failed")),
                str(s["requests"]),
                str(s["cache_hits"]),
                str(tokens),
                cost,
            ]
        )
    widths = [max(len(row[i]) for row in table) for i in range(len(header))]
    for row in table:
        cells = [
            cell.rjust(w) if i else cell.ljust(w)
            for i, (cell, w) in enumerate(zip(row, widths, strict=True))
        ]
        lines.append("  ".join(cells).rstrip())
    if state.startswith("running"):
        lines.append("(while a run is in progress, 'filtered' also counts rows in flight)")
    failing = {name: s for name, s in status["steps"].items() if s["failed"]}
    for name, s in failing.items():
        causes = ", ".join(f"{c} {n}" for c, n in s["failed_by_cause"].items()) or "no record"
        lines.append(f"failed in {name}: {s['failed']} ({causes})")
    if status["failures_recorded"]:
        lines.append(
            f"failure record: {status['failures_path']} ({status['failures_recorded']} rows); "
            "re-run them with: synthflow pipeline run ... --retry-failed"
        )
    lines += _batch_lines(status.get("batches") or [])
    totals = status["totals"]
    cost = "" if totals.get("cost") is None else f", cost ${totals['cost']:.4f}"
    lines.append(
        f"LLM: {totals.get('requests', 0)} requests, {totals.get('cache_hits', 0)} cache hits, "
        f"{totals.get('input_tokens', 0)}+{totals.get('output_tokens', 0)} tokens{cost}"
    )
    if status.get("resumed_after_row") is not None:
        lines.append(
            f"(this run resumed after row {status['resumed_after_row']}: "
            "it counts the rows after it)"
        )
    if status["state"] == "finished":
        lines.append("resumable: no (finished)")
    elif status.get("retrying_failed_rows") is not None:
        lines.append("resumable: run it again with --retry-failed (the data is as before it)")
    else:
        lines.append(
            "resumable: yes (run the same command again)"
            if status["resumable"]
            else "resumable: no (it starts over, with LLM answers from the cache)"
        )
    return "\n".join(lines)


def _batch_lines(batches: list[dict[str, Any]]) -> list[str]:
    """One line per offline batch (``use_offline_batch_generation``): its state and counts."""
    if not batches:
        return []
    open_ = sum(1 for b in batches if not b.get("ended"))
    lines = [f"offline batches: {len(batches)} ({open_} still running at the provider)"]
    for batch in batches:
        state = "collected" if batch.get("collected") else str(batch.get("status"))
        counts = ", ".join(f"{k} {v}" for k, v in (batch.get("counts") or {}).items())
        lines.append(
            f"  {batch.get('task')} {batch.get('provider')} {batch.get('batch_id')}: {state}, "
            f"{batch.get('requests')} requests" + (f" ({counts})" if counts else "")
        )
    return lines
