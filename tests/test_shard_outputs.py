"""What shards make and how it comes back, without Ray: each shard runs in this process
(``run_shard``, as a Ray worker runs it) and the driver's merge puts the parts together.

- A generator task whose rows are independent makes only its shard's rows, at their global
  ids: the union of the shards' rows is a one-process run's, row for row, and every LLM
  request is made once (generated cases over shard counts, block sizes, rows, batch sizes).
- A retry of failed rows asks such a generator for those rows only.
- Shards' parts written to shared storage (Parquet files) merge into the same dataset as parts
  returned through the object store, and a part is replaced only once complete.
- The k-way merge by id, against a sort of everything (generated cases).
"""

from __future__ import annotations

import hashlib
import random
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, ClassVar

import pytest

from synthflow.distributed.merge import in_id_order, write_leaf
from synthflow.distributed.ray_backend import ShardResult, run_shard
from synthflow.distributed.storage import StoredPart, storage_root, store_part
from synthflow.errors import LLMResponseError, PipelineValidationError
from synthflow.llms import ChatType
from synthflow.pipeline import Pipeline
from synthflow.pipeline._engine import RunOptions
from synthflow.pipeline._shards import Shard
from synthflow.pipeline._validate import plan
from synthflow.steps.base import ROW_ID, GeneratorStep, Row
from synthflow.steps.tasks import EvolInstructGenerator
from synthflow.testing import FunctionLLM
from tests.test_tasks_evolution_generators import growing


class Writer:
    """A model for EvolInstructGenerator (``growing``) that records every prompt it is sent,
    and fails the calls whose prompt's digest is in ``failing``."""

    def __init__(self, failing: set[str] = frozenset()) -> None:  # type: ignore[assignment]
        self.prompts: list[str] = []
        self.failing = failing

    def __call__(self, messages: ChatType) -> str:
        prompt = str(messages[-1]["content"])
        self.prompts.append(prompt)
        if digest(prompt) in self.failing:
            raise LLMResponseError(f"no answer to {digest(prompt)}")
        return growing(messages)


def digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:2]


def generator(writer: Writer, rows: int, batch_size: int, concurrency: int) -> Any:
    return EvolInstructGenerator(
        name="evol",
        llm=FunctionLLM(fn=writer),
        num_instructions=rows,
        min_length=70,
        max_length=400,
        num_evolutions=3,
        generate_answers=True,
        batch_size=batch_size,
        concurrency=concurrency,
    )


def one_process(step: Any, cache: Path) -> list[dict[str, Any]]:
    with Pipeline("one", cache_dir=cache) as pipeline:
        pipeline.add_step(step)
    return dataset_rows(pipeline.run(use_cache=False, progress=False)["default"]["train"])


def in_shards(
    make_step: Any, count: int, block: int, where: Path, storage: str | None = None
) -> tuple[list[dict[str, Any]], list[ShardResult]]:
    """The rows a sharded run of the one step ``make_step()`` makes, each shard run as a Ray
    worker runs it (with a step of its own, as unpickled there)."""
    from datasets import Dataset

    results = []
    for index in range(count):
        step = make_step()
        built = plan({step.name: step}, [])
        options = RunOptions(use_cache=False)
        results.append(
            run_shard(built, Shard(index, count, block), str(where), options, {}, storage)
        )
    parts = [r.leaves[step.name] for r in results if r.leaves[step.name] is not None]
    path = write_leaf(where / "data" / step.name, parts)
    return dataset_rows(Dataset.from_file(str(path))), results


def dataset_rows(dataset: Any) -> list[dict[str, Any]]:
    rows = dataset.to_list()
    for row in rows:
        row.pop("synthflow_metadata", None)
    return rows


# -- generator tasks make only their shard's rows --------------------------------------------


