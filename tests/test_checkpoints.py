"""A shard's response cache and failure record checkpointed to shared storage, with no Ray:
segments written since a watermark, read only once complete, merged idempotently; a shard run
again on another disk resumes from them; the driver merges shards that never ran on its disk."""

from __future__ import annotations

from pathlib import Path

import anyio
import pytest

from synthflow.distributed.checkpoints import (
    SEGMENT_SUFFIX,
    CacheCheckpoints,
    add_stored_caches,
    fill_cache,
    segments,
    shard_state,
    store_failure_record,
    upload_seed,
)
from synthflow.distributed.ray_backend import run_shard
from synthflow.distributed.results import join_failure_records
from synthflow.distributed.storage import TEMP_MARK
from synthflow.models import OpenAILLM
from synthflow.models.callpath.cache import CachedGeneration, ResponseCache
from synthflow.pipeline import Pipeline
from synthflow.pipeline._engine import RunOptions
from synthflow.pipeline._shards import Shard
from synthflow.pipeline._validate import Plan, plan
from synthflow.steps import LoadDataFromDicts
from synthflow.steps.tasks import TextGeneration
from tests.servers import fake_api
from tests.test_ray import InFlight


def put(cache_file: Path, *names: str) -> None:
    with ResponseCache(cache_file) as cache:
        cache.put_many([(n, CachedGeneration(f"answer {n}", None, 1, 2, 3.0)) for n in names])


def keys_of(cache_file: Path) -> set[str]:
    with ResponseCache(cache_file) as cache:
        return {entry[0] for _, entry in cache.entries()}


def stored_keys(storage: str, shard: str) -> list[set[str]]:
    """The keys of each of the shard's segments, in the order they were written."""
    from synthflow.distributed.checkpoints import read_segment

    urls = segments(shard_state(storage, shard))
    return [{entry[0] for entry in read_segment(url)} for url in urls]


def test_each_checkpoint_writes_only_what_came_since_the_last(tmp_path: Path) -> None:
    storage, cache_file = str(tmp_path / "storage"), tmp_path / "shard" / "llm-cache.sqlite"
    checkpoints = CacheCheckpoints(cache_file, storage, "s0")
    assert checkpoints.checkpoint() == 0  # no cache yet: nothing, and no file
    put(cache_file, "a", "b")
    assert checkpoints.checkpoint() == 2
    assert checkpoints.checkpoint() == 0  # nothing new: no empty segment
    put(cache_file, "c")
    assert checkpoints.checkpoint() == 1
    assert stored_keys(storage, "s0") == [{"a", "b"}, {"c"}]
    # The next attempt in the same directory goes on from the watermark it left.
    put(cache_file, "d")
    again = CacheCheckpoints(cache_file, storage, "s0")
    assert again.checkpoint() == 1
    assert sorted(map(sorted, stored_keys(storage, "s0"))) == [["a", "b"], ["c"], ["d"]]


class BlockedOnce(CacheCheckpoints):
    """Checkpoints to storage that refuses the first (a file stands where the shard's
    directory must go) and is back for the next; ``done`` once a segment is written."""

    def __init__(self, cache_file: Path, storage: str, shard: str) -> None:
        super().__init__(cache_file, storage, shard)
        self.blocker = Path(shard_state(storage, shard))
        self.blocker.parent.mkdir(parents=True)
        self.blocker.write_bytes(b"")
        self.failed = 0
        self.done = anyio.Event()

    def checkpoint(self) -> int:
        try:
            return super().checkpoint()
        except Exception:
            self.failed += 1
            self.blocker.unlink()
            raise
        finally:
            if self.written:
                anyio.from_thread.run_sync(self.done.set)


