"""Steps that embed text, and steps over an embeddings column (nearest neighbours)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator, Sequence
from typing import Any

from pydantic import Field, PrivateAttr

from synthflow.models.callpath.calls import CallPath, LLMCallStats
from synthflow.models.embeddings.base import Embeddings
from synthflow.runtime_parameters import RuntimeParameter
from synthflow.steps._rows import column
from synthflow.steps._vectors import embedding_matrix
from synthflow.steps.base import GlobalStep, Row, Step, StepInput

METRIC_INNER_PRODUCT = 0  # faiss.METRIC_INNER_PRODUCT
METRIC_L2 = 1  # faiss.METRIC_L2
_BLOCK_SCORES = 1 << 24  # query rows x indexed rows scored at once (64 MB of float32)


class FaissNearestNeighbour(GlobalStep):
    """Finds each row's ``k`` nearest neighbours among the rows, by their embeddings (the row
    itself left out), as ``EmbeddingDedup`` reads them.

    An exact search in numpy by default (time grows with rows squared: fine to ~100k rows).
    With ``string_factory`` (an approximate faiss index such as "IVF300_HNSW32,Flat") it uses
    faiss: ``pip install faiss-cpu``.

    Input columns: ``embedding`` (list of float).
    Output columns: ``nn_indices`` (list of int: positions of the neighbours in the input),
    ``nn_scores`` (list of float: inner products with ``metric_type=0``, most similar first;
    squared L2 distances otherwise, nearest first, as faiss gives them).

    Fields: ``k`` (default 1), ``metric_type`` (0 inner product, 1 or default: L2),
    ``string_factory``, ``train_size`` (vectors to train a faiss index on), ``search_batch_size``
    (queries per faiss search), ``device`` (GPUs are not supported yet: leave unset).
    """

    device: RuntimeParameter[int | list[int] | None] = Field(
        default=None, description="GPU devices for faiss (not supported yet: leave unset)."
    )
    string_factory: RuntimeParameter[str | None] = Field(
        default=None, description="A faiss index factory string; default: exact search."
    )
    metric_type: RuntimeParameter[int | None] = Field(
        default=None, description="0: inner product; 1 or None: L2 distance (faiss's METRIC_*)."
    )
    k: RuntimeParameter[int] = Field(default=1, ge=1, description="Neighbours per row.")
    search_batch_size: RuntimeParameter[int] = Field(
        default=50, ge=1, description="Queries per faiss search."
    )
    train_size: RuntimeParameter[int | None] = Field(
        default=None, ge=1, description="Vectors to train a faiss index on, if it needs it."
    )

    @property
    def inputs(self) -> list[str]:
        return ["embedding"]

    @property
    def outputs(self) -> list[str]:
        return ["nn_indices", "nn_scores"]

    def load(self) -> None:
        if self.device is not None:
            raise ValueError(
                "FaissNearestNeighbour: device (GPU search) is not supported yet; leave it unset"
            )
        if self.metric_type not in (None, METRIC_INNER_PRODUCT, METRIC_L2):
            raise ValueError(
                f"FaissNearestNeighbour: metric_type {self.metric_type} is not supported; use 0 "
                "(inner product) or 1 (L2)"
            )
        if self.string_factory not in (None, "Flat"):
            try:
                _faiss()
            except ImportError:
                raise ImportError(
                    "FaissNearestNeighbour with a string_factory needs faiss: pip install "
                    "faiss-cpu (or leave string_factory unset for an exact search in numpy)"
                ) from None

    def process(self, inputs: Sequence[Row]) -> Iterator[list[Row]]:
        self.load()
        vectors = (column("FaissNearestNeighbour", row, "embedding") for row in inputs)
        matrix = embedding_matrix("FaissNearestNeighbour", vectors, len(inputs), False)
        k = min(self.k, len(inputs) - 1)
        if self.string_factory in (None, "Flat"):
            indices, scores = self._exact(matrix, k)
        else:
            indices, scores = self._faiss(matrix, k)
        batch: list[Row] = []
        for i, row in enumerate(inputs):
            row["nn_indices"] = list(indices[i])
            row["nn_scores"] = list(scores[i])
            batch.append(row)
            if len(batch) == 1024:
                yield batch
                batch = []
        if batch:
            yield batch

    def _exact(self, x: Any, k: int) -> tuple[list[list[int]], list[list[float]]]:
        import numpy as np

        n = len(x)
        similar = self.metric_type == METRIC_INNER_PRODUCT
        indices = np.empty((n, max(k, 0)), dtype=np.int64)
        scores = np.empty((n, max(k, 0)), dtype=np.float32)
        if k <= 0:
            return indices.tolist(), scores.tolist()
        squares = (x * x).sum(axis=1)
        block = max(1, _BLOCK_SCORES // max(1, n))
        for lo in range(0, n, block):
            dots = x[lo : lo + block] @ x.T
            if similar:
                values = dots
            else:  # squared L2 distance, smaller is nearer: negate to rank by largest
                values = -(squares[lo : lo + block, None] - 2 * dots + squares[None, :])
            rows = np.arange(len(values))
            values[rows, lo + rows] = -np.inf  # not its own neighbour
            top = np.argpartition(-values, k - 1, axis=1)[:, :k]
            ranked = np.take_along_axis(values, top, axis=1)
            order = np.argsort(-ranked, axis=1, kind="stable")
            indices[lo : lo + block] = np.take_along_axis(top, order, axis=1)
            best = np.take_along_axis(ranked, order, axis=1)
            scores[lo : lo + block] = best if similar else np.maximum(-best, 0)
        return indices.tolist(), scores.tolist()

    def _faiss(self, x: Any, k: int) -> tuple[list[list[int]], list[list[float]]]:
        faiss = _faiss()
        metric = faiss.METRIC_INNER_PRODUCT if self.metric_type == 0 else faiss.METRIC_L2
        index = faiss.index_factory(x.shape[1], self.string_factory, metric)
        if not index.is_trained:
            index.train(x[: self.train_size] if self.train_size else x)
        index.add(x)
        found: list[list[int]] = []
        found_scores: list[list[float]] = []
        for lo in range(0, len(x), self.search_batch_size):
            queries = x[lo : lo + self.search_batch_size]
            scores, indices = index.search(queries, k + 1)
            for i in range(len(queries)):
                # Not the row itself, nor faiss's -1 for "no more neighbours found".
                pairs = [
                    (int(j), float(s))
                    for j, s in zip(indices[i], scores[i], strict=True)
                    if j != lo + i and j >= 0
                ][:k]
                found.append([j for j, _ in pairs])
                found_scores.append([s for _, s in pairs])
        return found, found_scores


def _faiss() -> Any:
    import importlib

    return importlib.import_module("faiss")  # an optional extra, without type stubs


class EmbeddingGeneration(Step):
    """Embeds the ``text`` column with an ``Embeddings`` model, a batch per call.

    A null text gets a null embedding (it is not sent to the model).

    Input columns:
        - text (str | None): the text to embed.

    Output columns:
        - embedding (list[float] | None): its vector.
        - model_name (str): the embedding model.

    Runtime parameters: ``input_batch_size`` (texts per call) and the embedding model's.

    In a run, the calls take the LLM call path: a model over HTTP has its vectors kept in the
    run's response cache (per text: a re-run or another row with the same text pays nothing;
    ``use_cache=False`` turns it off), and every model's requests, tokens, cost and latency
    count in ``distiset.stats[step].llm`` and against ``max_cost`` / ``max_tokens``.
    """

    embeddings: Embeddings = Field(description="The embedding model.")
    use_cache: bool = Field(
        default=True, description="Keep the vectors of a model over HTTP in the response cache."
    )

    _calls: CallPath | None = PrivateAttr(default=None)
    _call_stats: LLMCallStats = PrivateAttr(default_factory=LLMCallStats)

    def bind_calls(self, calls: CallPath | None, stats: LLMCallStats) -> None:
        """Route the model's calls through a run's cache and accounting (engine use)."""
        self._calls, self._call_stats = calls, stats

    def uses_response_cache(self) -> bool:
        return self.use_cache and self.embeddings.cacheable

    @property
    def inputs(self) -> list[str]:
        return ["text"]

    @property
    def outputs(self) -> list[str]:
        return ["embedding", "model_name"]

    def load(self) -> None:
        self.embeddings.load()

    def unload(self) -> None:
        self.embeddings.unload()

    async def process(self, inputs: StepInput) -> AsyncIterator[list[Row]]:
        texts = [row["text"] for row in inputs]
        for text in texts:
            if text is not None and not isinstance(text, str):
                raise TypeError(f"'text' must be a string, got {type(text).__name__}")
        positions = [i for i, text in enumerate(texts) if text is not None]
        wanted = [texts[i] for i in positions]
        vectors: list[Any] = []
        if not positions:
            pass
        elif self._calls is None:
            vectors = await self.embeddings.aencode(wanted)
        else:
            vectors = await self._calls.embed(
                self.embeddings, wanted, self._call_stats, use_cache=self.use_cache
            )
        if len(vectors) != len(positions):
            raise ValueError(
                f"{type(self.embeddings).__name__} returned {len(vectors)} embeddings for "
                f"{len(positions)} texts"
            )
        by_position = dict(zip(positions, vectors, strict=True))
        model_name = self.embeddings.model_name
        for i, row in enumerate(inputs):
            row["embedding"] = by_position.get(i)
            row["model_name"] = model_name
        yield list(inputs)
