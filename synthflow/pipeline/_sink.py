"""Where a leaf step's rows go: Arrow parts on disk as they arrive, one Arrow file at the end.

Writing as rows arrive keeps memory flat whatever the dataset's size, and leaves the rows
produced so far readable if the run crashes: a part is written every ``PART_ROWS`` rows or every
``PART_SECONDS``, whichever comes first. Parts keep each row's lineage id, so a resumed run knows
where each leaf stopped and appends after it. At the end the parts are unified (a column that is
all nulls in one part and strings in another becomes strings) into one Arrow file, which
``datasets`` memory-maps instead of loading.

Parts are Arrow IPC streams (what ``datasets.Dataset.from_file`` reads), not Parquet: they are
scratch files read back once, so encoding and compressing them would only cost CPU and memory
during the run (Parquet's writer and reader added ~28 MB to a run's peak RSS). Tables are built
from the system allocator, which returns freed memory, rather than Arrow's default pool, which
keeps it for reuse (~6 MB more for a table that is written and dropped at once).
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import orjson

from synthflow.pipeline import _disk
from synthflow.pipeline._disk import when_full
from synthflow.steps.base import ROW_ID, Row

PART_ROWS = 10_000
PART_SECONDS = 5.0
PART_SUFFIX = ".arrow"
RESUMABLE = "free space there and run the pipeline again: it resumes where it stopped"


class LeafWriter:
    """Writes one leaf's rows. With ``resume``, keeps the parts of an interrupted run and
    skips rows it already holds (``last_id`` is the lineage id of the last one)."""

    def __init__(
        self, directory: Path, *, resume: bool = False, part_rows: int | None = None
    ) -> None:
        self.directory = directory
        self._part_rows = part_rows or PART_ROWS  # read now, so tests can make parts small
        self._rows: list[Row] = []
        self._since = time.monotonic()
        with when_full(directory, RESUMABLE):
            directory.mkdir(parents=True, exist_ok=True)
        self._parts = sorted(directory.glob(f"part-*{PART_SUFFIX}"))
        self.last_id = -1
        self.count = 0
        if resume and self._parts:
            self.last_id, self.count = _progress(self._parts)
        else:
            for stale in [*self._parts, directory / "data.arrow"]:
                stale.unlink(missing_ok=True)
            self._parts = []
        self.resumed = self.count
        self.saved = self.count
        """Rows in the parts on disk; ``count - saved`` are held in memory."""

    def write(self, rows: list[Row]) -> None:
        if self.last_id >= 0 and rows and rows[0][ROW_ID] <= self.last_id:
            rows = [row for row in rows if row[ROW_ID] > self.last_id]
        self._rows.extend(rows)
        self.count += len(rows)
        if len(self._rows) >= self._part_rows or (
            self._rows and time.monotonic() - self._since >= PART_SECONDS
        ):
            self.flush()

    def flush(self) -> None:
        if not self._rows:
            return
        path = self.directory / f"part-{len(self._parts):05d}{PART_SUFFIX}"
        partial = path.with_suffix(".tmp")
        table = _to_table(self._rows)
        try:
            with when_full(partial, RESUMABLE):
                _write_stream(partial, table.schema, [table])
        except BaseException:
            partial.unlink(missing_ok=True)  # give back what the failed write took
            raise
        partial.replace(path)  # a crash never leaves a half-written part behind
        self._parts.append(path)
        self.saved += len(self._rows)
        self._rows = []
        self._since = time.monotonic()

    def finish(self) -> Path:
        """Flush and write ``data.arrow`` (an Arrow IPC stream) holding every row in order."""
        self.flush()
        target = self.directory / "data.arrow"
        schema, as_text = _unified_schema([read_part(p).schema for p in self._parts])
        tables = (_conform(read_part(p), schema, as_text) for p in self._parts)
        try:
            with when_full(target, RESUMABLE):
                _write_stream(target, schema, tables)
        except BaseException:
            target.unlink(missing_ok=True)
            raise
        return target


def read_part(path: Path) -> Any:
    """A part's rows as a memory-mapped Arrow table (nothing is copied until it is used)."""
    import pyarrow as pa

    with pa.memory_map(str(path)) as source:
        return pa.ipc.open_stream(source).read_all()