def test_a_failed_checkpoint_leaves_its_entries_to_the_next(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cache_file = tmp_path / "shard" / "llm-cache.sqlite"
    put(cache_file, "a")
    checkpoints = BlockedOnce(cache_file, str(tmp_path / "storage"), "s0")

    async def main() -> None:
        async with anyio.create_task_group() as tg:
            tg.start_soon(checkpoints.keep_checkpointing, 0.001)
            with anyio.fail_after(10):
                await checkpoints.done.wait()
            tg.cancel_scope.cancel()

    anyio.run(main)
    assert checkpoints.failed == 1
    assert "s0: checkpoint failed, retried in 0.001 s" in capsys.readouterr().err
    assert stored_keys(str(tmp_path / "storage"), "s0") == [{"a"}]


def test_a_new_cache_fills_from_the_seed_and_its_own_segments_only(tmp_path: Path) -> None:
    storage = str(tmp_path / "storage")
    run_cache = tmp_path / "driver" / "llm-cache.sqlite"
    put(run_cache, "paid earlier")
    assert upload_seed(run_cache, storage) == 1
    for shard, key in (("s0", "mine"), ("s1", "another shard's")):
        lost = tmp_path / f"lost-{shard}" / "llm-cache.sqlite"
        put(lost, key)
        CacheCheckpoints(lost, storage, shard).checkpoint()

    elsewhere = tmp_path / "other-node" / "llm-cache.sqlite"
    assert fill_cache(elsewhere, storage, "s0") == 2
    assert keys_of(elsewhere) == {"paid earlier", "mine"}
    # What it was filled with is in storage already: not checkpointed again.
    assert CacheCheckpoints(elsewhere, storage, "s0").checkpoint() == 0


def test_no_seed_is_written_for_a_run_cache_that_is_absent_or_empty(tmp_path: Path) -> None:
    storage = str(tmp_path / "storage")
    assert upload_seed(tmp_path / "none.sqlite", storage) == 0
    ResponseCache(tmp_path / "empty.sqlite").close()
    assert upload_seed(tmp_path / "empty.sqlite", storage) == 0
    assert not (tmp_path / "storage" / "state" / f"seed{SEGMENT_SUFFIX}").exists()


def test_a_half_written_segment_is_never_read(tmp_path: Path) -> None:
    storage = str(tmp_path / "storage")
    cache_file = tmp_path / "shard" / "llm-cache.sqlite"
    put(cache_file, "a")
    CacheCheckpoints(cache_file, storage, "s0").checkpoint()
    # What a writer killed mid-segment leaves: a temporary name, and bytes that are no segment.
    directory = Path(shard_state(storage, "s0"))
    (directory / f"dead-000000{SEGMENT_SUFFIX}{TEMP_MARK}0123").write_bytes(b"\x1f\x8b half")

    assert len(segments(str(directory))) == 1
    assert fill_cache(tmp_path / "elsewhere.sqlite", storage, "s0") == 1
    assert add_stored_caches(tmp_path / "run.sqlite", storage) == 1


def test_the_driver_merges_shards_that_never_ran_on_its_disk_once(tmp_path: Path) -> None:
    storage = str(tmp_path / "storage")
    for shard, keys in (("s0", ["a", "b"]), ("s1", ["b", "c"])):
        node_disk = tmp_path / "nodes" / shard / "llm-cache.sqlite"
        put(node_disk, *keys)
        CacheCheckpoints(node_disk, storage, shard).checkpoint()
    upload_seed(tmp_path / "none.sqlite", storage)
    run_cache = tmp_path / "driver" / "llm-cache.sqlite"
    put(run_cache, "z")

    assert add_stored_caches(run_cache, storage) == 3
    assert keys_of(run_cache) == {"z", "a", "b", "c"}
    assert add_stored_caches(run_cache, storage) == 0  # merging again adds nothing


def test_the_run_failure_record_joins_stored_records_and_the_drivers_own(tmp_path: Path) -> None:
    storage = str(tmp_path / "storage" / "stage-0")
    for shard, lines in (("s1", b'{"row": 1}\n'), ("s0", b'{"row": 0}\n'), ("s2", b"")):
        record = tmp_path / "nodes" / shard / "failures.jsonl"
        record.parent.mkdir(parents=True)
        record.write_bytes(lines)
        store_failure_record(record, storage, shard)
    run_dir = tmp_path / "driver" / "ray"
    (run_dir / "stage-0").mkdir(parents=True)  # its shards ran on other nodes: no directories
    (run_dir / "stage-1").mkdir()
    (run_dir / "stage-1" / "failures.jsonl").write_bytes(b'{"global": 1}\n')  # run here

    joined = join_failure_records(run_dir, {"stage-0": (storage, ["s0", "s1", "s2"])})
    assert joined is not None
    assert joined.read_bytes() == b'{"row": 0}\n{"row": 1}\n{"global": 1}\n'


def test_a_failure_record_of_an_earlier_attempt_goes_when_the_last_has_none(
    tmp_path: Path,
) -> None:
    storage = str(tmp_path / "storage")
    record = tmp_path / "failures.jsonl"
    record.write_bytes(b'{"row": 0}\n')
    store_failure_record(record, storage, "s0")
    record.unlink()
    store_failure_record(record, storage, "s0")
    assert not (Path(shard_state(storage, "s0")) / "failures.jsonl").exists()
    assert join_failure_records(tmp_path / "run", {}) is None


def shard_plan(url: str, rows: int) -> Plan:
    with Pipeline("resume", cache_dir="unused") as pipeline:
        load = LoadDataFromDicts(
            data=[{"instruction": f"question {i}"} for i in range(rows)], batch_size=10
        )
        llm = OpenAILLM(model="m", base_url=f"{url}/v1", api_key="k", max_concurrency=4)
        load >> TextGeneration(llm=llm, input_batch_size=10)
    return plan(pipeline._steps, pipeline._edges)


@pytest.mark.parametrize("storage", [True, False])
def test_a_shard_run_again_on_another_disk_asks_again_only_without_storage(
    storage: bool, tmp_path: Path
) -> None:
    where = str(tmp_path / "storage" / "stage-0") if storage else None
    with fake_api(InFlight(delay=0.0)) as api:
        built = shard_plan(api.url, 30)
        for disk in ("node-a", "node-b"):  # the second attempt finds none of the first's files
            run_dir = tmp_path / disk / "ray" / "stage-0"
            result = run_shard(built, Shard(0, 1, 10), str(run_dir), RunOptions(), {}, where)
            assert result.rows == 30
        counts = api.prompt_counts()
    assert sum(counts.values()) == (30 if storage else 60)
