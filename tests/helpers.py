"""Steps and LLMs shared by tests. Module-level, so worker processes can unpickle them."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from synthflow.steps import GeneratorStep, Step, StepInput
from synthflow.steps.base import Row


class RecordPid(Step):
    """Writes each worker's pid into ``pid_dir`` from ``load()`` and tags rows with it."""

    pid_dir: str

    @property
    def inputs(self) -> list[str]:
        return ["n"]

    @property
    def outputs(self) -> list[str]:
        return ["pid", "square"]

    def load(self) -> None:
        Path(self.pid_dir, f"{os.getpid()}.pid").write_text(str(os.getpid()))

    def process(self, inputs: StepInput) -> Iterator[list[Row]]:
        for row in inputs:
            row["pid"] = os.getpid()
            row["square"] = row["n"] ** 2
        yield inputs


class Passthrough(Step):
    def process(self, inputs: StepInput) -> Iterator[list[Row]]:
        yield inputs


def numbers(n: int) -> list[dict[str, int]]:
    return [{"n": i} for i in range(n)]


def run_texts(
    llm: Any, instructions: list[str], *, run: dict[str, Any] | None = None, **task_kwargs: Any
) -> Any:
    """Run ``instructions`` through one TextGeneration task (``task_kwargs``) on ``llm``; ``run``
    holds keyword arguments for ``pipeline.run``. Returns the Distiset."""
    from synthflow.pipeline import Pipeline
    from synthflow.steps import LoadDataFromDicts
    from synthflow.steps.tasks import TextGeneration

    with Pipeline(name="texts") as pipeline:
        load = LoadDataFromDicts(data=[{"instruction": i} for i in instructions])
        load >> TextGeneration(name="gen", llm=llm, **task_kwargs)
    return pipeline.run(progress=False, **(run or {}))


def generate(client: Any, content: Any = "q", n: int = 1) -> Any:
    """One LLM call outside a pipeline, closing the client's connections after it."""
    import anyio

    async def call() -> Any:
        try:
            return await client.agenerate([{"role": "user", "content": content}], num_generations=n)
        finally:
            await client.aclose()

    return anyio.run(call)


class FailsToLoad(Step):
    """A process-pool step whose load() raises in the worker."""

    def load(self) -> None:
        raise ImportError("the model package is not installed")

    def process(self, inputs: StepInput) -> Iterator[list[Row]]:
        yield inputs


class PidSource(GeneratorStep):
    """A source that runs in a worker process: yields ``n`` rows, each with the worker's pid."""

    n: int = 0

    @property
    def outputs(self) -> list[str]:
        return ["i", "pid"]

    def process(self, offset: int = 0) -> Iterator[list[Row]]:
        for start in range(offset, self.n, self.batch_size):
            stop = min(start + self.batch_size, self.n)
            yield [{"i": i, "pid": os.getpid()} for i in range(start, stop)]


class KillsItsWorker(Step):
    """Squares ``n``; on the row ``n == kill_at`` its worker process kills itself with SIGKILL,
    as the kernel's OOM killer would: once (``once=True``, remembered by a marker file in
    ``marker_dir``), or every time."""

    marker_dir: str
    kill_at: int = 3
    once: bool = True

    @property
    def inputs(self) -> list[str]:
        return ["n"]

    @property
    def outputs(self) -> list[str]:
        return ["square"]

    def process(self, inputs: StepInput) -> Iterator[list[Row]]:
        import signal

        marker = Path(self.marker_dir, "killed")
        for row in inputs:
            if row["n"] == self.kill_at and not (self.once and marker.exists()):
                marker.write_text(str(os.getpid()))
                os.kill(os.getpid(), signal.SIGKILL)
            row["square"] = row["n"] ** 2
        yield inputs
