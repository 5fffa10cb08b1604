"""A shard's LLM answers and failure record on shared storage, so that it resumes anywhere.

With ``storage=``, a shard's directory (its rows, its SQLite response cache) is still on the
disk of the node that runs it (SQLite must not live on a network filesystem), but what it paid
for also goes to ``<storage>/stage-N/state/<shard>/`` as the run goes:

- every ``checkpoint_every`` seconds, a background task writes the cache entries added since the
  last checkpoint (by SQLite rowid) as a new segment, ``<attempt>-<n>.jsonl.gz``, never
  rewritten; the last one when the shard ends;
- at the end, its failure record (``failures.jsonl``).

The driver writes the run's cache of the stage (what earlier runs paid for) once as
``state/seed.jsonl.gz``. A shard starting without a cache of its own (the first time, or run
again on another node after its node was lost) fills one from the seed and its own segments:
it asks again only for what was answered after its last checkpoint, or was in flight. At the
end of the stage, the driver adds every shard's segments to the run's cache and joins the
failure records from storage, whichever node the shards ran on.

A file appears under its final name only once complete (written under a temporary name, then
renamed), and readers take only final names: a half-written segment is never read. Adding a
segment twice adds nothing (keys are content hashes).
"""

from __future__ import annotations

import gzip
import sys
import uuid
from collections.abc import Iterable, Iterator
from pathlib import Path

import anyio
import orjson

from synthflow.distributed.storage import TEMP_MARK, filesystem
from synthflow.models.callpath.cache import Entry, ResponseCache

__all__ = [
    "CacheCheckpoints",
    "add_stored_caches",
    "fill_cache",
    "join_stored_failure_records",
    "shard_state",
    "store_failure_record",
    "upload_seed",
]

STATE_DIR = "state"
SEGMENT_SUFFIX = ".jsonl.gz"
SEED = f"seed{SEGMENT_SUFFIX}"
FAILURE_RECORD = "failures.jsonl"
WATERMARK_FILE = "checkpoint.json"
"""In the shard's directory: the rowid of the last entry checkpointed."""
ADD_CHUNK = 10_000
"""Entries added to a cache per transaction, while reading segments."""


def shard_state(storage: str, shard: str) -> str:
    """Where a shard of the stage at ``storage`` keeps its checkpoints."""
    return f"{storage.rstrip('/')}/{STATE_DIR}/{shard}"


def write_segment(url: str, entries: Iterable[Entry]) -> int:
    """Write ``entries`` as the segment ``url``, complete or not at all; return how many (no
    file for none)."""
    fs, path = filesystem(url)
    temp = f"{path}{TEMP_MARK}{uuid.uuid4().hex}"
    fs.makedirs(path.rsplit("/", 1)[0], exist_ok=True)
    count = 0
    try:
        with fs.open(temp, "wb") as raw, gzip.GzipFile(fileobj=raw, mode="wb") as out:
            for entry in entries:
                out.write(orjson.dumps(entry) + b"\n")
                count += 1
        if count:
            fs.mv(temp, path)
        else:
            fs.rm(temp)
    except BaseException:
        if fs.exists(temp):
            fs.rm(temp)
        raise
    return count


def read_segment(url: str) -> Iterator[Entry]:
    fs, path = filesystem(url)
    with fs.open(path, "rb") as raw, gzip.GzipFile(fileobj=raw, mode="rb") as lines:
        for line in lines:
            yield tuple(orjson.loads(line))  # as write_segment wrote it


def segments(directory: str) -> list[str]:
    """The complete segments in ``directory`` (none when it doesn't exist)."""
    fs, path = filesystem(directory)
    if not fs.exists(path):
        return []
    names = sorted(str(name) for name in fs.ls(path, detail=False))
    return [fs.unstrip_protocol(n) for n in names if n.endswith(SEGMENT_SUFFIX)]


def _add_segments(cache: ResponseCache, urls: Iterable[str]) -> int:
    added = 0
    for url in urls:
        chunk: list[Entry] = []
        for entry in read_segment(url):
            chunk.append(entry)
            if len(chunk) == ADD_CHUNK:
                added += cache.add_entries(chunk)
                chunk = []
        added += cache.add_entries(chunk)
    return added


def upload_seed(cache_file: Path, storage: str) -> int:
    """Write the run's cache of a stage as its seed on ``storage`` (when it has entries)."""
    if not cache_file.exists():
        return 0
    with ResponseCache(cache_file) as cache:
        entries = (entry for _, entry in cache.entries())
        return write_segment(f"{storage.rstrip('/')}/{STATE_DIR}/{SEED}", entries)


