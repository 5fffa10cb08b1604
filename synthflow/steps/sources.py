"""Generator steps over saved data: a dataset or Distiset on disk, and samples of given rows."""

from __future__ import annotations

import random
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from pydantic import Field, field_validator

from synthflow.audit import Exposure
from synthflow.exposure_rules import saved_dataset_reads
from synthflow.runtime_parameters import RuntimeParameter
from synthflow.steps.base import GeneratorStep, Row
from synthflow.steps.generators import _StreamedDataset, columns_of

_DATASET_FILES = ("state.json", "dataset_info.json")  # what Dataset.save_to_disk writes
_DATASET_DICT_FILE = "dataset_dict.json"  # what DatasetDict.save_to_disk writes


class LoadDataFromDisk(_StreamedDataset):
    """Streams a dataset saved on disk, in batches, without reading it all into memory:

    - a directory written by ``datasets``' ``Dataset.save_to_disk`` or
      ``DatasetDict.save_to_disk`` (pick the split with ``split``);
    - a saved Distiset (``distiset.save_to_disk``, synthflow's or distilabel's): one of its
      subsets, ``config``, and one of that subset's splits, ``split`` (default ``train``).

    A directory holding a saved Distiset is recognised as one; ``is_distiset`` is accepted for
    distilabel's pipelines. Remote paths (``s3://...``, ``gcs://...``) work for directories that
    ``datasets.load_from_disk`` reads, with ``storage_options`` for the file system.

    Output columns: the dataset's columns (or ``columns``).

    Fields: ``dataset_path``, ``config`` (default ``"default"``), ``split``, ``is_distiset``,
    ``keep_in_memory``, ``storage_options``, ``num_examples``, ``columns``, ``batch_size``;
    ``streaming`` is accepted for distilabel's pipelines (rows always stream).
    """

    dataset_path: RuntimeParameter[str] = Field(
        description="The directory of the saved dataset or Distiset."
    )
    config: RuntimeParameter[str | None] = Field(
        default="default",
        description="The Distiset subset to read (a leaf step's name, or 'default').",
    )
    split: RuntimeParameter[str | None] = Field(
        default=None,
        description="The split to read; default: 'train' (or the only split there is).",
    )
    is_distiset: RuntimeParameter[bool] = Field(
        default=False,
        description="The directory holds a Distiset (found out by itself; kept for distilabel).",
    )
    keep_in_memory: RuntimeParameter[bool | None] = Field(
        default=None,
        description="Copy an Arrow dataset into memory instead of mapping it from disk.",
    )
    storage_options: dict[str, Any] | None = Field(
        default=None, description="Options for a remote file system (fsspec), if any."
    )

    @field_validator("dataset_path", mode="before")
    @classmethod
    def _as_text(cls, value: Any) -> Any:
        return str(value) if isinstance(value, Path) else value

    def _source(self) -> str:
        subset = f", config {self.config!r}" if self._is_distiset() else ""
        split = f", split {self.split!r}" if self.split else ""
        return f"saved dataset {self.dataset_path!r}{subset}{split}"

    def exposures(self, where: str) -> Iterator[Exposure]:
        return saved_dataset_reads(where, {"dataset_path": self.dataset_path}, {})

    def _open(self) -> Any:
        path = self.dataset_path
        if "://" in path:  # a remote directory: only datasets can tell what it holds
            return self._arrow(path)
        root = Path(path).expanduser()
        if not root.is_dir():
            raise FileNotFoundError(f"{root} is not a directory")
        if not self._is_distiset():
            return self._arrow(str(root))
        subsets = _subsets(root)
        subset = self.config or "default"
        if subset not in subsets and self.config == "default" and len(subsets) == 1:
            subset = subsets[0]  # a Distiset of one leaf saved under that leaf's name
        if subset not in subsets:
            raise ValueError(
                f"the Distiset has no subset {subset!r}; set config to one of: "
                f"{', '.join(subsets) or 'none'}"
            )
        directory = root / subset
        if (directory / _DATASET_DICT_FILE).is_file():  # distilabel's layout
            return self._arrow(str(directory))
        split = self.split or "train"
        parts = sorted(directory.glob(f"{split}-*.parquet")) or sorted(
            directory.glob(f"{split}.parquet")
        )
        if not parts:
            splits = sorted(
                {
                    p.name.split("-", 1)[0].removesuffix(".parquet")
                    for p in directory.glob("*.parquet")
                }
            )
            raise ValueError(
                f"subset {subset!r} has no split {split!r}; set split to one of: "
                f"{', '.join(splits) or 'none'}"
            )
        from datasets import load_dataset

        return load_dataset(
            "parquet", data_files=[str(p) for p in parts], split="train", streaming=True
        )

    def _is_distiset(self) -> bool:
        if self.is_distiset:
            return True
        root = Path(self.dataset_path).expanduser()
        if "://" in self.dataset_path or _is_arrow_dataset(root):
            return False
        return (root / "run.json").is_file() or bool(_subsets(root))

    def _arrow(self, path: str) -> Any:
        from datasets import DatasetDict, load_from_disk

        dataset = load_from_disk(
            path, keep_in_memory=self.keep_in_memory, storage_options=self.storage_options
        )
        if isinstance(dataset, DatasetDict):
            names = list(dataset)
            split = self.split or ("train" if "train" in names or len(names) != 1 else names[0])
            if split not in names:
                raise ValueError(
                    f"it has no split {split!r}; set split to one of: {', '.join(names)}"
                )
            dataset = dataset[split]
        return dataset.to_iterable_dataset()


