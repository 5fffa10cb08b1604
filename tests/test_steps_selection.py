"""DeitaFiltering: score-first, diversity-aware selection, standalone and in a pipeline."""

from __future__ import annotations

import math
import random
from typing import Any

import pytest

from synthflow.pipeline import Pipeline
from synthflow.serialization import to_text
from synthflow.steps import DeitaFiltering, LoadDataFromDicts


def selected(step: DeitaFiltering, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    step.load()
    return [row for batch in step.process(rows) for row in batch]


def row(quality: Any, complexity: Any, embedding: Any, **more: Any) -> dict[str, Any]:
    return {
        "evol_instruction_score": complexity,
        "evol_response_score": quality,
        "embedding": embedding,
        **more,
    }


def test_the_rows_of_distilabels_docs_keep_the_best_scored_first() -> None:
    rows = [
        row(0.5, 0.5, [-8.12729941, -5.24642847, -6.34003029]),
        row(0.6, 0.6, [2.99329242, 0.7800932, 0.7799726]),
        row(0.7, 0.7, [10.29041806, 14.33088073, 13.00557506]),
    ]
    (best,) = selected(DeitaFiltering(data_budget=1), rows)
    assert best["deita_score"] == pytest.approx(0.49)
    assert best["deita_score_computed_with"] == ["evol_instruction_score", "evol_response_score"]
    assert best["nearest_neighbor_distance"] is None  # no other kept row


def test_a_row_too_close_to_a_better_kept_row_is_skipped_for_the_next() -> None:
    rows = [
        row(5, 5, [1.0, 0.0], id="best"),
        row(4, 5, [0.99, 0.05], id="near the best"),
        row(3, 5, [0.0, 1.0], id="far"),
        row(2, 5, [-1.0, 0.0], id="opposite"),
    ]
    kept = selected(DeitaFiltering(data_budget=2, diversity_threshold=0.5), rows)
    assert [r["id"] for r in kept] == ["best", "far"]
    assert [r["nearest_neighbor_distance"] for r in kept] == [pytest.approx(1.0)] * 2
    everything = selected(DeitaFiltering(diversity_threshold=0.5), rows)
    assert [r["id"] for r in everything] == ["best", "far", "opposite"]


def test_kept_rows_are_each_far_enough_from_all_kept_before_them() -> None:
    rng = random.Random(1)
    rows = [
        row(rng.randint(1, 6), rng.randint(1, 6), [rng.gauss(0, 1) for _ in range(16)], id=i)
        for i in range(700)  # more than one block of candidates
    ]
    kept = selected(DeitaFiltering(data_budget=60, diversity_threshold=0.4), rows)
    assert len(kept) == 60
    scores = [r["deita_score"] for r in kept]
    assert scores == sorted(scores, reverse=True)

    def distance(a: list[float], b: list[float]) -> float:
        dot = sum(x * y for x, y in zip(a, b, strict=True))
        return 1 - dot / math.sqrt(sum(x * x for x in a) * sum(y * y for y in b))

    for i, later in enumerate(kept):
        assert all(distance(later["embedding"], r["embedding"]) >= 0.4 for r in kept[:i])
    # Greedy: a row ranked above the last kept one was passed over only for being too close
    # to a kept row ranked above it.
    ranked = sorted(rows, key=lambda r: -r["evol_instruction_score"] * r["evol_response_score"])
    kept_ids = [r["id"] for r in kept]
    last = [r["id"] for r in ranked].index(kept_ids[-1])
    for position, candidate in enumerate(ranked[:last]):
        if candidate["id"] in kept_ids:
            continue
        above = [r for r in ranked[:position] if r["id"] in kept_ids]
        assert any(distance(candidate["embedding"], r["embedding"]) < 0.4 for r in above)


def test_missing_scores_fall_back_as_in_distilabel_and_rows_without_embedding_are_left_out() -> (
    None
):
    rows = [
        row(None, 3, [1.0, 0.0], id="complexity only"),
        row(2, None, [0.0, 1.0], id="quality only"),
        row(None, None, [-1.0, 0.0], id="no score"),
        row(9, 9, None, id="no embedding"),
    ]
    kept = selected(DeitaFiltering(diversity_threshold=0.5), rows)
    assert [(r["id"], r["deita_score"], r["deita_score_computed_with"]) for r in kept] == [
        ("complexity only", 3, ["evol_instruction_score"]),
        ("quality only", 2, ["evol_response_score"]),
        ("no score", 0, []),
    ]


def test_manhattan_distance_without_normalising() -> None:
    rows = [row(3, 3, [0.0, 0.0]), row(2, 2, [0.5, 0.5]), row(1, 1, [2.0, 0.0])]
    step = DeitaFiltering(distance_metric="manhattan", normalize_embeddings=False)
    step.diversity_threshold = 1.5
    kept = selected(step, rows)
    assert [r["deita_score"] for r in kept] == [9, 1]
    assert [r["nearest_neighbor_distance"] for r in kept] == [2.0, 2.0]


def test_one_line_errors() -> None:
    with pytest.raises(
        ValueError, match="embeddings must all have one size; got 3 in row 1 and 2 before"
    ):
        selected(DeitaFiltering(), [row(1, 1, [1.0, 0.0]), row(1, 1, [1.0, 0.0, 0.0])])
    with pytest.raises(ValueError, match="'embedding' must hold a list of numbers, got str"):
        selected(DeitaFiltering(), [row(1, 1, "vector")])
    with pytest.raises(ValueError, match="'evol_response_score' must hold a number, got str"):
        selected(DeitaFiltering(), [row("high", 1, [1.0])])
    with pytest.raises(ValueError, match="no column 'embedding'"):
        selected(DeitaFiltering(), [{"evol_instruction_score": 1, "evol_response_score": 1}])


def test_in_a_pipeline_with_runtime_parameters_and_yaml_round_trip() -> None:
    rng = random.Random(2)
    data = [
        row(rng.randint(1, 5), rng.randint(1, 5), [rng.gauss(0, 1) for _ in range(4)], id=i)
        for i in range(50)
    ]
    with Pipeline(name="deita") as pipeline:
        load = LoadDataFromDicts(data=data, batch_size=8)
        load >> DeitaFiltering(name="deita")

    loaded = Pipeline.from_yaml(to_text(pipeline.dump(), "yaml"))
    assert loaded.signature == pipeline.signature
    params = {"deita": {"data_budget": 10, "diversity_threshold": 0.3}}
    rows = list(loaded.run(progress=False, parameters=params)["default"]["train"])
    assert len(rows) == 10
    assert [r["deita_score"] for r in rows] == sorted(
        (r["deita_score"] for r in rows), reverse=True
    )
    assert all(r["nearest_neighbor_distance"] >= 0.3 for r in rows)