@pytest.mark.parametrize("seed", range(16))
def test_shards_of_a_generator_task_make_a_one_process_runs_rows_once(
    seed: int, tmp_path: Path
) -> None:
    rng = random.Random(seed)
    count, block = rng.randint(1, 4), rng.randint(1, 12)
    rows, batch_size, concurrency = rng.randint(1, 45), rng.randint(1, 9), rng.randint(1, 6)
    failing = {f"{rng.randrange(256):02x}" for _ in range(rng.randint(0, 6))}

    alone = Writer(failing)
    expected = one_process(generator(alone, rows, batch_size, concurrency), tmp_path / "one")
    shared = Writer(failing)
    made, results = in_shards(
        lambda: generator(shared, rows, batch_size, concurrency), count, block, tmp_path / "ray"
    )

    assert made == expected
    assert len(expected) == rows
    assert Counter(shared.prompts) == Counter(alone.prompts)  # each request once, by one shard
    for result in results:  # each shard made its own blocks' rows, and only those
        table = result.leaves["evol"]
        ids = [] if table is None else table.column(ROW_ID).to_pylist()
        assert ids == [i for i in range(rows) if result.shard.owns(i)]
        assert result.stats["evol"].rows_out == len(ids)


class Squares(GeneratorStep):
    """A plain source that declares it makes rows by id, with a synchronous ``process``."""

    makes_rows_by_id: ClassVar[bool] = True
    made: ClassVar[list[int]] = []
    total: int = 30

    @property
    def outputs(self) -> list[str]:
        return ["square"]

    def process(  # type: ignore[override]
        self, offset: int = 0, wanted: Callable[[int], bool] | None = None
    ) -> Iterator[list[Row]]:
        ids = [i for i in range(offset, self.total) if wanted is None or wanted(i)]
        self.made.extend(ids)
        for start in range(0, len(ids), self.batch_size):
            yield [{"square": i * i, ROW_ID: i} for i in ids[start : start + self.batch_size]]


def test_any_source_that_declares_it_is_asked_for_its_shards_rows(tmp_path: Path) -> None:
    rows, _ = in_shards(lambda: Squares(name="squares", batch_size=4), 3, 5, tmp_path)
    assert rows == [{"square": i * i} for i in range(30)]
    assert sorted(Squares.made) == list(range(30))  # each row made once, by its shard


def test_a_retry_asks_the_generator_for_the_failed_rows_only(tmp_path: Path) -> None:
    failing = {"00", "3a", "7f", "c4", "e1"}
    first = Writer(failing)
    with Pipeline("retry", cache_dir=tmp_path) as pipeline:
        pipeline.add_step(generator(first, 40, 7, 4))
    run = pipeline.run(use_cache=False, progress=False)
    failed = run.failed_rows.get("evol", 0)
    assert failed  # the case tests something

    again = Writer()
    with Pipeline("retry", cache_dir=tmp_path) as pipeline:
        pipeline.add_step(generator(again, 40, 7, 4))
    retried = pipeline.run(use_cache=False, progress=False, retry_failed=True)
    clean = Writer()
    expected = one_process(generator(clean, 40, 7, 4), tmp_path / "clean")
    assert dataset_rows(retried["default"]["train"]) == expected
    assert retried.stats["evol"].rows_out == failed
    # Only the failed rows' chains were asked again, not the rows before them.
    fresh_starts = [p for p in again.prompts if p.startswith("Make up one question")]
    assert len(fresh_starts) == failed


# -- shards' parts on shared storage ---------------------------------------------------------


@pytest.mark.parametrize("count", [1, 3])
def test_parts_on_shared_storage_merge_into_the_object_store_result(
    count: int, tmp_path: Path
) -> None:
    def make() -> Any:
        return generator(Writer({"5b"}), 37, 4, 3)

    through_store, _ = in_shards(make, count, 5, tmp_path / "store")
    storage = tmp_path / "shared"
    # What a killed attempt left: a half-written part under its temporary name.
    leftover = storage / "evol" / "shard-0000-of-0003.parquet.tmp-0123"
    leftover.parent.mkdir(parents=True)
    leftover.write_bytes(b"PAR1 half a part")
    on_storage, results = in_shards(make, count, 5, tmp_path / "files", str(storage))
    expected = one_process(make(), tmp_path / "one")

    assert on_storage == through_store == expected
    parts = [r.leaves["evol"] for r in results]
    assert all(isinstance(p, StoredPart) for p in parts)
    assert sum(p.rows for p in parts if p is not None) == 37
    assert sorted(p.name for p in (storage / "evol").iterdir()) == sorted(
        [leftover.name] + [f"shard-{i:04d}-of-{count:04d}.parquet" for i in range(count)]
    )