def _write_stream(path: Path, schema: Any, tables: Iterable[Any]) -> None:
    """Write ``tables`` (each of ``schema``) to ``path`` as one Arrow IPC stream."""
    import pyarrow as pa

    with _disk.open_for_writing(path) as sink, pa.ipc.new_stream(sink, schema) as writer:
        for table in tables:
            writer.write_table(table)


def _unified_schema(schemas: list[Any]) -> tuple[Any, set[str]]:
    """One schema for every part, and the columns that must become JSON text to fit it.

    Parts are typed one by one, so a column can be a struct in one part and text (or a number) in
    another. Such a column becomes JSON text everywhere rather than failing the run at its end.
    """
    import pyarrow as pa

    as_text: set[str] = set()
    for name in {field.name for schema in schemas for field in schema}:
        types = {str(s.field(name).type) for s in schemas if name in s.names} - {"null"}
        if len(types) > 1:
            try:
                pa.unify_schemas(
                    [pa.schema([s.field(name)]) for s in schemas if name in s.names],
                    promote_options="permissive",
                )
            except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError):
                as_text.add(name)
    fitted = [
        pa.schema([pa.field(f.name, pa.string()) if f.name in as_text else f for f in schema])
        for schema in schemas
    ]
    schema = pa.unify_schemas(fitted, promote_options="permissive") if fitted else pa.schema([])
    if ROW_ID in schema.names:  # lineage stays on disk for resuming, not in the dataset
        schema = schema.remove(schema.get_field_index(ROW_ID))
    return schema, as_text


def _progress(parts: list[Path]) -> tuple[int, int]:
    """(last lineage id, row count) of the rows already in ``parts``."""
    count = sum(read_part(p).num_rows for p in parts)
    ids = read_part(parts[-1]).column(ROW_ID)
    return (int(ids[-1].as_py()) if len(ids) else -1), count


def _to_table(rows: list[Row]) -> Any:
    import pyarrow as pa

    pool = pa.system_memory_pool()
    names = list(dict.fromkeys(key for row in rows for key in row))
    columns = {}
    for name in names:
        values = [row.get(name) for row in rows]
        try:
            columns[name] = pa.array(values, memory_pool=pool)
        except (pa.ArrowInvalid, pa.ArrowTypeError):
            # Mixed types in one column: keep every value, as JSON text.
            text = [None if v is None else _json(v) for v in values]
            columns[name] = pa.array(text, memory_pool=pool)
    return pa.table(columns)


def _conform(table: Any, schema: Any, as_text: set[str]) -> Any:
    import pyarrow as pa
    import pyarrow.compute as pc

    pool = pa.system_memory_pool()
    columns = []
    for field in schema:
        if field.name not in table.column_names:
            columns.append(pa.nulls(len(table), field.type, memory_pool=pool))
        elif field.name in as_text and not pa.types.is_string(table.schema.field(field.name).type):
            values = table.column(field.name).to_pylist()
            text = [None if v is None else _json(v) for v in values]
            columns.append(pa.array(text, memory_pool=pool))
        elif table.schema.field(field.name).type == field.type:
            columns.append(table.column(field.name))  # as it is: still memory-mapped
        else:
            # pyarrow.compute.cast, not ChunkedArray.cast: the method takes no memory_pool on
            # pyarrow 26, and the function takes one on every version we support.
            columns.append(pc.cast(table.column(field.name), field.type, memory_pool=pool))
    return pa.Table.from_arrays(columns, schema=schema)


def _json(value: Any) -> str:
    return orjson.dumps(value, default=str).decode()
