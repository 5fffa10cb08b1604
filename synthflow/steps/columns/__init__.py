"""Steps that reshape columns: keep, group, merge, expand, and join the outputs of branches.

``GroupColumns``, ``CombineColumns`` and ``CombineOutputs`` join the branches of a fan-in: their
``process`` takes one batch per predecessor (``process(*inputs)``), which the engine aligns by
lineage, so a column that several branches write (``generation``, ``model_name``) reaches the
step once per branch instead of being overwritten by the last one.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, ClassVar

import orjson
from pydantic import Field, model_validator

from synthflow.steps._rows import column, list_column
from synthflow.steps.base import (
    ERROR_COLUMN,
    METADATA_COLUMN,
    ROW_ID,
    Row,
    Step,
    StepInput,
    merge_rows,
)


class KeepColumns(Step):
    """Keeps only ``columns``, in that order; drops every other column but ``synthflow_error``
    on a row that failed (the run's record of why, which a retry of failed rows reads).

    Input columns: ``columns``. Output columns: ``columns``.
    """

    columns: list[str] = Field(min_length=1, description="The columns to keep, in order.")

    @property
    def inputs(self) -> list[str]:
        return list(self.columns)

    @property
    def outputs(self) -> list[str]:
        return list(self.columns)

    def process(self, inputs: StepInput) -> Iterator[list[Row]]:
        keep = [*self.columns, ERROR_COLUMN, ROW_ID]
        yield [{c: row[c] for c in keep if c in row} for row in inputs]


class GroupColumns(Step):
    """Joins the branches of a fan-in: each of ``columns`` becomes a list of the branches'
    values, in the order the branches were connected. Branches without the column add nothing
    to its list. The other columns are merged (a later branch wins a column they share; every
    branch's ``synthflow_metadata`` entries are kept).

    Input columns: ``columns``, from each predecessor.
    Output columns: ``output_columns``, default ``grouped_<column>`` for each of ``columns``
    (the original columns are replaced by them).

    Fields: ``columns`` (the columns to group), ``output_columns`` (their new names, one per
    column).
    """

    columns: list[str] = Field(min_length=1, description="Columns to gather from each branch.")
    output_columns: list[str] | None = Field(
        default=None, description="Names of the grouped columns; default grouped_<column>."
    )

    _prefix: ClassVar[str] = "grouped_"

    @model_validator(mode="after")
    def _same_length(self) -> GroupColumns:
        if self.output_columns is not None and len(self.output_columns) != len(self.columns):
            raise ValueError(
                f"output_columns has {len(self.output_columns)} names for {len(self.columns)} "
                "columns; give one name per column"
            )
        return self

    @property
    def inputs(self) -> list[str]:
        return list(self.columns)

    @property
    def outputs(self) -> list[str]:
        if self.output_columns is not None:
            return list(self.output_columns)
        return [f"{self._prefix}{c}" for c in self.columns]

    def process(self, *inputs: StepInput) -> Iterator[list[Row]]:
        targets = list(zip(self.columns, self.outputs, strict=True))
        rows: list[Row] = []
        for parts in zip(*inputs, strict=False):  # standalone calls pair rows as zip() does
            row = merge_rows(parts)
            for name, _ in targets:
                row.pop(name, None)
            for name, target in targets:
                row[target] = [part[name] for part in parts if name in part]
            rows.append(row)
        yield rows


class CombineColumns(GroupColumns):
    """distilabel 1.4's name for ``GroupColumns``: the same step, with output columns named
    ``merged_<column>`` by default, as 1.4 named them.

    Input columns: ``columns``, from each predecessor.
    Output columns: ``output_columns``, default ``merged_<column>``.
    """

    _prefix: ClassVar[str] = "merged_"


class CombineOutputs(Step):
    """Joins the branches of a fan-in that produced different columns into one row: every
    column of every branch (a later branch wins a column they share), with the
    ``synthflow_metadata`` entries of all of them.

    Input columns: none declared (whatever the branches produce).
    Output columns: none declared (the branches' columns pass through).
    """

    def process(self, *inputs: StepInput) -> Iterator[list[Row]]:
        yield [merge_rows(parts) for parts in zip(*inputs, strict=False)]


class MergeColumns(Step):
    """Merges ``columns`` of a row into one list column: a list value adds its items, any other
    value adds itself. The merged columns are removed.

    Input columns: ``columns``.
    Output columns: ``output_column`` (default ``merged_column``).

    Fields: ``columns`` (the columns to merge, in order), ``output_column``.
    """

    columns: list[str] = Field(min_length=1, description="The columns to merge, in order.")
    output_column: str | None = Field(
        default=None, description="Name of the merged column; default merged_column."
    )

    @property
    def inputs(self) -> list[str]:
        return list(self.columns)

    @property
    def outputs(self) -> list[str]:
        return [self.output_column or "merged_column"]

    def process(self, inputs: StepInput) -> Iterator[list[Row]]:
        (target,) = self.outputs
        for row in inputs:
            merged: list[Any] = []
            for name in self.columns:
                value = column("MergeColumns", row, name)
                merged.extend(value if isinstance(value, list) else [value])
            for name in self.columns:
                del row[name]
            row[target] = merged
        yield inputs


class ExpandColumns(Step):
    """Turns each row into one row per item of its list ``columns``: row k holds the k-th item
    of each of them (columns of different lengths are padded with null). A row whose lists are
    empty is dropped.

    Input columns: the keys of ``columns`` (lists, or JSON-encoded lists with ``encoded``).
    Output columns: the values of ``columns`` (an item each); with a list, the same names.

    Fields: ``columns`` (a list, or a dict from list column to the column its items go to: the
    list column is then kept as it was), ``encoded`` (True, or the columns that hold a JSON text
    to decode first), ``split_statistics`` (divide the token counts of the row's
    ``synthflow_metadata`` statistics among the new rows, so that totals stay right).
    """

    columns: dict[str, str] | list[str] = Field(
        description="The list columns to expand: a list, or a dict {column: new_column}."
    )
    encoded: bool | list[str] = Field(
        default=False,
        description="Decode JSON first: True for every column, or the columns that need it.",
    )
    split_statistics: bool = Field(
        default=False,
        description="Divide the token statistics in synthflow_metadata among the new rows.",
    )

    @model_validator(mode="after")
    def _check(self) -> ExpandColumns:
        if not self.columns:
            raise ValueError("columns must name at least one list column to expand")
        if isinstance(self.encoded, list):
            unknown = [c for c in self.encoded if c not in self._targets()]
            if unknown:
                raise ValueError(
                    f"encoded names {unknown[0]!r}, which is not one of the columns to expand "
                    f"({', '.join(self._targets())})"
                )
        return self

    def _targets(self) -> dict[str, str]:
        if isinstance(self.columns, list):
            return {c: c for c in self.columns}
        return {c: new or c for c, new in self.columns.items()}

    def _encoded(self) -> list[str]:
        if isinstance(self.encoded, list):
            return list(self.encoded)
        return list(self._targets()) if self.encoded else []

    @property
    def inputs(self) -> list[str]:
        return list(self._targets())

    @property
    def outputs(self) -> list[str]:
        return list(self._targets().values())

    def process(self, inputs: StepInput) -> Iterator[list[Row]]:
        targets, encoded = self._targets(), set(self._encoded())
        out: list[Row] = []
        for row in inputs:
            values = {name: self._items(row, name, name in encoded) for name in targets}
            n = max(len(v) for v in values.values())
            if n == 0:
                continue
            shares = self._shares(row.get(METADATA_COLUMN), n)
            for k in range(n):
                new = dict(row)
                for name, target in targets.items():
                    items = values[name]
                    new[target] = items[k] if k < len(items) else None
                if shares is not None:
                    new[METADATA_COLUMN] = shares[k]
                out.append(new)
        yield out

    def _items(self, row: Row, name: str, encoded: bool) -> list[Any]:
        if encoded:
            text = column("ExpandColumns", row, name)
            try:
                row[name] = orjson.loads(text)
            except (orjson.JSONDecodeError, TypeError):
                raise ValueError(
                    f"ExpandColumns: column {name!r} must hold a JSON-encoded list "
                    f"(encoded names it), got {str(text)[:40]!r}"
                ) from None
        hint = "" if encoded else "; set encoded=True if it holds a JSON-encoded list"
        return list_column("ExpandColumns", row, name, hint)

    def _shares(self, metadata: Any, n: int) -> list[dict[str, Any]] | None:
        """The row's metadata for each of its ``n`` new rows, token counts divided among them."""
        if not self.split_statistics or not isinstance(metadata, dict):
            return None
        shares: list[dict[str, Any]] = [dict(metadata) for _ in range(n)]
        for key, value in metadata.items():
            if not (key.startswith("statistics_") and isinstance(value, dict)):
                continue
            split = {field: _divide(count, n) for field, count in value.items()}
            for k in range(n):
                shares[k][key] = {field: parts[k] for field, parts in split.items()}
        return shares


def _divide(count: Any, n: int) -> list[Any]:
    """``count`` in ``n`` parts that add up to it (the first ones take the remainder); lists
    are divided item by item, and anything that is not a count is repeated."""
    if isinstance(count, bool) or not isinstance(count, int | list):
        return [count] * n
    if isinstance(count, list):
        columns = [_divide(c, n) for c in count]
        return [[parts[k] for parts in columns] for k in range(n)]
    base, extra = divmod(count, n)
    return [base + (1 if k < extra else 0) for k in range(n)]
