"""The input buffer of a global step: in memory while small, on disk past a threshold.

The spill file has a name, so that a global step on ``executor="process"`` can be sent its
spilled input: the worker opens the same file rather than receiving the rows.
"""

from __future__ import annotations

import pickle
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import IO, overload

from synthflow.steps.base import Row

SPILL_SUFFIX = ".spill"


class SpilledRows(Sequence[Row]):
    """Rows stored in a file, read back in order on each iteration. Indexing reads through."""

    def __init__(self, file: IO[bytes], count: int) -> None:
        self._file = file
        self._count = count

    def __len__(self) -> int:
        return self._count

    def __reduce__(self) -> tuple[object, tuple[str, int]]:
        return (_reopen, (self._file.name, self._count))

    def __iter__(self) -> Iterator[Row]:
        self._file.seek(0)
        while True:
            try:
                chunk: list[Row] = pickle.load(self._file)
            except EOFError:
                return
            yield from chunk

    @overload
    def __getitem__(self, index: int) -> Row: ...
    @overload
    def __getitem__(self, index: slice) -> list[Row]: ...
    def __getitem__(self, index: int | slice) -> Row | list[Row]:
        rows = list(self)  # random access defeats spilling; it works, slowly
        return rows[index]


def _reopen(path: str, count: int) -> SpilledRows:
    return SpilledRows(open(path, "rb"), count)  # open as long as the rows are


class RowBuffer:
    def __init__(self, threshold: int, directory: Path | None) -> None:
        self._threshold = threshold
        self._directory = directory
        self._rows: list[Row] = []
        self._file: IO[bytes] | None = None
        self._count = 0

    @property
    def spilled(self) -> bool:
        return self._file is not None

    def extend(self, rows: list[Row]) -> None:
        self._count += len(rows)
        if self._file is None:
            self._rows.extend(rows)
            if len(self._rows) > self._threshold:
                if self._directory is not None:
                    self._directory.mkdir(parents=True, exist_ok=True)
                    for stale in self._directory.glob(f"*{SPILL_SUFFIX}"):  # a crashed run's
                        stale.unlink(missing_ok=True)
                self._file = tempfile.NamedTemporaryFile(  # noqa: SIM115 (closed by close())
                    dir=self._directory, suffix=SPILL_SUFFIX, delete=False
                )
                pickle.dump(self._rows, self._file, protocol=pickle.HIGHEST_PROTOCOL)
                self._rows = []
        elif rows:
            pickle.dump(rows, self._file, protocol=pickle.HIGHEST_PROTOCOL)

    def contents(self) -> list[Row] | SpilledRows:
        if self._file is None:
            return self._rows
        self._file.flush()
        return SpilledRows(self._file, self._count)

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            Path(self._file.name).unlink(missing_ok=True)
