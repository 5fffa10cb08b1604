"""Generator steps that load rows."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from pydantic import Field, field_validator

from synthflow.steps.base import GeneratorStep, Row


class LoadDataFromDicts(GeneratorStep):
    """Yields the rows given inline. They are kept when the pipeline is saved to YAML/JSON."""

    data: list[dict[str, Any]] = Field(description="The rows, as dicts of column to value.")

    @field_validator("data")
    @classmethod
    def _not_empty(cls, data: list[dict[str, Any]]) -> list[dict[str, Any]]:
        if not data:
            raise ValueError("data must hold at least one row, e.g. data=[{'instruction': 'hi'}]")
        return data

    @property
    def outputs(self) -> list[str]:
        seen: dict[str, None] = {}
        for row in self.data:
            seen.update(dict.fromkeys(row))
        return list(seen)

    def process(self, offset: int = 0) -> Iterator[list[Row]]:
        for start in range(offset, len(self.data), self.batch_size):
            yield [dict(row) for row in self.data[start : start + self.batch_size]]
