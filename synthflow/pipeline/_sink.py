"""Where a leaf step's rows go: Parquet parts on disk as they arrive, one Arrow file at the end.

Writing as rows arrive keeps memory flat whatever the dataset's size, and leaves the rows
produced so far readable if the run crashes. At the end the parts are unified (a column that is
all nulls in one part and strings in another becomes strings) into one Arrow file, which
``datasets`` memory-maps instead of loading.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson

from synthflow.steps.base import ROW_ID, Row

PART_ROWS = 10_000


class LeafWriter:
    def __init__(self, directory: Path, part_rows: int = PART_ROWS) -> None:
        self.directory = directory
        self._part_rows = part_rows
        self._rows: list[Row] = []
        self._parts: list[Path] = []
        self.count = 0
        directory.mkdir(parents=True, exist_ok=True)
        for stale in directory.glob("part-*.parquet"):
            stale.unlink()

    def write(self, rows: list[Row]) -> None:
        for row in rows:
            row.pop(ROW_ID, None)
        self._rows.extend(rows)
        self.count += len(rows)
        if len(self._rows) >= self._part_rows:
            self.flush()

    def flush(self) -> None:
        if not self._rows:
            return
        import pyarrow.parquet as pq

        path = self.directory / f"part-{len(self._parts):05d}.parquet"
        pq.write_table(_to_table(self._rows), path)
        self._parts.append(path)
        self._rows = []

    def finish(self) -> Path:
        """Flush and write ``data.arrow`` (an Arrow IPC stream) holding every row in order."""
        import pyarrow as pa
        import pyarrow.parquet as pq

        self.flush()
        target = self.directory / "data.arrow"
        schemas = [pq.read_schema(p) for p in self._parts]
        schema = pa.unify_schemas(schemas, promote_options="permissive") if schemas else None
        if schema is None:
            schema = pa.schema([])
        with pa.OSFile(str(target), "wb") as sink, pa.ipc.new_stream(sink, schema) as writer:
            for part in self._parts:
                table = pq.read_table(part)
                writer.write_table(_conform(table, schema))
        return target


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
            columns[name] = pa.array(
                [None if v is None else orjson.dumps(v, default=str).decode() for v in values]
            )
    return pa.table(columns)


def _conform(table: Any, schema: Any) -> Any:
    import pyarrow as pa

    columns = []
    for field in schema:
        if field.name in table.column_names:
            columns.append(table.column(field.name).cast(field.type))
        else:
            columns.append(pa.nulls(len(table), field.type))
    return pa.Table.from_arrays(columns, schema=schema)
