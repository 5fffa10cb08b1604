"""The column rule: what a step sees of a row, and what it writes back.

A step is a function of the columns it reads, and its outputs are assignments:

- ``input_mappings={name: column}`` makes the step read ``column`` wherever it reads ``name``.
  Reading changes no column of the row.
- The step's outputs, renamed by ``output_mappings={name: column}``, are written into the row
  and overwrite columns of the same name. No other column of the row changes.

So a judge ``TextGeneration(input_mappings={"instruction": "generation"})`` after a generator
replaces ``generation`` with its critique and keeps ``instruction``; with
``output_mappings={"generation": "critique"}`` it adds ``critique`` and keeps both.

Mechanically, rows are renamed in place (no copy of the row, which matters at a million rows):
``enter`` gives the step a view where each mapped column appears under the name the step reads
(as distilabel does, the column itself is hidden), and sets the row's own values of the names the
step borrows aside under ``SHADOW``, a private key that rides along when the step copies the row.
``leave`` renames the outputs, returns what the step read to its column (unless the step wrote
that column), and restores the values set aside, with outputs winning.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from dataclasses import dataclass

from synthflow.steps.base import Row, _Step


def unknown_mapping(step: _Step) -> str | None:
    """Why ``step``'s mappings can't be applied, or None: each key of ``input_mappings`` must
    be a column the step reads (its inputs, or optional inputs), each key of
    ``output_mappings`` one it writes, as distilabel requires. A key that is neither would be
    ignored, and the step would read the row's own column, or write where no one looks."""
    reads = [*step.inputs, *step.optional_inputs]
    for kind, keys, known, verb in (
        ("input_mappings", step.input_mappings, reads, "read"),
        ("output_mappings", step.output_mappings, list(step.outputs), "write"),
    ):
        for key in keys:
            if key not in known:
                close = difflib.get_close_matches(key, known, n=1, cutoff=0.5)
                hint = f"; did you mean {close[0]!r}?" if close else ""
                return (
                    f"step {step.name!r} has {kind} for {key!r}, a column it doesn't {verb} "
                    f"(it {verb}s: {', '.join(known) or 'none'}){hint}"
                )
    return None


SHADOW = "_sf_shadow"
"""Private key of a row inside a mapped step: the row's own values of the names the step uses."""

_MISSING = object()


@dataclass(frozen=True)
class ColumnMappings:
    """A step's renaming mappings, worked out once per run rather than once per row."""

    reads: tuple[tuple[str, str], ...]
    """(name the step reads, row column it reads) for each input mapping that renames."""
    writes: tuple[tuple[str, str], ...]
    """(name the step writes, row column it lands in) for each output mapping that renames."""
    borrowed: tuple[str, ...]
    """Names whose row values the step may hide or overwrite: set aside, restored after."""

    @classmethod
    def of(cls, step: _Step) -> ColumnMappings | None:
        reads = tuple((n, c) for n, c in step.input_mappings.items() if n != c)
        writes = tuple((n, c) for n, c in step.output_mappings.items() if n != c)
        if not reads and not writes:
            return None
        borrowed = tuple(dict.fromkeys([n for n, _ in reads] + [n for n, _ in writes]))
        return cls(reads, writes, borrowed)

    def enter(self, rows: Iterable[Row]) -> None:
        """Turn ``rows`` into the step's view of them, in place."""
        reads, borrowed = self.reads, self.borrowed
        for row in rows:
            row[SHADOW] = {k: row[k] for k in borrowed if k in row}
            values = [(name, row.pop(column, _MISSING)) for name, column in reads]
            for name, value in values:
                if value is _MISSING:
                    row.pop(name, None)  # never let the step read the row's own column instead
                else:
                    row[name] = value

    def leave(self, rows: Iterable[Row]) -> None:
        """Turn the step's output rows back into rows of the pipeline, in place."""
        written = {name for name, _ in self.writes}
        for row in rows:
            shadow = row.pop(SHADOW, None)
            outputs = [(column, row.pop(name)) for name, column in self.writes if name in row]
            read_back = [
                (column, row.pop(name))
                for name, column in self.reads
                if name in row and name not in written
            ]
            for column, value in read_back:
                if column not in row:  # hidden from the step: present only if it wrote it
                    row[column] = value
            if shadow:
                for key, value in shadow.items():
                    if key not in row:
                        row[key] = value
            for column, value in outputs:
                row[column] = value
