"""Generator steps that load rows: inline, from a Hugging Face dataset, or from data files."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import orjson
from pydantic import Field, PrivateAttr, field_validator

from synthflow.audit import Exposure
from synthflow.errors import PipelineValidationError
from synthflow.exposure_rules import data_files_reads, hub_dataset_reads
from synthflow.runtime_parameters import GIVEN_LATER, RuntimeParameter
from synthflow.steps.base import Executor, GeneratorStep, Row
from synthflow.steps.resources import StepResources

if TYPE_CHECKING:
    from synthflow.pipeline.pipeline import Pipeline


def columns_of(rows: list[dict[str, Any]]) -> list[str]:
    """Every column of ``rows``, in the order they first appear."""
    seen: dict[str, None] = {}
    for row in rows:
        seen.update(dict.fromkeys(row))
    return list(seen)


class LoadDataFromDicts(GeneratorStep):
    """Yields the rows given inline. They are kept when the pipeline is saved to YAML/JSON."""

    data: list[dict[str, Any]] = Field(description="The rows, as dicts of column to value.")

    @field_validator("data")
    @classmethod
    def _not_empty(cls, data: list[dict[str, Any]]) -> list[dict[str, Any]]:
        if not data:
            raise ValueError("data must hold at least one row, e.g. data=[{'instruction': 'hi'}]")
        return data

    @property
    def outputs(self) -> list[str]:
        return columns_of(self.data)

    def process(self, offset: int = 0) -> Iterator[list[Row]]:
        for start in range(offset, len(self.data), self.batch_size):
            yield [dict(row) for row in self.data[start : start + self.batch_size]]


class _StreamedDataset(GeneratorStep):
    """Shared by the dataset loaders: streams a ``datasets`` dataset in batches, from a row
    offset, so a dataset of any size loads in constant memory and a resumed run skips ahead."""

    executor: Executor = Field(
        default="thread",
        description="Where reading runs; 'thread' by default, since reading files or the "
        "network blocks and would hold up the event loop.",
    )
    num_examples: RuntimeParameter[int | None] = Field(
        default=None, ge=1, description="Stop after this many rows; default: all of them."
    )
    columns: list[str] | None = Field(
        default=None,
        description="Columns to keep (and to declare to the steps after it); default: every "
        "column of the dataset, read from its first row.",
    )
    streaming: RuntimeParameter[bool] = Field(
        default=False,
        description="Accepted as distilabel's: synthflow always streams the rows, never loading "
        "the whole dataset first.",
    )
    storage_options: dict[str, Any] | None = Field(
        default=None,
        description="Options for the filesystem the data is on (fsspec), e.g. credentials.",
    )

    # (the source, the columns of its first row): runtime parameters may change the source.
    _first_row_columns: tuple[str, list[str]] | None = PrivateAttr(default=None)

    def _open(self) -> Any:
        """The dataset, as a ``datasets.IterableDataset``."""
        raise NotImplementedError

    def _source(self) -> str:
        """The dataset, in words, for error messages."""
        raise NotImplementedError

    def _storage(self) -> dict[str, Any]:
        return {"storage_options": self.storage_options} if self.storage_options else {}

    def _stream(self) -> Any:
        try:
            dataset = self._open()
        except Exception as exc:
            raise ValueError(
                f"can't load {self._source()}: {type(exc).__name__}: {_one_line(exc)}"
            ) from None
        return dataset.select_columns(self.columns) if self.columns else dataset

    @property
    def outputs(self) -> list[str]:
        if self.columns:
            return list(self.columns)
        source = self._source()
        if self._first_row_columns is None or self._first_row_columns[0] != source:
            try:  # the pipeline checks columns before it runs: read them from the first row
                first = next(iter(self._stream()), None)
            except Exception as exc:
                raise PipelineValidationError(f"step {self.name!r}: {_one_line(exc)}") from None
            self._first_row_columns = (source, list(first or {}))
        return list(self._first_row_columns[1])

    def process(self, offset: int = 0) -> Iterator[list[Row]]:
        dataset = self._stream()
        if offset:
            dataset = dataset.skip(offset)
        if self.num_examples is not None:
            dataset = dataset.take(max(0, self.num_examples - offset))
        batch: list[Row] = []
        for row in dataset:
            batch.append(dict(row))
            if len(batch) == self.batch_size:
                yield batch
                batch = []
        if batch:
            yield batch


class LoadDataFromHub(_StreamedDataset):
    """Streams a split of a Hugging Face dataset: a Hub repo id, or a local dataset directory.

    Rows are read as they are needed (``datasets`` streaming mode), never all downloaded first.
    Private and gated repos use your token ($HF_TOKEN or the saved ``hf auth login``).

    Output columns: the dataset's columns (or ``columns``).

    Runtime parameters: ``repo_id``, ``split``, ``config``, ``revision``, ``num_examples``
    (stop after this many rows), ``streaming`` (accepted; rows always stream) and
    ``batch_size``.
    """

    repo_id: RuntimeParameter[str] = Field(
        default=GIVEN_LATER,  # through run(parameters=...) or --param
        description="The dataset: a Hub repo id ('org/name') or a local directory.",
    )
    split: RuntimeParameter[str] = Field(default="train", description="The split to read.")
    config: RuntimeParameter[str | None] = Field(
        default=None, description="The dataset's configuration (subset), when it has several."
    )
    revision: RuntimeParameter[str | None] = Field(
        default=None, description="A branch, tag or commit of the repo; default: main."
    )

    def exposures(self, where: str) -> Iterator[Exposure]:
        return hub_dataset_reads(where, {"repo_id": self.repo_id}, {})

    def _open(self) -> Any:
        from datasets import load_dataset

        return load_dataset(
            self.repo_id,
            name=self.config,
            split=self.split,
            revision=self.revision,
            streaming=True,
            **self._storage(),
        )

    def _source(self) -> str:
        config = f", config {self.config!r}" if self.config else ""
        revision = f", revision {self.revision!r}" if self.revision else ""
        return f"dataset {self.repo_id!r} (split {self.split!r}{config}{revision})"


_FILE_TYPES = {".jsonl": "json", ".json": "json", ".csv": "csv", ".parquet": "parquet"}
_FILE_TYPES |= {".txt": "text", ".arrow": "arrow"}


class LoadDataFromFileSystem(_StreamedDataset):
    """Streams rows from data files: JSON Lines, JSON, CSV, Parquet, Arrow or text, given as
    paths or glob patterns (``data/*.jsonl``), local or any fsspec URL ``datasets`` reads.

    Output columns: the files' columns (or ``columns``).

    Runtime parameters: ``data_files``, ``filetype``, ``split``, ``num_examples`` (stop after
    this many rows), ``streaming`` (accepted; rows always stream) and ``batch_size``.
    """

    data_files: RuntimeParameter[str | list[str]] = Field(
        default=GIVEN_LATER,  # through run(parameters=...) or --param
        description="A path or glob pattern, or a list of them.",
    )
    filetype: RuntimeParameter[str | None] = Field(
        default=None,
        description="json, csv, parquet, arrow or text; default: from the files' extension.",
    )
    split: RuntimeParameter[str] = Field(
        default="train", description="The split: 'train' unless data_files maps splits to files."
    )

    def exposures(self, where: str) -> Iterator[Exposure]:
        return data_files_reads(where, {"data_files": self.data_files}, {})

    def _open(self) -> Any:
        from datasets import load_dataset

        return load_dataset(
            self._filetype(),
            data_files=self.data_files,
            split=self.split,
            streaming=True,
            **self._storage(),
        )

    def _filetype(self) -> str:
        if self.filetype:
            return self.filetype
        first = self.data_files if isinstance(self.data_files, str) else self.data_files[0]
        for extension, kind in _FILE_TYPES.items():
            if first.endswith(extension):
                return kind
        raise ValueError(
            f"can't tell the type of {first!r} from its extension; set filetype to json, csv, "
            "parquet, arrow or text"
        )

    def _source(self) -> str:
        return f"data files {self.data_files!r}"


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split())


class RowsOfDataset(GeneratorStep):
    """The source ``pipeline.run(dataset=...)`` puts before a pipeline's first steps: the rows of
    a list of dicts, a pandas DataFrame or a ``datasets.Dataset`` (read in batches, never
    copied whole). Not for building pipelines: it holds no data a pipeline file could keep."""

    _rows: Any = PrivateAttr(default=None)
    _columns: list[str] = PrivateAttr(default_factory=list)

    def model_post_init(self, context: Any, /) -> None:
        pass  # made by run(), never part of a pipeline being built

    @classmethod
    def of(cls, dataset: Any, name: str, batch_size: int = 50) -> RowsOfDataset:
        step = cls(name=name, batch_size=batch_size)
        if hasattr(dataset, "to_dict") and hasattr(dataset, "columns"):  # a pandas DataFrame
            dataset = dataset.to_dict("records")
        if isinstance(dataset, list):
            if not all(isinstance(row, dict) for row in dataset):
                raise TypeError("a dataset given as a list must hold dicts (one per row)")
            step._columns = list(dict.fromkeys(key for row in dataset for key in row))
        elif hasattr(dataset, "column_names") and hasattr(dataset, "iter"):  # datasets.Dataset
            step._columns = list(dataset.column_names)
        else:
            raise TypeError(
                "dataset must be a list of dicts, a pandas DataFrame or a datasets.Dataset, "
                f"got {type(dataset).__name__}"
            )
        step._rows = dataset
        return step

    @property
    def outputs(self) -> list[str]:
        return list(self._columns)

    def fingerprint(self) -> str:
        """A short hash of the rows, so that runs over different datasets keep apart."""
        fingerprint = getattr(self._rows, "_fingerprint", None)  # datasets keeps one
        if fingerprint is None:
            fingerprint = hashlib.sha256(orjson.dumps(self._rows, default=str)).hexdigest()
        return str(fingerprint)[:12]

    def process(self, offset: int = 0) -> Iterator[list[Row]]:
        rows = self._rows
        if isinstance(rows, list):
            for start in range(offset, len(rows), self.batch_size):
                yield [dict(row) for row in rows[start : start + self.batch_size]]
            return
        if offset:
            rows = rows.select(range(offset, len(rows)))
        for batch in rows.iter(batch_size=self.batch_size):  # columns of equal length
            names, columns = list(batch), list(batch.values())
            yield [dict(zip(names, values, strict=True)) for values in zip(*columns, strict=True)]


def make_generator_step(
    dataset: Any,
    pipeline: Pipeline | None = None,
    batch_size: int = 50,
    input_mappings: dict[str, str] | None = None,
    output_mappings: dict[str, str] | None = None,
    resources: StepResources | None = None,
    repo_id: str | None = None,
) -> LoadDataFromDicts:
    """A source step holding ``dataset``'s rows (distilabel's helper): a list of dicts, a pandas
    DataFrame or a ``datasets.Dataset``. The rows are kept inline, so the pipeline saves and
    loads with them. (``repo_id`` is accepted for distilabel's signature; the rows are never
    read from the Hub.)"""
    if hasattr(dataset, "to_dict") and hasattr(dataset, "columns"):  # a pandas DataFrame
        rows = dataset.to_dict("records")
    elif hasattr(dataset, "column_names") and hasattr(dataset, "to_list"):  # datasets.Dataset
        rows = dataset.to_list()
    elif isinstance(dataset, list) and all(isinstance(row, dict) for row in dataset):
        rows = dataset
    else:
        raise TypeError(
            "make_generator_step takes a list of dicts, a pandas DataFrame or a "
            f"datasets.Dataset, got {type(dataset).__name__}"
        )
    kwargs: dict[str, Any] = {
        "data": rows,
        "batch_size": batch_size,
        "input_mappings": input_mappings or {},
        "output_mappings": output_mappings or {},
    }
    if resources is not None:
        kwargs["resources"] = resources
    if pipeline is not None:
        kwargs["pipeline"] = pipeline
    return LoadDataFromDicts(**kwargs)