def fill_cache(cache_file: Path, storage: str, shard: str) -> int:
    """Fill a shard's new cache from the stage's seed and the shard's own segments; mark them
    all checkpointed. Return how many entries came."""
    seed = f"{storage.rstrip('/')}/{STATE_DIR}/{SEED}"
    fs, seed_path = filesystem(seed)
    sources = ([seed] if fs.exists(seed_path) else []) + segments(shard_state(storage, shard))
    with ResponseCache(cache_file) as cache:
        added = _add_segments(cache, sources)
        _save_watermark(cache_file.parent, cache.last_number())
    return added


def add_stored_caches(cache_file: Path, storage: str) -> int:
    """Add every shard's segments of the stage at ``storage`` to the cache at ``cache_file``."""
    fs, root = filesystem(f"{storage.rstrip('/')}/{STATE_DIR}")
    if not fs.exists(root):
        return 0
    shards = sorted(str(p) for p in fs.ls(root, detail=False) if fs.isdir(p))
    urls = [url for shard in shards for url in segments(fs.unstrip_protocol(shard))]
    if not urls:
        return 0
    with ResponseCache(cache_file) as cache:
        return _add_segments(cache, urls)


class CacheCheckpoints:
    """One attempt of a shard writing its cache's new entries to storage."""

    def __init__(self, cache_file: Path, storage: str, shard: str) -> None:
        self.cache_file = cache_file
        self.target = shard_state(storage, shard)
        self.attempt = uuid.uuid4().hex[:12]
        self.written = 0
        self.watermark = _load_watermark(cache_file.parent)

    def checkpoint(self) -> int:
        """Write the entries added since the last checkpoint as a new segment; return how
        many (no segment for none)."""
        if not self.cache_file.exists():  # no answer stored yet (or no step uses the cache)
            return 0
        with ResponseCache(self.cache_file) as cache:
            last = self.watermark
            numbered = list(cache.entries(after=last))
        if not numbered:
            return 0
        name = f"{self.target}/{self.attempt}-{self.written:06d}{SEGMENT_SUFFIX}"
        count = write_segment(name, (entry for _, entry in numbered))
        self.written += 1
        self.watermark = numbered[-1][0]
        _save_watermark(self.cache_file.parent, self.watermark)
        return count

    async def keep_checkpointing(self, every: float) -> None:
        """Checkpoint every ``every`` seconds, off the event loop (until cancelled). A failed
        checkpoint doesn't stop the shard: its entries go with the next one."""
        while True:
            await anyio.sleep(every)
            try:
                await anyio.to_thread.run_sync(self.checkpoint)
            except Exception as exc:  # storage unreachable for a while: the answers stay local
                print(
                    f"[synthflow] {self.target}: checkpoint failed, retried in {every} s "
                    f"({type(exc).__name__}: {exc})",
                    file=sys.stderr,
                )


def _load_watermark(directory: Path) -> int:
    file = directory / WATERMARK_FILE
    return int(orjson.loads(file.read_bytes())["rowid"]) if file.exists() else 0


def _save_watermark(directory: Path, rowid: int) -> None:
    temp = directory / f"{WATERMARK_FILE}{TEMP_MARK}"
    temp.write_bytes(orjson.dumps({"rowid": rowid}))
    temp.replace(directory / WATERMARK_FILE)


def store_failure_record(record: Path, storage: str, shard: str) -> None:
    """Put the shard's failure record on storage, replacing an earlier attempt's (removing it
    when this attempt has none)."""
    fs, target = filesystem(f"{shard_state(storage, shard)}/{FAILURE_RECORD}")
    if record.exists() and record.stat().st_size:
        temp = f"{target}{TEMP_MARK}{uuid.uuid4().hex}"
        fs.makedirs(target.rsplit("/", 1)[0], exist_ok=True)
        fs.put_file(str(record), temp)
        fs.mv(temp, target)
    elif fs.exists(target):
        fs.rm(target)


def join_stored_failure_records(storage: str, shards: Iterable[str]) -> Iterator[bytes]:
    """The failure records of ``shards`` of the stage at ``storage``, in order, those that
    exist."""
    for shard in shards:
        fs, path = filesystem(f"{shard_state(storage, shard)}/{FAILURE_RECORD}")
        if fs.exists(path):
            with fs.open(path, "rb") as file:
                yield file.read()
