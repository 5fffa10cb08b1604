"""FaissNearestNeighbour (exact search in numpy) and EmbeddingDedup, standalone and chained."""

from __future__ import annotations

import random
import sys
from typing import Any

import pytest

from synthflow.pipeline import Pipeline
from synthflow.steps import EmbeddingDedup, FaissNearestNeighbour, LoadDataFromDicts

KEEP = "keep_row_after_embedding_filtering"


def processed(step: Any, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    step.load()
    return [row for batch in step.process(rows) for row in batch]


def test_nearest_neighbours_by_inner_product_and_by_l2_leave_the_row_itself_out() -> None:
    rows = [{"embedding": v} for v in ([1.0, 0.0], [0.9, 0.1], [0.0, 1.0], [-1.0, 0.0])]
    by_dot = processed(FaissNearestNeighbour(k=2, metric_type=0), [dict(r) for r in rows])
    assert [r["nn_indices"] for r in by_dot] == [[1, 2], [0, 2], [1, 0], [2, 1]]
    assert by_dot[0]["nn_scores"] == pytest.approx([0.9, 0.0])
    by_l2 = processed(FaissNearestNeighbour(k=1), [dict(r) for r in rows])
    assert [r["nn_indices"] for r in by_l2] == [[1], [0], [1], [2]]
    assert by_l2[0]["nn_scores"] == pytest.approx([0.02])


def test_exact_search_agrees_with_a_brute_force_reference_across_blocks() -> None:
    rng = random.Random(4)
    vectors = [[rng.gauss(0, 1) for _ in range(6)] for _ in range(300)]
    rows = processed(FaissNearestNeighbour(k=3, metric_type=0), [{"embedding": v} for v in vectors])
    for i, row in enumerate(rows):
        dots = sorted(
            (
                (sum(a * b for a, b in zip(vectors[i], v, strict=True)), j)
                for j, v in enumerate(vectors)
                if j != i
            ),
            reverse=True,
        )
        assert row["nn_indices"] == [j for _, j in dots[:3]]


def test_embedding_dedup_keeps_the_first_of_each_group() -> None:
    rows = [
        {"nn_indices": [1, 2], "nn_scores": [0.95, 0.1]},  # 0 and 1 are near duplicates
        {"nn_indices": [0, 2], "nn_scores": [0.95, 0.2]},
        {"nn_indices": [3, 0], "nn_scores": [0.5, 0.1]},
        {"nn_indices": [1, 2], "nn_scores": [0.92, 0.5]},  # 3 is near 1, which is dropped
    ]
    assert [r[KEEP] for r in processed(EmbeddingDedup(threshold=0.9), rows)] == [
        True,
        False,
        True,
        True,
    ]


def test_embedding_dedup_one_line_errors() -> None:
    with pytest.raises(ValueError, match="2 nn_indices and 1 nn_scores"):
        processed(EmbeddingDedup(), [{"nn_indices": [0, 1], "nn_scores": [1.0]}])
    with pytest.raises(ValueError, match="lists neighbour 5, but the input has 1 rows"):
        processed(EmbeddingDedup(), [{"nn_indices": [5], "nn_scores": [1.0]}])
    with pytest.raises(ValueError, match="'nn_scores' must hold a list"):
        processed(EmbeddingDedup(), [{"nn_indices": [0], "nn_scores": 1.0}])


def test_neighbours_then_dedup_in_a_pipeline() -> None:
    rng = random.Random(8)
    base = [[rng.gauss(0, 1) for _ in range(16)] for _ in range(20)]
    near = [[x + rng.gauss(0, 0.01) for x in base[i]] for i in range(5)]
    unit = [[x / sum(y * y for y in v) ** 0.5 for x in v] for v in base + near]
    data = [{"id": i, "embedding": v} for i, v in enumerate(unit)]  # inner product = cosine
    with Pipeline(name="embedding-dedup") as pipeline:
        load = LoadDataFromDicts(data=data, batch_size=6)
        nn = FaissNearestNeighbour(name="nn", k=3, metric_type=0)
        load >> nn >> EmbeddingDedup(name="dedup", threshold=0.9)

    rows = list(pipeline.run(progress=False)["default"]["train"])
    assert [r[KEEP] for r in rows] == [True] * 20 + [False] * 5


def test_an_approximate_index_says_what_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "faiss", None)
    with pytest.raises(ImportError, match="pip install faiss-cpu"):
        FaissNearestNeighbour(string_factory="IVF300_HNSW32,Flat").load()
    with pytest.raises(ValueError, match="not supported yet"):
        FaissNearestNeighbour(device=0).load()
