"""Steps that reshape columns."""

from __future__ import annotations

from collections.abc import Iterator

from pydantic import Field

from synthflow.steps.base import ROW_ID, Row, Step, StepInput, merge_rows


class KeepColumns(Step):
    """Keeps only ``columns``, in that order; drops every other column."""

    columns: list[str] = Field(min_length=1, description="The columns to keep, in order.")

    @property
    def inputs(self) -> list[str]:
        return list(self.columns)

    @property
    def outputs(self) -> list[str]:
        return list(self.columns)

    def process(self, inputs: StepInput) -> Iterator[list[Row]]:
        keep = [*self.columns, ROW_ID]
        yield [{c: row[c] for c in keep if c in row} for row in inputs]


class CombineColumns(Step):
    """Joins the branches of a fan-in: each of ``columns`` becomes a list of the branches'
    values, in connection order, under ``output_columns`` (default ``merged_<column>``)."""

    columns: list[str] = Field(min_length=1, description="Columns to gather from each branch.")
    output_columns: list[str] | None = Field(
        default=None, description="Names of the gathered columns."
    )

    @property
    def inputs(self) -> list[str]:
        return list(self.columns)

    @property
    def outputs(self) -> list[str]:
        return self.output_columns or [f"merged_{c}" for c in self.columns]

    def process(self, *inputs: StepInput) -> Iterator[list[Row]]:
        rows: list[Row] = []
        for parts in zip(*inputs, strict=True):
            row = merge_rows(parts)
            for column, target in zip(self.columns, self.outputs, strict=True):
                row.pop(column, None)
                row[target] = [part.get(column) for part in parts]
            rows.append(row)
        yield rows
