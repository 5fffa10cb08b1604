"""Steps that select a subset of the rows: DEITA's score-first, diversity-aware selection."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any, Literal

from pydantic import Field

from synthflow.runtime_parameters import RuntimeParameter
from synthflow.steps._rows import column
from synthflow.steps._vectors import embedding_matrix
from synthflow.steps.base import GlobalStep, Row

_SCORES = ("evol_instruction_score", "evol_response_score")
_BLOCK = 256  # candidates compared with the kept rows at once


class DeitaFiltering(GlobalStep):
    """Selects a high-quality, diverse subset of instruction-response pairs, as DEITA does.

    From Liu, Zeng, He, Jiang and He, "What Makes Good Data for Alignment? A Comprehensive
    Study of Automatic Data Selection in Instruction Tuning" (arXiv:2312.15685): each row's
    DEITA score is its complexity score times its quality score; rows are taken from the
    highest score down, and a row is kept only if its embedding is at a distance of at least
    ``diversity_threshold`` from every row kept before it, until ``data_budget`` rows are kept.

    Like distilabel, a missing (null or zero) score leaves the other one as the DEITA score
    (0 when both are missing), and kept rows come out from the highest score down. A row
    without an embedding is not kept. Runs in numpy, comparing blocks of candidates with the
    kept rows at once: time grows with rows x kept rows, memory with rows x dimensions (4
    bytes each).

    Input columns: ``evol_instruction_score`` (float, e.g. from ``ComplexityScorer``),
    ``evol_response_score`` (float, e.g. from ``QualityScorer``), ``embedding`` (list of
    float).
    Output columns: ``deita_score`` (float), ``deita_score_computed_with`` (list of the score
    columns used), ``nearest_neighbor_distance`` (float: distance to the nearest other kept
    row; null when only one row is kept).

    Fields: ``data_budget`` (rows to keep; default: every row that passes), ``diversity_threshold``
    (default 0.9), ``normalize_embeddings`` (default True; without it, "cosine" distance is
    1 - the dot product), ``distance_metric`` ("cosine" or "manhattan").
    """

    data_budget: RuntimeParameter[int | None] = Field(
        default=None, ge=0, description="Rows to keep; default: every row that passes."
    )
    diversity_threshold: RuntimeParameter[float] = Field(
        default=0.9,
        description="Smallest distance to every row kept before it for a row to be kept.",
    )
    normalize_embeddings: RuntimeParameter[bool] = Field(
        default=True, description="Scale embeddings to unit length before comparing them."
    )
    distance_metric: RuntimeParameter[Literal["cosine", "manhattan"]] = Field(
        default="cosine", description="'cosine' or 'manhattan'."
    )

    @property
    def inputs(self) -> list[str]:
        return [*_SCORES, "embedding"]

    @property
    def outputs(self) -> list[str]:
        return ["deita_score", "nearest_neighbor_distance", "deita_score_computed_with"]

    def process(self, inputs: Sequence[Row]) -> Iterator[list[Row]]:
        import numpy as np

        scores, used, embeddings = self._read(inputs)
        placed = np.flatnonzero(~np.isnan(embeddings[:, 0]))
        ranked = placed[np.argsort(-scores[placed], kind="stable")]
        if self.normalize_embeddings and len(ranked):
            for lo in range(0, len(embeddings), 8192):  # in place, a block at a time
                block = embeddings[lo : lo + 8192]
                norms = np.linalg.norm(block, axis=1, keepdims=True)
                block /= np.where((norms == 0) | np.isnan(norms), 1, norms)
        chosen = self._select(embeddings, ranked)
        nearest = self._nearest(embeddings[ranked[chosen]])
        order = ranked[chosen].tolist()
        position = {index: k for k, index in enumerate(order)}
        picked: list[Row | None] = [None] * len(order)
        for i, row in enumerate(inputs):  # one pass: the input may be a file read in order
            k = position.get(i)
            if k is not None:
                row["deita_score"] = float(scores[i])
                row["deita_score_computed_with"] = used[i]
                row["nearest_neighbor_distance"] = nearest[k]
                picked[k] = row
        for start in range(0, len(picked), 1024):
            yield [row for row in picked[start : start + 1024] if row is not None]

    def _read(self, inputs: Sequence[Row]) -> tuple[Any, list[list[str]], Any]:
        """DEITA scores, the score columns each used, and the embeddings (NaN rows: none)."""
        import numpy as np

        scores = np.zeros(len(inputs), dtype=np.float64)
        used: list[list[str]] = []

        def embeddings() -> Iterator[Any]:  # one pass: scores on the way, vectors in blocks
            for i, row in enumerate(inputs):
                parts = [(name, column("DeitaFiltering", row, name)) for name in _SCORES]
                present = [(name, value) for name, value in parts if value]  # 0 too, as distilabel
                score = 1.0
                for name, value in present:
                    if isinstance(value, bool) or not isinstance(value, int | float):
                        raise ValueError(
                            f"DeitaFiltering: column {name!r} must hold a number, got "
                            f"{type(value).__name__}"
                        )
                    score *= value
                scores[i] = score if present else 0.0
                used.append([name for name, _ in present])
                yield column("DeitaFiltering", row, "embedding")

        matrix = embedding_matrix("DeitaFiltering", embeddings(), len(inputs), allow_missing=True)
        return scores, used, matrix

    def _distances(self, a: Any, b: Any) -> Any:
        import numpy as np

        if self.distance_metric == "cosine":
            return 1.0 - a @ b.T
        out = np.empty((len(a), len(b)), dtype=np.float32)
        step = max(1, 2**22 // max(1, a.shape[1] * max(1, len(a))))
        for lo in range(0, len(b), step):
            out[:, lo : lo + step] = np.abs(a[:, None, :] - b[None, lo : lo + step, :]).sum(-1)
        return out

    def _select(self, vectors: Any, ranked: Any) -> Any:
        """Positions (in ranked order) of the rows kept: each at least the threshold away from
        every row kept before it, until the budget is spent."""
        import numpy as np

        budget = len(ranked) if self.data_budget is None else self.data_budget
        threshold = self.diversity_threshold
        kept = np.empty((min(budget, len(ranked)), vectors.shape[1]), dtype=np.float32)
        chosen: list[int] = []
        for lo in range(0, len(ranked), _BLOCK):
            if len(chosen) >= budget:
                break
            block = vectors[ranked[lo : lo + _BLOCK]]
            far = np.ones(len(block), dtype=np.bool_)
            if chosen:
                far = self._distances(block, kept[: len(chosen)]).min(axis=1) >= threshold
            candidates = np.flatnonzero(far)
            among = self._distances(block[candidates], block[candidates])
            accepted: list[int] = []  # positions in candidates
            for c in range(len(candidates)):
                if len(chosen) >= budget:
                    break
                if accepted and among[c, accepted].min() < threshold:
                    continue
                accepted.append(c)
                kept[len(chosen)] = block[candidates[c]]
                chosen.append(lo + int(candidates[c]))
        return np.asarray(chosen, dtype=np.int64)

    def _nearest(self, kept: Any) -> list[float | None]:
        """Each kept row's distance to the nearest other kept row."""
        import numpy as np

        if len(kept) < 2:
            return [None] * len(kept)
        nearest = np.empty(len(kept), dtype=np.float64)
        for lo in range(0, len(kept), 1024):
            distances = self._distances(kept[lo : lo + 1024], kept).astype(np.float64)
            rows = np.arange(len(distances))
            distances[rows, lo + rows] = np.inf
            nearest[lo : lo + 1024] = distances.min(axis=1)
        return [float(d) for d in nearest]
