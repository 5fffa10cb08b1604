"""Names for topic clusters: ``TextClustering`` asks an LLM for the labels of each cluster."""

from __future__ import annotations

import json
import random
from collections.abc import AsyncIterator, Iterator, Sequence
from typing import Any

from pydantic import Field, PositiveInt

from synthflow._sync import loop_is_running, run_sync
from synthflow.errors import LLMError, OutputParseError
from synthflow.runtime_parameters import RuntimeParameter
from synthflow.steps._rows import column
from synthflow.steps.base import FAILED, ROW_ID, GlobalStep, Row, StepInput, StepOutput
from synthflow.steps.tasks.base import ERROR_COLUMN
from synthflow.steps.tasks.text_classification import TextClassification

_NOISE = -1  # DBSCAN's label for rows in no cluster
_OUT = 1024


class TextClustering(TextClassification, GlobalStep):
    """Names each cluster of texts with labels from an LLM, and gives every row its cluster's
    labels: the last step of embeddings -> ``UMAP`` -> ``DBSCAN`` -> ``TextClustering``, the
    recipe of Hugging Face's text-clustering project (github.com/huggingface/text-clustering).

    It sees all the rows at once. For each cluster it draws up to ``samples_per_cluster`` of
    its texts (the same ones on every run, so answers are cached) and asks the LLM, with
    ``TextClassification``'s prompt and fields (``n``, ``context``, ``available_labels``,
    ``query_title``, ...), for the labels that the examples share. Rows in no cluster
    (``cluster_label`` -1) get ``default_label``. A cluster whose answer can't be read leaves its
    rows with a null ``summary_label`` and the reason in ``synthflow_error``.

    Input columns: ``text`` (str), ``projection`` (list of float, e.g. from ``UMAP``; read by
    nothing here, kept for distilabel's pipelines), ``cluster_label`` (int, e.g. from
    ``DBSCAN``; -1 for none).
    Output columns: ``summary_label`` (str: the cluster's label, or list of ``n`` labels, as
    JSON, as distilabel writes it), ``model_name`` (str).

    Fields: ``samples_per_cluster`` (examples shown per cluster, default 10), ``savefig``
    (accepted for distilabel's pipelines; no figure is drawn), and ``TextClassification``'s.
    Used alone, ``process(rows)`` works as for any task (``task.load()`` first).
    """

    samples_per_cluster: PositiveInt = Field(
        default=10, description="Examples of each cluster shown to the LLM."
    )
    savefig: RuntimeParameter[bool] = Field(
        default=False, description="Accepted for distilabel's pipelines; no figure is drawn."
    )

    @property
    def inputs(self) -> list[str]:
        return ["text", "projection", "cluster_label"]

    @property
    def outputs(self) -> list[str]:
        return ["summary_label", "model_name"]

    def process(self, inputs: StepInput) -> StepOutput:  # type: ignore[override]
        # In a run the engine drives the async generator on its loop (cache and accounting);
        # used alone, the rows' calls run on a private loop, as for any task.
        if loop_is_running():
            return self._label(inputs)
        return self._label_sync(inputs)

    def _label_sync(self, inputs: Sequence[Row]) -> Iterator[list[Row]]:
        async def everything() -> list[list[Row]]:
            try:
                return [batch async for batch in self._label(inputs)]
            finally:
                await self.llm.aclose()

        for batch in run_sync(everything):
            yield [row for row in batch if self._as_alone(row)]

    def _as_alone(self, row: Row) -> bool:
        """Applies ``on_error`` to a failed row as a task used alone does; False: drop it."""
        message = row.pop(FAILED, None)
        if message is None:
            return True
        if self.on_error == "fail":
            raise ValueError(f"TextClustering: {message}")
        row[ERROR_COLUMN] = f"{self.name}: {message}"
        return self.on_error == "null"

    async def _label(self, inputs: Sequence[Row]) -> AsyncIterator[list[Row]]:
        members: dict[int, list[int]] = {}
        texts: list[Any] = []
        for i, row in enumerate(inputs):  # one pass: a spilled input is a file read in order
            label = column("TextClustering", row, "cluster_label")
            if isinstance(label, bool) or not isinstance(label, int):
                raise ValueError(
                    f"TextClustering: column 'cluster_label' must hold an int (DBSCAN's output), "
                    f"got {type(label).__name__}"
                )
            members.setdefault(label, []).append(i)
            texts.append(column("TextClustering", row, "text"))
        summaries: dict[int, Any] = {_NOISE: json.dumps(self.default_label)}
        failures: dict[int, str] = {}
        for label in sorted(c for c in members if c != _NOISE):
            picked = sorted(
                random.Random(label).sample(
                    members[label], min(self.samples_per_cluster, len(members[label]))
                )
            )
            examples = "\n\n".join(
                f"Example {k}:\n{texts[i]}" for k, i in enumerate(picked, start=1)
            )
            request: Row = {"text": examples, ROW_ID: label}
            try:
                result = await self.generate(request)
                labels = self.format_output(result.generations[0], request)["labels"]
                summaries[label] = json.dumps(labels)
            except (LLMError, OutputParseError) as exc:
                if isinstance(exc, LLMError) and exc.fatal:
                    raise
                summaries[label] = None
                failures[label] = f"cluster {label}: {type(exc).__name__}: {exc}"
        model_name = self.llm.model_name
        batch: list[Row] = []
        for row in inputs:
            label = row["cluster_label"]
            row["summary_label"] = summaries[label]
            row["model_name"] = model_name
            if label in failures:
                row[FAILED] = failures[label]
            batch.append(row)
            if len(batch) == _OUT:
                yield batch
                batch = []
        if batch:
            yield batch
