"""UMAP and DBSCAN (the clustering extra): standalone, in a pipeline, and their errors."""

from __future__ import annotations

import importlib.util
import random
import sys
from collections.abc import Callable
from typing import Any

import pytest

from synthflow.checks import StepSpec, parametrize_with_checks
from synthflow.pipeline import Pipeline
from synthflow.steps import DBSCAN, UMAP, LoadDataFromDicts

HAS_SKLEARN = importlib.util.find_spec("sklearn") is not None
HAS_UMAP = importlib.util.find_spec("umap") is not None
needs_sklearn = pytest.mark.skipif(
    not HAS_SKLEARN, reason="needs scikit-learn: pip install 'synthflow[clustering]'"
)
needs_umap = pytest.mark.skipif(
    not (HAS_UMAP and HAS_SKLEARN), reason="needs umap-learn: pip install 'synthflow[clustering]'"
)


def blobs(per_blob: int = 30, dims: int = 8, seed: int = 0) -> list[dict[str, Any]]:
    """Three well separated groups of embeddings, each row knowing its group."""
    rng = random.Random(seed)
    rows = []
    for group in range(3):
        centre = [10.0 * group if d == group else 0.0 for d in range(dims)]
        for i in range(per_blob):
            embedding = [c + rng.gauss(0, 0.3) for c in centre]
            rows.append({"text": f"g{group}-{i}", "group": group, "embedding": embedding})
    rng.shuffle(rows)
    return rows


def same_partition(rows: list[dict[str, Any]]) -> bool:
    """The cluster labels split the rows exactly as their groups do."""
    by_group: dict[int, set[int]] = {}
    for row in rows:
        by_group.setdefault(row["group"], set()).add(row["cluster_label"])
    labels = [next(iter(s)) for s in by_group.values() if len(s) == 1]
    return len(labels) == 3 and len(set(labels)) == 3 and -1 not in labels


@needs_umap
def test_umap_then_dbscan_find_the_groups_in_a_pipeline() -> None:
    with Pipeline(name="clusters") as pipeline:
        load = LoadDataFromDicts(name="load", data=blobs(), batch_size=16)
        umap = UMAP(name="umap", n_components=2, random_state=0)
        dbscan = DBSCAN(name="dbscan", eps=1.0, min_samples=5)
        load >> umap >> dbscan
    rows = pipeline.run(progress=False, use_cache=False)["default"]["train"].to_list()

    assert len(rows) == 90
    assert all(len(row["projection"]) == 2 for row in rows)
    assert same_partition(rows)


@needs_umap
def test_the_whole_recipe_names_the_topics() -> None:
    from synthflow.steps.tasks import TextClustering
    from synthflow.testing import FunctionLLM

    def name(messages: Any) -> str:
        group = str(messages[-1]["content"]).split("Example 1:\n", 1)[1][:2]
        return f'{{"labels": "topic {group}"}}'

    with Pipeline(name="topics") as pipeline:
        load = LoadDataFromDicts(name="load", data=blobs())
        umap = UMAP(name="umap", random_state=0)
        dbscan = DBSCAN(name="dbscan", eps=1.0, min_samples=5)
        label = TextClustering(name="label", llm=FunctionLLM(fn=name), samples_per_cluster=3)
        load >> umap >> dbscan >> label
    rows = pipeline.run(progress=False, use_cache=False)["default"]["train"].to_list()

    assert {(row["group"], row["summary_label"]) for row in rows} == {
        (g, f'"topic g{g}"') for g in range(3)
    }


@needs_umap
def test_umap_standalone_projects_to_n_components_and_is_seeded() -> None:
    def project() -> list[list[float]]:
        step = UMAP(n_components=3, random_state=7, metric="cosine")
        step.load()
        return [row["projection"] for batch in step.process(blobs()) for row in batch]

    first = project()
    assert {len(p) for p in first} == {3}
    assert first == project()


@needs_sklearn
def test_dbscan_labels_dense_groups_and_noise() -> None:
    points = [[0.0, 0.0], [0.1, 0.0], [0.0, 0.1], [5.0, 5.0], [5.1, 5.0], [5.0, 5.1], [20.0, 0]]
    step = DBSCAN(eps=0.5, min_samples=3)
    step.load()
    out = [r for batch in step.process([{"projection": p} for p in points]) for r in batch]
    assert [r["cluster_label"] for r in out] == [0, 0, 0, 1, 1, 1, -1]
    assert all(type(r["cluster_label"]) is int for r in out)


@needs_sklearn
def test_projections_that_are_not_vectors_get_one_line() -> None:
    step = DBSCAN()
    step.load()
    with pytest.raises(ValueError, match="column 'projection' must hold lists of numbers"):
        list(step.process([{"projection": [1.0, 2.0]}, {"projection": "x"}]))


@needs_umap
def test_too_few_rows_for_umap_gets_one_line() -> None:
    step = UMAP()
    step.load()
    with pytest.raises(ValueError, match="give it more rows than n_components"):
        list(step.process([{"embedding": [1.0, 2.0]}, {"embedding": [2.0, 1.0]}]))


def test_a_missing_extra_says_what_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "umap", None)  # what an import finds when it is missing
    with pytest.raises(ImportError) as info:
        UMAP().load()
    assert str(info.value) == (
        "UMAP needs umap-learn: pip install 'synthflow[clustering]' (or pip install umap-learn)"
    )


SPECS = []
if HAS_UMAP and HAS_SKLEARN:
    SPECS.append(StepSpec(UMAP, {"random_state": 0}, rows=blobs(per_blob=6)))
if HAS_SKLEARN:
    SPECS.append(
        StepSpec(DBSCAN, {"min_samples": 2}, rows=[{"projection": [0.0, 0.0]}] * 3),
    )


@pytest.mark.skipif(not SPECS, reason="needs scikit-learn: pip install 'synthflow[clustering]'")
@parametrize_with_checks(SPECS or [StepSpec(DBSCAN)])
def test_conformance(spec: StepSpec, check: Callable[[StepSpec], None]) -> None:
    check(spec)
