"""Steps that find topic clusters: ``UMAP`` projects embeddings, ``DBSCAN`` clusters the
projections (``TextClustering``, the task that names the clusters, is in ``tasks``).

Both need the ``clustering`` extra: ``pip install 'synthflow[clustering]'`` (scikit-learn and
umap-learn).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

from pydantic import Field

from synthflow.runtime_parameters import RuntimeParameter
from synthflow.steps._rows import column
from synthflow.steps._vectors import embedding_matrix
from synthflow.steps.base import GlobalStep, Row

_OUT = 1024  # rows per yielded batch


def _import(step: str, module: str, package: str) -> Any:
    import importlib
    import warnings

    try:
        with warnings.catch_warnings():  # umap-learn warns when TensorFlow is missing
            warnings.simplefilter("ignore", ImportWarning)
            return importlib.import_module(module)
    except ImportError:
        raise ImportError(
            f"{step} needs {package}: pip install 'synthflow[clustering]' "
            f"(or pip install {package})"
        ) from None


def _batches(rows: list[Row]) -> Iterator[list[Row]]:
    for start in range(0, len(rows), _OUT):
        yield rows[start : start + _OUT]


class UMAP(GlobalStep):
    """Projects every row's embedding to ``n_components`` dimensions with UMAP, so that nearby
    texts stay nearby (for clustering, or a 2-D map of the data).

    From McInnes, Healy and Melville, "UMAP: Uniform Manifold Approximation and Projection for
    Dimension Reduction" (arXiv:1802.03426); runs ``umap-learn`` over all the rows at once
    (memory grows with rows x dimensions). Needs ``pip install 'synthflow[clustering]'``.

    Input columns: ``embedding`` (list of float).
    Output columns: ``projection`` (list of ``n_components`` floats).

    Fields (runtime parameters): ``n_components`` (default 2), ``metric`` (default
    ``"euclidean"``; any of umap-learn's, e.g. ``"cosine"``), ``n_jobs`` (default 8),
    ``random_state`` (a seed for the same projection on every run; default none, which is
    faster but varies).
    """

    n_components: RuntimeParameter[int] = Field(
        default=2, ge=1, description="Dimensions of the projection."
    )
    metric: RuntimeParameter[str] = Field(
        default="euclidean", description="Distance between embeddings (umap-learn's metrics)."
    )
    n_jobs: RuntimeParameter[int] = Field(default=8, description="Parallel jobs.")
    random_state: RuntimeParameter[int | None] = Field(
        default=None, description="Seed; set it for the same projection on every run."
    )

    @property
    def inputs(self) -> list[str]:
        return ["embedding"]

    @property
    def outputs(self) -> list[str]:
        return ["projection"]

    def load(self) -> None:
        super().load()
        _import("UMAP", "umap", "umap-learn")

    def process(self, inputs: Sequence[Row]) -> Iterator[list[Row]]:
        rows = list(inputs)
        if not rows:
            return
        matrix = embedding_matrix(
            "UMAP", (column("UMAP", row, "embedding") for row in rows), len(rows), False
        )
        if len(rows) <= self.n_components + 1:
            raise ValueError(
                f"UMAP: {len(rows)} rows can't be projected to {self.n_components} dimensions; "
                "give it more rows than n_components + 1"
            )
        umap = _import("UMAP", "umap", "umap-learn")
        reducer = umap.UMAP(
            n_components=self.n_components,
            metric=self.metric,
            n_jobs=1 if self.random_state is not None else self.n_jobs,  # a seed needs one
            random_state=self.random_state,
            n_neighbors=min(15, len(rows) - 1),
        )
        projections = reducer.fit_transform(matrix)
        for row, projection in zip(rows, projections, strict=True):
            row["projection"] = [float(x) for x in projection]
        yield from _batches(rows)


class DBSCAN(GlobalStep):
    """Clusters the rows by their projections (e.g. from ``UMAP``) with DBSCAN: dense groups of
    points become clusters, numbered from 0; points in no dense group get -1 (noise).

    From Ester, Kriegel, Sander and Xu, "A Density-Based Algorithm for Discovering Clusters in
    Large Spatial Databases with Noise" (KDD 1996); runs scikit-learn's ``DBSCAN`` over all the
    rows at once. Needs ``pip install 'synthflow[clustering]'``.

    Input columns: ``projection`` (list of float).
    Output columns: ``cluster_label`` (int; -1 for noise).

    Fields (runtime parameters): ``eps`` (the largest distance between two neighbours, default
    0.3: the setting that matters most), ``min_samples`` (neighbours, itself included, that make
    a point a core point; default 30), ``metric`` (default ``"euclidean"``; any of
    scikit-learn's ``pairwise_distances`` metrics), ``n_jobs`` (default 8).
    """

    eps: RuntimeParameter[float] = Field(
        default=0.3, gt=0, description="The largest distance between two neighbours."
    )
    min_samples: RuntimeParameter[int] = Field(
        default=30, ge=1, description="Neighbours (itself included) that make a core point."
    )
    metric: RuntimeParameter[str] = Field(
        default="euclidean", description="Distance between projections (scikit-learn's)."
    )
    n_jobs: RuntimeParameter[int] = Field(default=8, description="Parallel jobs.")

    @property
    def inputs(self) -> list[str]:
        return ["projection"]

    @property
    def outputs(self) -> list[str]:
        return ["cluster_label"]

    def load(self) -> None:
        super().load()
        _import("DBSCAN", "sklearn.cluster", "scikit-learn")

    def process(self, inputs: Sequence[Row]) -> Iterator[list[Row]]:
        import numpy as np

        rows = list(inputs)
        if not rows:
            return
        vectors = [column("DBSCAN", row, "projection") for row in rows]
        sizes = {len(v) if isinstance(v, list | tuple) else -1 for v in vectors}
        if -1 in sizes or 0 in sizes or len(sizes) != 1:
            raise ValueError(
                "DBSCAN: column 'projection' must hold lists of numbers of one size (UMAP's "
                "output, or map another column with input_mappings={'projection': ...})"
            )
        cluster = _import("DBSCAN", "sklearn.cluster", "scikit-learn")
        model = cluster.DBSCAN(
            eps=self.eps, min_samples=self.min_samples, metric=self.metric, n_jobs=self.n_jobs
        )
        labels = model.fit_predict(np.asarray(vectors, dtype=np.float64))
        for row, label in zip(rows, labels, strict=True):
            row["cluster_label"] = int(label)
        yield from _batches(rows)
