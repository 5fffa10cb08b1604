"""``synthflow pipeline run --dry-run``: the first row of each source through every step, in a
scratch directory of its own.

A dry run is a check before a real run, so it must leave everything a real run made as it
was: its run directory, its response cache and its output go under a new temporary directory,
never under the cache directory or ``--output``.
"""

from __future__ import annotations

import tempfile
from collections.abc import AsyncGenerator, AsyncIterator
from contextlib import aclosing
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import Field

from synthflow.steps.base import GeneratorStep, Row, batch_rows

if TYPE_CHECKING:
    from synthflow.pipeline.pipeline import Pipeline


def start_dry_run(pipeline: Pipeline, rows: int = 1) -> Path:
    """Make ``pipeline`` (in place) a dry run of itself: its sources yield their first ``rows``
    rows and it keeps everything it writes in a new scratch directory, which is returned."""
    limit_sources(pipeline, rows)
    scratch = Path(tempfile.mkdtemp(prefix="synthflow-dry-run-"))
    pipeline.cache_dir = scratch
    return scratch


class FirstRows(GeneratorStep):
    """A dry run's stand-in for a source: the first ``rows`` rows of ``source``, then stop."""

    source: GeneratorStep = Field(description="The source it stands in for.")
    rows: int = Field(default=1, ge=1, description="Rows to let through.")

    @property
    def outputs(self) -> list[str]:
        return self.source.outputs

    def total_rows(self) -> int | None:
        """For progress: at most ``rows``, fewer when the source is known to be shorter."""
        from synthflow.pipeline._progress import source_size

        size = source_size(self.source)
        return self.rows if size is None else min(self.rows, size)

    def load(self) -> None:
        self.source.load()

    def unload(self) -> None:
        self.source.unload()

    async def process(self, offset: int = 0) -> AsyncIterator[list[Row]]:
        left = self.rows
        async with aclosing(_batches_of(self.source.process(offset))) as batches:
            async for batch in batches:
                rows = batch_rows(batch)[:left]
                left -= len(rows)
                if rows:
                    yield rows
                if left <= 0:
                    return


async def _batches_of(result: Any) -> AsyncGenerator[Any]:
    """The batches of a ``process`` result, a plain or an async iterator, closed when done."""
    if hasattr(result, "__anext__"):
        try:
            async for batch in result:
                yield batch
        finally:
            if hasattr(result, "aclose"):
                await result.aclose()
    else:
        iterator = iter(result)
        try:
            for batch in iterator:
                yield batch
        finally:
            if hasattr(iterator, "close"):
                iterator.close()


def limit_sources(pipeline: Pipeline, rows: int) -> None:
    """Make every generator step of ``pipeline`` yield only its first ``rows`` rows (in place).

    The stand-ins keep the names and output mappings of the steps they replace, so parameters
    and connections are unchanged."""
    for name, step in pipeline.steps.items():
        if isinstance(step, GeneratorStep) and not isinstance(step, FirstRows):
            step.batch_size = min(step.batch_size, rows)
            stand_in = FirstRows(
                name=name,
                source=step,
                rows=rows,
                output_mappings=step.output_mappings,
                batch_size=step.batch_size,
                executor=step.executor,
                on_error=step.on_error,
            )
            pipeline._steps[name] = stand_in
            stand_in._pipeline = pipeline
