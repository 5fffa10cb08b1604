"""Where a leaf step's rows go: Parquet parts on disk as they arrive, one Arrow file at the end.

Writing as rows arrive keeps memory flat whatever the dataset's size, and leaves the rows
produced so far readable if the run crashes: a part is written every ``PART_ROWS`` rows or every
``PART_SECONDS``, whichever comes first. Parts keep each row's lineage id, so a resumed run knows
where each leaf stopped and appends after it. At the end the parts are unified (a column that is
all nulls in one part and strings in another becomes strings) into one Arrow file, which
``datasets`` memory-maps instead of loading.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import orjson

from synthflow.steps.base import ROW_ID, Row

PART_ROWS = 10_000
PART_SECONDS = 5.0


class LeafWriter:
    """Writes one leaf's rows. With ``resume``, keeps the parts of an interrupted run and
    skips rows it already holds (``last_id`` is the lineage id of the last one)."""

    def __init__(
        self, directory: Path, *, resume: bool = False, part_rows: int = PART_ROWS
    ) -> None:
        self.directory = directory
        self._part_rows = part_rows
        self._rows: list[Row] = []
        self._since = time.monotonic()
        directory.mkdir(parents=True, exist_ok=True)
        self._parts = sorted(directory.glob("part-*.parquet"))
        self.last_id = -1
        self.count = 0
        if resume and self._parts:
            self.last_id, self.count = _progress(self._parts)
        else:
            for stale in [*self._parts, directory / "data.arrow"]:
                stale.unlink(missing_ok=True)
            self._parts = []
        self.resumed = self.count

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
        import pyarrow.parquet as pq

        path = self.directory / f"part-{len(self._parts):05d}.parquet"
        partial = path.with_suffix(".tmp")
        pq.write_table(_to_table(self._rows), partial)
        partial.replace(path)  # a crash never leaves a half-written part behind
        self._parts.append(path)
        self._rows = []
        self._since = time.monotonic()

    def finish(self) -> Path:
        """Flush and write ``data.arrow`` (an Arrow IPC stream) holding every row in order."""
        import pyarrow as pa
        import pyarrow.parquet as pq

        self.flush()
        target = self.directory / "data.arrow"
        schema, as_text = _unified_schema([pq.read_schema(p) for p in self._parts])
        with pa.OSFile(str(target), "wb") as sink, pa.ipc.new_stream(sink, schema) as writer:
            for part in self._parts:
                table = pq.read_table(part)
                writer.write_table(_conform(table, schema, as_text))
        return target


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
    import pyarrow.parquet as pq

    count = sum(pq.read_metadata(p).num_rows for p in parts)
    ids = pq.read_table(parts[-1], columns=[ROW_ID]).column(ROW_ID)
    return (int(ids[-1].as_py()) if len(ids) else -1), count


def _to_table(rows: list[Row]) -> Any:
    import pyarrow as pa

    names = list(dict.fromkeys(key for row in rows for key in row))
    columns = {}
    for name in names:
        values = [row.get(name) for row in rows]
        try:
            columns[name] = pa.array(values)
        except (pa.ArrowInvalid, pa.ArrowTypeError):
            # Mixed types in one column: keep every value, as JSON text.
            columns[name] = pa.array([None if v is None else _json(v) for v in values])
    return pa.table(columns)


def _conform(table: Any, schema: Any, as_text: set[str]) -> Any:
    import pyarrow as pa

    columns = []
    for field in schema:
        if field.name not in table.column_names:
            columns.append(pa.nulls(len(table), field.type))
        elif field.name in as_text and not pa.types.is_string(table.schema.field(field.name).type):
            values = table.column(field.name).to_pylist()
            columns.append(pa.array([None if v is None else _json(v) for v in values]))
        else:
            columns.append(table.column(field.name).cast(field.type))
    return pa.Table.from_arrays(columns, schema=schema)


def _json(value: Any) -> str:
    return orjson.dumps(value, default=str).decode()
