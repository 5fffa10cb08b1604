"""Steps that find near-duplicate rows: by MinHash over the text, or by embedding distance."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any, Literal

from pydantic import Field, PrivateAttr, model_validator

from synthflow.runtime_parameters import RuntimeParameter
from synthflow.steps._rows import column, list_column
from synthflow.steps.base import Executor, GlobalStep, Row, Step, StepInput

KEEP_MINHASH = "keep_row_after_minhash_filtering"


class MinHashDedup(Step):
    """Marks near-duplicate texts with MinHash and LSH, as rows stream through: a row is a
    duplicate when it is a candidate of a row kept before it (LSH over MinHash signatures of
    its tokens, tuned so that texts whose token sets have a Jaccard similarity above
    ``threshold`` are found). Rows are marked, not dropped: filter on the output column.

    The first of a group of near duplicates is kept, in source order. Memory holds no text:
    per kept row, one 64-bit key per LSH band (5 bands at the default threshold: 40 bytes).
    Signatures are computed with numpy for a whole batch at once; larger ``input_batch_size``
    values are faster. A null text is kept and compared with nothing.

    References: Broder, "On the resemblance and containment of documents" (1997), for MinHash;
    Leskovec, Rajaraman and Ullman, "Mining of Massive Datasets", ch. 3, for LSH banding.

    Input columns: ``text`` (str).
    Output columns: ``keep_row_after_minhash_filtering`` (bool: False for a near duplicate of
    an earlier row).

    Fields: ``tokenizer`` ("words": words and punctuation marks, close to nltk's
    word_tokenize; "ngrams": character ``n``-grams), ``n`` (default 5), ``threshold`` (Jaccard
    similarity, default 0.9; lower finds more duplicates), ``num_perm`` (MinHash permutations,
    default 128), ``seed`` (of the permutations, default 1), ``storage`` ("dict"; "disk" is
    accepted for distilabel's pipelines and keeps the same compact index in memory).
    """

    num_perm: int = Field(default=128, ge=2, description="Number of MinHash permutations.")
    seed: int = Field(default=1, description="Seed of the MinHash permutations.")
    tokenizer: Literal["words", "ngrams"] = Field(
        default="words", description="'words' (words and punctuation) or character 'ngrams'."
    )
    n: int | None = Field(
        default=5, ge=1, description="Characters per n-gram, for tokenizer='ngrams'."
    )
    threshold: float = Field(
        default=0.9,
        gt=0.0,
        lt=1.0,
        description="Jaccard similarity above which texts are near duplicates.",
    )
    storage: Literal["dict", "disk"] = Field(
        default="dict",
        description="Where the index lives; 'disk' is accepted for distilabel's pipelines and "
        "keeps the same compact index in memory (40 bytes per kept row).",
    )
    executor: Executor = Field(
        default="thread",
        description="Where process runs; 'thread' by default (numpy releases the GIL). The "
        "index lives in the one worker, so workers must stay 1.",
    )
    input_batch_size: RuntimeParameter[int] = Field(
        default=1000, ge=1, description="Rows per batch; larger batches hash faster."
    )

    _index: Any = PrivateAttr(default=None)
    _permutations: Any = PrivateAttr(default=None)
    _bands: int = PrivateAttr(default=0)

    @model_validator(mode="after")
    def _check(self) -> MinHashDedup:
        if self.workers != 1:
            raise ValueError(
                "MinHashDedup keeps one index of the rows it kept, in one worker; set workers=1"
            )
        if self.tokenizer == "ngrams" and self.n is None:
            raise ValueError("tokenizer='ngrams' needs n, the characters per n-gram (e.g. n=5)")
        return self

    @property
    def inputs(self) -> list[str]:
        return ["text"]

    @property
    def outputs(self) -> list[str]:
        return [KEEP_MINHASH]

    def load(self) -> None:
        from synthflow.steps._minhash import BandIndex, Permutations, lsh_parameters

        bands, rows = lsh_parameters(self.threshold, self.num_perm)
        self._bands = bands
        self._permutations = Permutations(bands * rows, rows, self.seed)
        self._index = BandIndex(bands)

    def unload(self) -> None:
        self._index = self._permutations = None

    def process(self, inputs: StepInput) -> Iterator[list[Row]]:
        from synthflow.steps._minhash import first_of_each_group, token_hashes

        if self._index is None:
            self.load()
        texts: list[str] = []
        compared: list[int] = []
        for i, row in enumerate(inputs):
            text = column("MinHashDedup", row, "text")
            if text is None:
                continue
            if not isinstance(text, str):
                raise ValueError(
                    f"MinHashDedup: column 'text' must hold text, got {type(text).__name__}; "
                    "map a text column to it with input_mappings={'text': '<column>'}"
                )
            texts.append(text)
            compared.append(i)
        keep = [True] * len(inputs)
        if texts:
            hashes, bounds = token_hashes(texts, self.tokenizer, self.n or 5)
            signatures = self._permutations.signatures(hashes, bounds)
            keys = self._permutations.band_keys(signatures, self._bands)
            kept = first_of_each_group(keys, ~self._index.contains(keys))
            self._index.add(keys[kept])
            for i, flag in zip(compared, kept.tolist(), strict=True):
                keep[i] = flag
        for row, flag in zip(inputs, keep, strict=True):
            row[KEEP_MINHASH] = flag
        yield inputs


KEEP_EMBEDDING = "keep_row_after_embedding_filtering"


class EmbeddingDedup(GlobalStep):
    """Marks rows whose embedding is too similar to an earlier kept row's, from the nearest
    neighbours ``FaissNearestNeighbour`` found: row ``i`` is a duplicate when a neighbour
    ``j`` (a row index of the input) with a score above ``threshold`` is a row kept before it,
    or lists ``i`` among its own neighbours above the threshold. The first row of each group of
    near duplicates is kept. Scores are similarities (inner products of normalised embeddings:
    ``metric_type=0`` in ``FaissNearestNeighbour``). Rows are marked, not dropped.

    (distilabel marks every neighbour above the threshold, so both rows of a similar pair are
    dropped; here the earlier one stays.)

    Input columns: ``nn_indices`` (list of int), ``nn_scores`` (list of float).
    Output columns: ``keep_row_after_embedding_filtering`` (bool).

    Fields: ``threshold`` (default 0.9: pairs more similar than this are duplicates).
    """

    threshold: RuntimeParameter[float] = Field(
        default=0.9, description="Similarity score above which two rows are duplicates."
    )

    @property
    def inputs(self) -> list[str]:
        return ["nn_scores", "nn_indices"]

    @property
    def outputs(self) -> list[str]:
        return [KEEP_EMBEDDING]

    def process(self, inputs: Sequence[Row]) -> Iterator[list[Row]]:
        # One pass to find, for each row, the earlier rows it is too close to (either side may
        # have listed the other); then one greedy pass in order. Only index pairs are kept.
        close_to_earlier: dict[int, list[int]] = {}
        for i, row in enumerate(inputs):
            indices = list_column("EmbeddingDedup", row, "nn_indices")
            scores = list_column("EmbeddingDedup", row, "nn_scores")
            if len(indices) != len(scores):
                raise ValueError(
                    f"EmbeddingDedup: row {i} has {len(indices)} nn_indices and {len(scores)} "
                    "nn_scores; they must pair up"
                )
            for j, score in zip(indices, scores, strict=True):
                if score is None or score <= self.threshold or j == i:
                    continue
                if not 0 <= j < len(inputs):
                    raise ValueError(
                        f"EmbeddingDedup: row {i} lists neighbour {j}, but the input has "
                        f"{len(inputs)} rows; nn_indices must be row positions of the input"
                    )
                early, late = min(i, j), max(i, j)
                close_to_earlier.setdefault(late, []).append(early)
        kept = [True] * len(inputs)
        for late in sorted(close_to_earlier):
            kept[late] = not any(kept[early] for early in close_to_earlier[late])
        batch: list[Row] = []
        for row, keep in zip(inputs, kept, strict=True):
            row[KEEP_EMBEDDING] = keep
            batch.append(row)
            if len(batch) == 1024:
                yield batch
                batch = []
        if batch:
            yield batch
