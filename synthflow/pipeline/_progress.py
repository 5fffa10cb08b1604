"""Live progress per step, and where a run's data is once it has ended.

Three views of the same figures (``_progress_view``): a rich table redrawn in place in a
terminal; in a Jupyter kernel, an HTML table shown with ``IPython.display`` and updated in place
through its display id (no ipywidgets needed), which stays in the cell as the run's summary; and
elsewhere (not a terminal, CI, another program's output) plain log lines every
``PLAIN_INTERVAL`` seconds, with no control codes. Every view names the pipeline.

Rows out are counted as they leave a step. Where the sources can tell how many rows they hold
(``expected_rows``), each step shows its total and an estimate of the time left, from its rate
so far. The sampler also records the peak fill of each step's input queue into
``StepStats.queue_fill``: a queue that stays full marks the bottleneck step.

``rich`` and ``IPython`` are imported only when their view is shown.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

import anyio
from anyio.streams.memory import MemoryObjectReceiveStream

from synthflow.pipeline._progress_view import Snapshot, plain_lines
from synthflow.pipeline.stats import StepStats
from synthflow.steps.base import GeneratorStep, GlobalStep, _Step

ProgressMode = Literal["auto", "rich", "notebook", "plain", "off"]
View = Literal["rich", "notebook", "plain", "off"]


def in_notebook() -> bool:
    """Whether this code runs in a Jupyter kernel: IPython is imported and its shell has a
    kernel (a terminal IPython has none)."""
    ipython = sys.modules.get("IPython")
    get_ipython = getattr(ipython, "get_ipython", None)
    if get_ipython is None:
        return False
    try:
        shell = get_ipython()
    except Exception:
        return False
    return getattr(shell, "kernel", None) is not None


def resolve_mode(mode: ProgressMode | bool) -> View:
    if mode is True:
        mode = "auto"
    if mode is False:
        return "off"
    notebook = in_notebook() and _can_display()
    if mode == "notebook" and not notebook:
        return "plain"  # outside a kernel, display() would print the table again each time
    if mode != "auto":
        return mode
    if notebook:
        return "notebook"
    if os.environ.get("CI"):
        return "plain"
    if sys.stderr.isatty():
        return "rich"
    return "plain"


def _quiet_tqdm_without_ipywidgets() -> None:
    """The run imports ``datasets``, whose ``tqdm.auto`` warns in a notebook that has no
    ipywidgets ("IProgress not found"): noise in the cell, as synthflow shows no tqdm bar."""
    import importlib.util
    import warnings

    if importlib.util.find_spec("ipywidgets") is None:
        warnings.filterwarnings("ignore", message="IProgress not found", module="tqdm")


def _can_display() -> bool:
    try:
        import IPython.display  # noqa: F401
    except ImportError:
        return False
    return True


PLAIN_INTERVAL = 10.0
"""Seconds between two rounds of plain progress lines."""
REDRAW_INTERVAL = {"rich": 0.25, "notebook": 0.5}
"""Seconds between two redraws of a table that updates in place."""


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


def where_data_is(
    run_dir: Path, steps: Mapping[str, _Step], artifacts: Path | None = None
) -> list[str]:
    """Where a finished run's data is: the ``data`` folder of its run directory, the steps'
    artifacts, and what its steps published (a Hub dataset repo pushed by ``PushToHub``)."""
    from synthflow.steps.hub import PushToHub

    notes = [f"data in {run_dir / 'data'}"]
    if artifacts is not None:
        notes.append(f"artifacts in {artifacts}")
    for step in steps.values():
        if isinstance(step, PushToHub) and step.repo_id:
            notes.append(f"pushed to https://huggingface.co/datasets/{step.repo_id}")
    return notes


class Progress:
    def __init__(self, mode: ProgressMode | bool = "auto", name: str = "pipeline") -> None:
        self.mode = resolve_mode(mode)
        self.name = name
        self._interval = REDRAW_INTERVAL.get(self.mode, PLAIN_INTERVAL)
        self._stats: dict[str, StepStats] = {}
        self._queues: dict[str, Sequence[MemoryObjectReceiveStream[Any]]] = {}
        self._live: Any = None
        self._display: Any = None
        self._started = time.perf_counter()
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

            live = Live(self.snapshot().rich(), console=Console(stderr=True), auto_refresh=False)
            live.start()
            self._live = live
        elif self.mode == "notebook":
            import IPython.display

            _quiet_tqdm_without_ipywidgets()
            display: Any = IPython.display.display  # untyped in IPython
            self._display = display(self.snapshot(), display_id=True)

    async def run(self) -> None:
        try:
            while True:
                await anyio.sleep(min(self._interval, 0.5))
                self._sample()
                if self.mode == "plain":
                    if self._due():
                        self._print(plain_lines(self.name, self._all_stats(), self._started))
                else:
                    self._redraw()
        finally:
            self._sample()
            self._redraw()
            if self._live is not None:
                self._live.stop()
                if not self._live.console.is_terminal:  # rich ends the line on terminals only
                    self._live.console.line()
                self._live = None

    def finish(self) -> None:
        """The run's steps are done: the last figures."""
        self._sample()
        if self.mode == "plain":
            self._print(plain_lines(self.name, self._all_stats(), self._started))

    def report(self, notes: Sequence[str]) -> None:
        """Say where the run's data is: under the notebook's table, else on stderr."""
        if self.mode == "off" or not notes:
            return
        if self._display is not None:
            snapshot = self.snapshot()
            snapshot.notes = list(notes)
            self._display.update(snapshot)
        else:
            self._print([f"[synthflow] {self.name}: {note}" for note in notes])

    def snapshot(self) -> Snapshot:
        return Snapshot.of(self.name, self._all_stats(), self._started)

    def _all_stats(self) -> list[StepStats]:
        return list(self._stats.values())

    def _redraw(self) -> None:
        if self._live is not None:
            self._live.update(self.snapshot().rich(), refresh=True)
        elif self._display is not None:
            self._display.update(self.snapshot())

    def _print(self, lines: Sequence[str]) -> None:
        for line in lines:
            print(line, file=sys.stderr, flush=True)

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
