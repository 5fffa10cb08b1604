"""Reading a row's columns in catalog steps, with the one-line errors users see."""

from __future__ import annotations

from typing import Any

from synthflow.steps.base import ROW_ID, Row


def column(step: str, row: Row, name: str) -> Any:
    """``row[name]``, or a one-line error that names the row's columns and the fix."""
    try:
        return row[name]
    except KeyError:
        present = ", ".join(sorted(c for c in row if c != ROW_ID)) or "none"
        raise ValueError(
            f"{step}: the row has no column {name!r} (its columns: {present}); produce it "
            f"upstream or map it with input_mappings={{{name!r}: '<column>'}}"
        ) from None


def list_column(step: str, row: Row, name: str, hint: str = "") -> list[Any]:
    """``row[name]`` when it holds a list, or a one-line error saying what it holds instead."""
    value = column(step, row, name)
    if not isinstance(value, list | tuple):
        raise ValueError(
            f"{step}: column {name!r} must hold a list, got {type(value).__name__} "
            f"{_preview(value)}{hint}"
        )
    return list(value)


def _preview(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."
