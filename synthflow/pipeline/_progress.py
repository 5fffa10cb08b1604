"""Live progress per step: a rich table in a terminal or notebook, plain log lines elsewhere.

Each line (and the table's title) names the pipeline. Rows out are counted as they leave a step.
Where the sources can tell how many rows they hold (``expected_rows``), each step shows its
total and an estimate of the time left, from its rate so far.

It also samples the fill of each step's input queue into ``StepStats.queue_fill``: a queue that
stays full marks the bottleneck step. ``rich`` is imported only when a table is shown.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Mapping, Sequence
from typing import Any, Literal

import anyio
from anyio.streams.memory import MemoryObjectReceiveStream

from synthflow.models.callpath.calls import LLMCallStats
from synthflow.pipeline.stats import StepStats
from synthflow.steps.base import GeneratorStep, GlobalStep, _Step

ProgressMode = Literal["auto", "rich", "plain", "off"]


def resolve_mode(mode: ProgressMode | bool) -> Literal["rich", "plain", "off"]:
    if mode is True:
        mode = "auto"
    if mode is False:
        return "off"
    if mode != "auto":
        return mode
    if os.environ.get("CI"):
        return "plain"
    if "ipykernel" in sys.modules or sys.stderr.isatty():
        return "rich"
    return "plain"


PLAIN_INTERVAL = 10.0
"""Seconds between two rounds of plain progress lines."""
RICH_INTERVAL = 0.25


def source_size(step: GeneratorStep) -> int | None:
    """How many rows a source makes, when it can tell without reading them: its own
    ``total_rows()``, the length of inline data (``LoadDataFromDicts``, ``run(dataset=...)``),
    or a ``num_examples`` limit (a bound: the dataset may hold fewer)."""
    total_rows = getattr(step, "total_rows", None)
    if callable(total_rows):
        known = total_rows()
        return known if isinstance(known, int) else None
    from synthflow.steps.generators import LoadDataFromDicts, RowsOfDataset

    if isinstance(step, LoadDataFromDicts):
        return len(step.data)
    if isinstance(step, RowsOfDataset):
        rows = step._rows
        return len(rows) if hasattr(rows, "__len__") else None
    limit = getattr(step, "num_examples", None)
    return limit if isinstance(limit, int) else None


def expected_rows(
    steps: Mapping[str, _Step],
    predecessors: Mapping[str, Sequence[str]],
    offset: int = 0,
    routed: Mapping[str, Sequence[str]] | None = None,
) -> dict[str, int | None]:
    """Rows each step is expected to take in (a source: to make) in a run that starts after
    row ``offset - 1``, or None where that can't be known: a source of unknown size, after a
    global step (it may make any number of rows), or after a routed edge (``routed``: step ->
    the successors it routes batches to). A join takes as many rows as its smallest input;
    rows filtered out or expanded on the way make the figure an estimate."""
    totals: dict[str, int | None] = {}
    routed = routed or {}
    for name, step in steps.items():  # in topological order
        if isinstance(step, GeneratorStep):
            size = source_size(step)
            totals[name] = None if size is None else max(size - offset, 0)
            continue
        before = [totals[p] for p in predecessors[name]]
        if any(name in routed.get(p, ()) for p in predecessors[name]):
            before.append(None)
        if not before or any(t is None for t in before):
            totals[name] = None
            continue
        if any(isinstance(steps[p], GlobalStep) for p in predecessors[name]):
            totals[name] = None
        else:
            totals[name] = min(t for t in before if t is not None)
    return totals


def eta_seconds(stats: StepStats, elapsed: float) -> float | None:
    """Seconds until the step has put out ``rows_total`` rows at its rate so far; None when
    that can't be told yet (no total, no rows out yet) and 0 once it is there."""
    total, done = stats.rows_total, stats.rows_out
    if total is None or elapsed <= 0:
        return None
    if done >= total:
        return 0.0
    if done == 0:
        return None
    return (total - done) * elapsed / done


def format_duration(seconds: float) -> str:
    whole = int(seconds + 0.5)
    if whole < 60:
        return f"{whole}s"
    minutes, secs = divmod(whole, 60)
    if minutes < 60:
        return f"{minutes}m{secs:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m"


