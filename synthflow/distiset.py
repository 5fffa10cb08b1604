"""The Distiset: the datasets a run produced, one per leaf step."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from datasets import DatasetDict

    from synthflow.pipeline.stats import StepStats


class Distiset(dict[str, "DatasetDict"]):
    """Maps each leaf step's name to a ``DatasetDict`` with one ``train`` split.

    With a single leaf, the key is ``"default"``, as in distilabel. ``stats`` holds per-step
    counters of the run that made it.
    """

    stats: dict[str, StepStats]
    stop_reason: str | None
    """Why the run ended before its sources were exhausted (a budget), or None."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.stats = {}
        self.stop_reason = None

    @classmethod
    def from_leaf_files(cls, files: dict[str, Path], stats: dict[str, StepStats]) -> Distiset:
        from datasets import Dataset, DatasetDict

        distiset = cls()
        single = len(files) == 1
        for leaf, path in files.items():
            dataset = Dataset.from_file(str(path))
            distiset["default" if single else leaf] = DatasetDict({"train": dataset})
        distiset.stats = stats
        return distiset

    def __repr__(self) -> str:
        parts = [
            f"  {name}: {len(dd['train'])} rows, columns {dd['train'].column_names}"
            for name, dd in self.items()
        ]
        return "Distiset(\n" + "\n".join(parts) + "\n)"