def test_a_part_is_replaced_only_once_its_new_file_is_complete(tmp_path: Path) -> None:
    import pyarrow as pa

    schema = pa.schema([("x", pa.int64()), (ROW_ID, pa.int64())])
    first = pa.table({"x": [1, 2], ROW_ID: [0, 1]}, schema=schema)
    stored = store_part(str(tmp_path), "leaf/shard-0000-of-0001", schema, [first])
    assert stored is not None and stored.rows == 2

    def killed() -> Iterator[Any]:
        yield pa.table({"x": [9], ROW_ID: [0]}, schema=schema)
        raise KeyboardInterrupt  # the worker is stopped mid-write

    with pytest.raises(KeyboardInterrupt):
        store_part(str(tmp_path), "leaf/shard-0000-of-0001", schema, killed())
    assert [p.name for p in (tmp_path / "leaf").iterdir()] == ["shard-0000-of-0001.parquet"]
    _, tables = in_id_order([stored])
    assert [t.to_pylist() for t in tables] == [first.to_pylist()]

    again = pa.table({"x": [5], ROW_ID: [0]}, schema=schema)  # a complete re-run replaces it
    replaced = store_part(str(tmp_path), "leaf/shard-0000-of-0001", schema, [again])
    assert replaced == StoredPart(stored.url, 1)
    _, tables = in_id_order([replaced])
    assert [t.to_pylist() for t in tables] == [again.to_pylist()]
    assert len(list((tmp_path / "leaf").iterdir())) == 1


def test_storage_is_checked_and_made_absolute_before_any_worker_starts(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    assert storage_root("shared/run") == str(tmp_path / "shared" / "run")
    assert (tmp_path / "shared" / "run").is_dir()
    (tmp_path / "file").write_text("")
    with pytest.raises(PipelineValidationError, match="a directory every node reaches"):
        storage_root(str(tmp_path / "file" / "run"))
    with pytest.raises(PipelineValidationError, match="fsspec backend is installed"):
        storage_root("nosuchscheme://bucket/run")


# -- the merge by id ------------------------------------------------------------------------


@pytest.mark.parametrize("seed", range(40))
def test_the_merge_by_id_is_a_stable_sort_of_every_part(seed: int, tmp_path: Path) -> None:
    import pyarrow as pa

    rng = random.Random(seed)
    count, block = rng.randint(1, 5), rng.randint(1, 6)
    owners = [Shard(i, count, block) for i in range(count)]
    rows: list[list[dict[str, Any]]] = [[] for _ in range(count)]
    # A column's type may differ from one shard's part to another's (all nulls, text, ints).
    kinds = [rng.choice([str, int, type(None)]) for _ in range(count)]
    for row_id in range(rng.randint(0, 80)):
        if rng.random() < 0.2:
            continue  # filtered out
        owner = next(s.index for s in owners if s.owns(row_id))
        for copy in range(rng.choice([1, 1, 1, 2, 3])):  # copies share their row's id
            value = None if kinds[owner] is type(None) else kinds[owner](copy)
            rows[owner].append({ROW_ID: row_id, "copy": copy, "v": value})
    sources: list[Any] = []
    for index, part in enumerate(rows):
        if not part:
            continue
        table = pa.Table.from_pylist(part)
        if rng.random() < 0.5:  # a file, read back in row groups
            stored = store_part(str(tmp_path), f"p{index}", table.schema, batches_of(table, rng))
            sources.append(stored)
        else:
            sources.append(table)
    expected = sorted((row for part in rows for row in part), key=lambda r: r[ROW_ID])
    schema, tables = in_id_order(sources)
    merged = [row for t in tables for row in t.to_pylist()]
    assert [(r[ROW_ID], r["copy"]) for r in merged] == [(r[ROW_ID], r["copy"]) for r in expected]
    assert [r["v"] is None for r in merged] == [r["v"] is None for r in expected]
    assert schema is None or schema.names[-1] == ROW_ID


def batches_of(table: Any, rng: random.Random) -> Iterator[Any]:
    at = 0
    while at < table.num_rows:
        size = rng.randint(1, 7)
        yield table.slice(at, size)
        at += size