class Progress:
    def __init__(self, mode: ProgressMode | bool = "auto", name: str = "pipeline") -> None:
        self.mode = resolve_mode(mode)
        self.name = name
        self._interval = RICH_INTERVAL if self.mode == "rich" else PLAIN_INTERVAL
        self._stats: dict[str, StepStats] = {}
        self._queues: dict[str, Sequence[MemoryObjectReceiveStream[Any]]] = {}
        self._live: Any = None
        self._started = 0.0
        self._next_print = self._interval

    def start(
        self,
        stats: dict[str, StepStats],
        queues: dict[str, Sequence[MemoryObjectReceiveStream[Any]]],
    ) -> None:
        self._stats, self._queues = stats, queues
        self._started = time.perf_counter()
        if self.mode == "rich":
            from rich.console import Console
            from rich.live import Live

            self._live = Live(self._table(), console=Console(stderr=True), auto_refresh=False)
            self._live.start()

    async def run(self) -> None:
        try:
            while True:
                await anyio.sleep(min(self._interval, 0.5))
                self._sample()
                if self._live is not None:
                    self._live.update(self._table(), refresh=True)
                elif self.mode == "plain" and self._due():
                    self._print_lines()
        finally:
            if self._live is not None:
                self._sample()
                self._live.update(self._table(), refresh=True)
                self._live.stop()
                self._live = None

    def finish(self) -> None:
        self._sample()
        if self.mode == "plain":
            self._print_lines()

    def _due(self) -> bool:
        elapsed = time.perf_counter() - self._started
        due = elapsed >= self._next_print
        if due:
            self._next_print = elapsed + self._interval
        return due

    def _sample(self) -> None:
        for name, queues in self._queues.items():
            for queue in queues:
                s = queue.statistics()
                if s.max_buffer_size:
                    fill = s.current_buffer_used / float(s.max_buffer_size)
                    stats = self._stats[name]
                    stats.queue_fill = max(stats.queue_fill, fill)

    def _print_lines(self) -> None:
        elapsed = time.perf_counter() - self._started
        head = f"[synthflow {self.name} {elapsed:7.1f}s]"
        for s in self._stats.values():
            eta = eta_seconds(s, elapsed)
            print(
                f"{head} {s.name}: in={s.rows_in} out={_rows_out(s)} errors={s.errors} "
                f"busy={s.busy_seconds:.1f}s"
                + ("" if eta is None else f" eta={format_duration(eta)}")
                + _llm_summary(s),
                file=sys.stderr,
                flush=True,
            )
        llm = [s.llm for s in self._stats.values() if s.llm is not None]
        if len(llm) > 1:
            total = LLMCallStats.total(llm).brief()
            print(f"{head} all LLM calls: {total}", file=sys.stderr, flush=True)

    def _table(self) -> Any:
        from rich.table import Table

        elapsed = time.perf_counter() - self._started
        etas = [eta_seconds(s, elapsed) for s in self._stats.values()]
        longest = max((eta for eta in etas if eta is not None), default=0.0)
        left = f", about {format_duration(longest)} left" if longest else ""
        title = f"{self.name} — {elapsed:.1f}s{left}"
        table = Table(title=title, title_justify="left")
        columns = ("step", "rows in", "rows out", "errors", "busy s", "queue", "eta", "llm")
        for column in columns:
            table.add_column(column, justify="left" if column in ("step", "llm") else "right")
        for s, eta in zip(self._stats.values(), etas, strict=True):
            table.add_row(
                s.name,
                str(s.rows_in),
                _rows_out(s),
                str(s.errors),
                f"{s.busy_seconds:.1f}",
                f"{s.queue_fill:.0%}",
                "" if eta is None else format_duration(eta),
                _llm_summary(s).strip(),
            )
        return table


def _rows_out(stats: StepStats) -> str:
    return str(stats.rows_out) + ("" if stats.rows_total is None else f"/{stats.rows_total}")


def _llm_summary(stats: StepStats) -> str:
    return "" if stats.llm is None else " " + stats.llm.brief()
