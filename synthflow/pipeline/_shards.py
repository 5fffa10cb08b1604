"""Which rows a shard of a distributed run owns.

A sharded run (``pipeline.run(backend="ray")``) starts the whole engine once per shard, each over
a deterministic part of the sources' rows. Rows keep their global lineage ids, so a shard's
resume bookkeeping, its joins by id and its response-cache keys work as in a one-process run,
and the shards' outputs merge back into exactly the dataset that one process makes.

Ownership goes by blocks of consecutive ids, dealt round-robin: block ``b`` (ids ``b * block``
to ``(b + 1) * block - 1``) belongs to shard ``b % count``. A block is a source batch, so a shard
gets whole batches, and every shard gets rows early in the run rather than waiting for a range
far down a stream whose length may be unknown.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Shard:
    index: int
    count: int
    block: int = 50

    def __post_init__(self) -> None:
        if self.count < 1 or not 0 <= self.index < self.count:
            raise ValueError(f"shard {self.index} of {self.count}: the index must be in 0..count-1")
        if self.block < 1:
            raise ValueError(f"a shard block must hold at least one row, not {self.block}")

    def owns(self, row_id: int) -> bool:
        return (row_id // self.block) % self.count == self.index

    @property
    def directory_name(self) -> str:
        return f"shard-{self.index:04d}-of-{self.count:04d}"