def _is_arrow_dataset(root: Path) -> bool:
    return (
        all((root / f).is_file() for f in _DATASET_FILES) or (root / _DATASET_DICT_FILE).is_file()
    )


def _subsets(root: Path) -> list[str]:
    """The subsets of a saved Distiset: directories of parquet files (synthflow) or of a saved
    ``DatasetDict`` (distilabel)."""
    if not root.is_dir():
        return []
    return sorted(
        p.name
        for p in root.iterdir()
        if p.is_dir()
        and not p.name.startswith(".")
        and ((p / _DATASET_DICT_FILE).is_file() or any(p.glob("*.parquet")))
    )


class DataSampler(GeneratorStep):
    """Yields ``samples`` rows, each made of ``size`` rows drawn at random (with replacement)
    from ``data``, for few-shot prompts: each column holds the list of the drawn rows' values.
    Connect it beside another source and join the two to give each row its own examples.

    With a ``seed`` the draws are the same on every run (and a resumed run draws the rows it
    still needs as the first run would have); without one, each run draws anew.

    Output columns: the columns of ``data``, each a list of ``size`` values.

    Fields: ``data`` (the rows to draw from), ``size`` (rows drawn per sample, default 2),
    ``samples`` (samples in all, default 100), ``batch_size``, ``seed``.
    """

    data: list[dict[str, Any]] = Field(description="The rows to draw from.")
    size: int = Field(default=2, ge=1, description="Rows drawn for each sample.")
    samples: int = Field(default=100, ge=0, description="Samples to yield in all.")
    seed: int | None = Field(
        default=None, description="Seed of the draws; default: different on every run."
    )

    @field_validator("data")
    @classmethod
    def _not_empty(cls, data: list[dict[str, Any]]) -> list[dict[str, Any]]:
        if not data:
            raise ValueError("data must hold at least one row to sample from")
        return data

    @property
    def outputs(self) -> list[str]:
        return columns_of(self.data)

    def process(self, offset: int = 0) -> Iterator[list[Row]]:
        seed = self.seed if self.seed is not None else random.SystemRandom().getrandbits(63)
        columns = self.outputs
        for start in range(offset, self.samples, self.batch_size):
            batch: list[Row] = []
            for i in range(start, min(start + self.batch_size, self.samples)):
                # One generator per sample, seeded by its index: sample i is the same whether
                # or not the run started from the beginning.
                drawn = random.Random(f"{seed}:{i}").choices(self.data, k=self.size)
                batch.append({c: [row.get(c) for row in drawn] for c in columns})
            yield batch
