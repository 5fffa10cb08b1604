"""Reading an embeddings column into one float32 matrix, for the steps that compare rows."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

_READ = 4096  # rows converted to an array at once


def embedding_matrix(step: str, vectors: Iterable[Any], count: int, allow_missing: bool) -> Any:
    """A (count, dimensions) float32 array of ``vectors``; a null vector is a row of NaN when
    ``allow_missing``, an error otherwise. One-line errors for what isn't a vector."""
    import numpy as np

    matrix: Any = None
    pending: list[tuple[int, Any]] = []

    def convert() -> None:
        nonlocal matrix
        for i, vector in pending:
            if vector is None and allow_missing:
                continue
            if not isinstance(vector, list | tuple) or not vector:
                raise ValueError(
                    f"{step}: column 'embedding' must hold a list of numbers, got "
                    f"{type(vector).__name__} in row {i}"
                )
            if matrix is None:
                matrix = np.full((count, len(vector)), np.nan, dtype=np.float32)
            if len(vector) != matrix.shape[1]:
                raise ValueError(
                    f"{step}: embeddings must all have one size; got {len(vector)} in row {i} "
                    f"and {matrix.shape[1]} before"
                )
            matrix[i] = vector
        pending.clear()

    for i, vector in enumerate(vectors):
        pending.append((i, vector))
        if len(pending) == _READ:
            convert()
    convert()
    return matrix if matrix is not None else np.full((count, 1), np.nan, dtype=np.float32)
