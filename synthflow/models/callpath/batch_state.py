"""What a run knows about its offline batches, kept in its directory.

One JSON file per batch, ``<run dir>/batches/<local id>.json``, written (atomically: a temporary
file, then a rename) just before the batch is submitted (an *intent*: no ``batch_id`` yet, status
``submitting``), again the moment the provider has given it an id, and whenever its state
changes. An intent left by a run that died while submitting is resolved by the next run, which
asks the provider whether the batch exists (``batches.OfflineBatches``). A run that ends before
its batches do (``offline_batch_generation_block_until_done=None``, a crash, a closed laptop)
leaves them here; running the same command again reads them, waits for the batches still open
and collects their results, and submits none of their requests a second time.

``read_batch_state(run_dir)`` is the public reader, for ``synthflow pipeline status`` and for
anyone who wants to see what is in flight.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import orjson

from synthflow.errors import DiskFullError
from synthflow.models.callpath.cache import is_disk_full

__all__ = [
    "BATCHES_DIR",
    "BatchRecord",
    "drop_record",
    "load_records",
    "read_batch_state",
    "save_record",
]

BATCHES_DIR = "batches"


@dataclass
class BatchRecord:
    """One submitted batch. ``requests`` maps each request's custom id to the response-cache
    keys of the generations it answers (in order), so results can be filed without the rows
    that asked for them."""

    local_id: str
    task: str
    provider: str
    endpoint: str
    model: str
    batch_id: str
    """Empty in an intent record: written before submitting, the provider's id not known yet."""
    requests: dict[str, list[str]]
    status: str = "submitted"
    """The provider's word for the batch's state (``in_progress``, ``completed``, ``ended``...)."""
    ended: bool = False
    """The provider will process no more of it: its results can be collected."""
    collected: bool = False
    """Its results were downloaded and handed to the run (answers in the response cache)."""
    counts: dict[str, int] = field(default_factory=dict)
    submitted_at: float = 0.0
    estimated_cost: float | None = None
    estimated_tokens: int = 0
    files: dict[str, str] = field(default_factory=dict)
    """The provider's references to its inputs and results (``input_file_id``,
    ``output_file_id``, ``error_file_id``, ``results_url``)."""

    def summary(self) -> dict[str, Any]:
        """What ``read_batch_state`` shows of it: everything but the request map."""
        shown = {k: v for k, v in asdict(self).items() if k != "requests"}
        shown["requests"] = len(self.requests)
        return shown


def _directory(run_dir: Path) -> Path:
    return Path(run_dir) / BATCHES_DIR


def save_record(run_dir: Path, record: BatchRecord) -> None:
    """Write ``record`` atomically: a crash leaves the previous version or this one."""
    directory = _directory(run_dir)
    target = directory / f"{record.local_id}.json"
    partial = target.with_suffix(".tmp")
    try:
        directory.mkdir(parents=True, exist_ok=True)
        with open(partial, "wb") as handle:
            handle.write(orjson.dumps(record))  # orjson reads dataclasses (asdict copies)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(partial, target)
    except OSError as exc:
        partial.unlink(missing_ok=True)
        if is_disk_full(exc):
            raise DiskFullError(
                f"no space left to write {target}: free space on its disk and run again "
                + (
                    f"(the batch {record.batch_id} was submitted; note its id)"
                    if record.batch_id
                    else "(nothing was submitted)"
                ),
                path=str(target),
            ) from exc
        raise


def drop_record(run_dir: Path, record: BatchRecord) -> None:
    """Remove ``record`` (an intent whose batch the provider never created)."""
    (_directory(run_dir) / f"{record.local_id}.json").unlink(missing_ok=True)


def load_records(run_dir: Path) -> list[BatchRecord]:
    """Every batch record of the run, oldest first."""
    directory = _directory(run_dir)
    if not directory.is_dir():
        return []
    records = []
    for path in directory.glob("*.json"):
        data = orjson.loads(path.read_bytes())
        records.append(BatchRecord(**data))
    records.sort(key=lambda r: (r.submitted_at, r.local_id))
    return records


def read_batch_state(run_dir: Path | str) -> list[dict[str, Any]]:
    """The offline batches of the run in ``run_dir``, oldest first, each as a dict: ``task``,
    ``provider``, ``model``, ``batch_id``, ``status`` (the provider's word), ``ended``,
    ``collected``, ``counts`` (the provider's request counts at the last look), ``requests``
    (how many were sent), ``submitted_at`` (Unix time), ``files`` and the cost estimate checked
    against the budget. A batch whose submission the run didn't see answered (it died) shows
    status ``submitting`` and no ``batch_id`` until the next run finds it. An empty list when
    the run sent none."""
    return [record.summary() for record in load_records(Path(run_dir))]
