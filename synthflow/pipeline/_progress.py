"""Live progress per step: a rich table in a terminal or notebook, plain log lines elsewhere.

It also samples the fill of each step's input queue into ``StepStats.queue_fill``: a queue that
stays full marks the bottleneck step. ``rich`` is imported only when a table is shown.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Sequence
from typing import Any, Literal

import anyio
from anyio.streams.memory import MemoryObjectReceiveStream

from synthflow.llms.calls import LLMCallStats
from synthflow.pipeline.stats import StepStats

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


class Progress:
    def __init__(self, mode: ProgressMode | bool = "auto") -> None:
        self.mode = resolve_mode(mode)
        self._interval = 0.25 if self.mode == "rich" else 10.0
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
        for s in self._stats.values():
            print(
                f"[synthflow {elapsed:7.1f}s] {s.name}: in={s.rows_in} out={s.rows_out} "
                f"errors={s.errors} busy={s.busy_seconds:.1f}s{_llm_summary(s)}",
                file=sys.stderr,
                flush=True,
            )
        llm = [s.llm for s in self._stats.values() if s.llm is not None]
        if len(llm) > 1:
            total = LLMCallStats.total(llm).brief()
            print(
                f"[synthflow {elapsed:7.1f}s] all LLM calls: {total}", file=sys.stderr, flush=True
            )

    def _table(self) -> Any:
        from rich.table import Table

        elapsed = time.perf_counter() - self._started
        table = Table(title=f"synthflow — {elapsed:.1f}s", title_justify="left")
        for column in ("step", "rows in", "rows out", "errors", "busy s", "queue", "llm"):
            table.add_column(column, justify="left" if column in ("step", "llm") else "right")
        for s in self._stats.values():
            table.add_row(
                s.name,
                str(s.rows_in),
                str(s.rows_out),
                str(s.errors),
                f"{s.busy_seconds:.1f}",
                f"{s.queue_fill:.0%}",
                _llm_summary(s).strip(),
            )
        return table


def _llm_summary(stats: StepStats) -> str:
    return "" if stats.llm is None else " " + stats.llm.brief()
