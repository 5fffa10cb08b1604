"""Shards' rows as files on storage every node reaches, instead of Ray's object store.

With ``pipeline.run(backend="ray", storage=...)`` (a local path on a shared filesystem, or an
fsspec URL such as ``s3://bucket/run``), each shard writes every leaf's rows as one Parquet file
and returns only its address and row count; the driver reads the files back a row group at a
time while it merges them in id order. So neither the object store nor the driver's memory
ever holds a whole leaf.

A file appears under its final name only once it is complete: it is written under a temporary
name and then renamed (an atomic rename on a POSIX filesystem; on an object store the object
exists only once its upload completes). A shard run again (its worker killed) writes the same
name, replacing what an earlier attempt left, and the driver reads only the files its
shards' results name: a partial file of a killed attempt is never read.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from synthflow.errors import PipelineValidationError

__all__ = ["StoredPart", "filesystem", "storage_root", "store_part"]

ROW_GROUP_ROWS = 10_000
"""Rows per Parquet row group: what the driver holds of one shard's file at a time."""
PART_SUFFIX = ".parquet"
TEMP_MARK = ".tmp-"


@dataclass(frozen=True)
class StoredPart:
    """A shard's rows of one leaf, in id order with their lineage ids, in a Parquet file."""

    url: str
    rows: int

    def schema(self) -> Any:
        import pyarrow.parquet as pq

        fs, path = filesystem(self.url)
        with fs.open(path, "rb") as file:
            return pq.read_schema(file)

    def tables(self) -> Iterator[Any]:
        """The rows, a row group at a time."""
        import pyarrow as pa
        import pyarrow.parquet as pq

        fs, path = filesystem(self.url)
        with fs.open(path, "rb") as file:
            for batch in pq.ParquetFile(file).iter_batches(batch_size=ROW_GROUP_ROWS):
                yield pa.Table.from_batches([batch])


def storage_root(storage: str) -> str:
    """``storage`` as every worker must read it (a local path made absolute: a worker's working
    directory is not the driver's), once it is known to be usable from here."""
    from pathlib import Path

    if "://" not in storage:
        storage = str(Path(storage).expanduser().absolute())
    try:
        fs, root = filesystem(storage)
        fs.makedirs(root, exist_ok=True)
    except (ImportError, ValueError, OSError) as exc:
        raise PipelineValidationError(
            f"storage {storage!r} can't be written from here ({type(exc).__name__}: {exc}): give "
            "a directory every node reaches, or a URL whose fsspec backend is installed "
            "(s3fs for s3://, gcsfs for gs://, adlfs for az://)"
        ) from None
    return storage


def store_part(storage: str, name: str, schema: Any, tables: Iterable[Any]) -> StoredPart | None:
    """Write ``tables`` (of ``schema``) as ``<storage>/<name>.parquet``, replacing any file of
    that name only once the new one is complete; None when they hold no rows (no file)."""
    import pyarrow.parquet as pq

    fs, root = filesystem(storage)
    final = f"{root.rstrip('/')}/{name}{PART_SUFFIX}"
    temp = f"{final}{TEMP_MARK}{uuid.uuid4().hex}"
    fs.makedirs(final.rsplit("/", 1)[0], exist_ok=True)
    rows = 0
    try:
        with fs.open(temp, "wb") as file, pq.ParquetWriter(file, schema) as writer:
            for table in tables:
                writer.write_table(table, row_group_size=ROW_GROUP_ROWS)
                rows += table.num_rows
        if not rows:
            fs.rm(temp)
            if fs.exists(final):  # an earlier attempt's rows, which this one no longer makes
                fs.rm(final)
            return None
        fs.mv(temp, final)
    except BaseException:
        if fs.exists(temp):
            fs.rm(temp)  # give back what the failed write took
        raise
    return StoredPart(fs.unstrip_protocol(final), rows)


def filesystem(url: str) -> tuple[Any, str]:
    from fsspec.core import url_to_fs  # type: ignore[import-untyped]  # fsspec ships no types

    fs, path = url_to_fs(url)
    return fs, str(path)
