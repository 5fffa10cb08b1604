"""Helpers of an APIGen pipeline, where distilabel users import them from
(``synthflow.steps.tasks.apigen.utils``): ``PrepareExamples`` turns sampled query/answers pairs
into the ``examples`` text ``APIGenGenerator`` shows as few shots, and ``load_module_from_path``
loads the Python file that holds the tools (to list them, as the execution checker runs them).
"""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Iterator
from types import ModuleType

from pydantic import Field

from synthflow.steps.base import Row, Step, StepInput


class PrepareExamples(Step):
    """Formats each row's ``query`` and ``answers`` (lists of the same length, as
    ``DataSampler`` gives them) into one ``examples`` text, one pair after another.

    Input columns:
        - query (list[str]): the sampled queries.
        - answers (list[str]): the calls that answer each query (JSON text).

    Output columns:
        - examples (str): the pairs, formatted with ``template`` and separated by blank lines.
    """

    template: str = Field(
        default="Query: {query}\nCalls: {answers}",
        description="How one pair is written; it receives {query} and {answers}.",
    )

    @property
    def inputs(self) -> list[str]:
        return ["query", "answers"]

    @property
    def outputs(self) -> list[str]:
        return ["examples"]

    def process(self, inputs: StepInput) -> Iterator[list[Row]]:
        yield [self._examples(row) for row in inputs]

    def _examples(self, row: Row) -> Row:
        queries, answers = row["query"], row["answers"]
        # One sampled pair arrives as plain values rather than lists of one.
        if isinstance(queries, str):
            queries, answers = [queries], [answers]
        pairs = (
            self.template.format(query=q, answers=a) for q, a in zip(queries, answers, strict=True)
        )
        return {"examples": "\n\n".join(pairs)}


def load_module_from_path(path: str | os.PathLike[str]) -> ModuleType:
    """The Python module in the file ``path``, executed (it runs the file's code)."""
    spec = importlib.util.spec_from_file_location(os.path.splitext(os.path.basename(path))[0], path)
    if spec is None or spec.loader is None:
        raise ImportError(f"can't load a Python module from {os.fspath(path)!r}: give a .py file")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


__all__ = ["PrepareExamples", "load_module_from_path"]
