"""What live progress shows: one table of per-step figures, drawn three ways.

A ``Snapshot`` is the table at one moment: a title naming the pipeline, a row per step (rows
in and out, failed, filtered, ETA, the input queue's peak fill, LLM calls in flight, tokens and
cost so far) and, once the run has ended, where its data is. It renders as a rich table (a
terminal), as HTML with a plain-text twin (a notebook: ``_repr_html_`` and ``__repr__``, so a
front end without HTML still shows it), and as log lines (plain mode, one ``key=value`` line per
step, readable inside another program's output).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from html import escape
from typing import Any

from synthflow.models.callpath.calls import LLMCallStats
from synthflow.pipeline.stats import StepStats

ROW_COLUMNS = ("step", "rows in", "rows out", "failed", "filtered", "eta", "queue")
LLM_COLUMNS = ("in flight", "tokens", "cost")
"""Shown when some step calls an LLM (cost: when a price is known)."""
_LEFT = frozenset({"step"})


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


def format_count(n: int) -> str:
    """A count at a glance: 950, 12.3k, 4.5M."""
    if n < 1000:
        return str(n)
    if n < 1_000_000:
        return f"{n / 1000:.1f}k"
    return f"{n / 1_000_000:.1f}M"


def rows_out(stats: StepStats) -> str:
    return str(stats.rows_out) + ("" if stats.rows_total is None else f"/{stats.rows_total}")


@dataclass
class Snapshot:
    title: str
    columns: tuple[str, ...]
    rows: list[tuple[str, ...]]
    notes: list[str] = field(default_factory=list)
    """Lines under the table: where the run's data is, once it has ended."""

    @classmethod
    def of(cls, name: str, stats: Sequence[StepStats], started: float) -> Snapshot:
        elapsed = time.perf_counter() - started
        etas = [eta_seconds(s, elapsed) for s in stats]
        longest = max((eta for eta in etas if eta is not None), default=0.0)
        left = f", about {format_duration(longest)} left" if longest else ""
        columns: tuple[str, ...] = ROW_COLUMNS
        llm = [s.llm for s in stats if s.llm is not None]
        if llm:
            costs = any(c.cost is not None for c in llm)
            columns += LLM_COLUMNS if costs else LLM_COLUMNS[:-1]
        rows = [_cells(s, eta)[: len(columns)] for s, eta in zip(stats, etas, strict=True)]
        return cls(f"{name} — {elapsed:.1f}s{left}", columns, rows)

    def rich(self) -> Any:
        from rich.console import Group
        from rich.table import Table
        from rich.text import Text

        table = Table(title=self.title, title_justify="left")
        for column in self.columns:
            table.add_column(column, justify="left" if column in _LEFT else "right")
        for row in self.rows:
            table.add_row(*row)
        if not self.notes:
            return table
        return Group(table, *(Text(note) for note in self.notes))

    def _repr_html_(self) -> str:
        def cell(tag: str, column: str, text: str) -> str:
            align = "left" if column in _LEFT else "right"
            return f'<{tag} style="text-align:{align}">{escape(text)}</{tag}>'

        head = "".join(cell("th", c, c) for c in self.columns)
        body = "".join(
            "<tr>"
            + "".join(cell("td", c, v) for c, v in zip(self.columns, row, strict=True))
            + "</tr>"
            for row in self.rows
        )
        notes = "".join(f"<p>{escape(note)}</p>" for note in self.notes)
        return (
            f"<div><p><b>{escape(self.title)}</b></p><table><thead><tr>{head}</tr></thead>"
            f"<tbody>{body}</tbody></table>{notes}</div>"
        )

    def __repr__(self) -> str:
        table = [self.columns, *self.rows]
        widths = [max(len(row[i]) for row in table) for i in range(len(self.columns))]
        lines = [self.title]
        for row in table:
            cells = [
                v.ljust(w) if c in _LEFT else v.rjust(w)
                for c, v, w in zip(self.columns, row, widths, strict=True)
            ]
            lines.append("  ".join(cells).rstrip())
        return "\n".join([*lines, *self.notes])


def _cells(s: StepStats, eta: float | None) -> tuple[str, ...]:
    llm = s.llm
    tokens = "" if llm is None else f"{format_count(llm.input_tokens)}+"
    tokens += "" if llm is None else format_count(llm.output_tokens)
    return (
        s.name,
        str(s.rows_in),
        rows_out(s),
        str(s.errors),
        str(s.filtered),
        "" if eta is None else format_duration(eta),
        f"{s.queue_fill:.0%}",
        "" if llm is None else str(llm.in_flight),
        tokens,
        "" if llm is None or llm.cost is None else f"${llm.cost:.4f}",
    )


def plain_lines(name: str, stats: Sequence[StepStats], started: float) -> list[str]:
    """One line per step, then the run's LLM totals when more than one step calls an LLM."""
    elapsed = time.perf_counter() - started
    head = f"[synthflow {name} {elapsed:7.1f}s]"
    lines = []
    for s in stats:
        eta = eta_seconds(s, elapsed)
        lines.append(
            f"{head} {s.name}: in={s.rows_in} out={rows_out(s)} failed={s.errors} "
            f"filtered={s.filtered} busy={s.busy_seconds:.1f}s"
            + ("" if eta is None else f" eta={format_duration(eta)}")
            + ("" if s.llm is None else f" in_flight={s.llm.in_flight} {s.llm.brief()}")
        )
    llm = [s.llm for s in stats if s.llm is not None]
    if len(llm) > 1:
        lines.append(f"{head} all LLM calls: {LLMCallStats.total(llm).brief()}")
    return lines
