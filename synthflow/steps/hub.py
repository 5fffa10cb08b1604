"""Steps that hand rows to the Hugging Face Hub: ``PushToHub``."""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from typing import Any

from pydantic import Field, SecretStr

from synthflow.audit import Exposure
from synthflow.exposure_rules import hub_push_writes
from synthflow.runtime_parameters import RuntimeParameter
from synthflow.steps.base import GlobalStep, Row

_PRIVATE_PREFIX = "_sf_"  # the engine's own keys (lineage, set-aside columns) stay off the Hub


class PushToHub(GlobalStep):
    """Pushes every row it receives to the Hugging Face Hub as one split of a dataset, then passes
    the rows on unchanged (so it can sit before other steps, or be a leaf of the Distiset).

    The dataset is written by ``datasets`` (``Dataset.push_to_hub``), as distilabel does: parquet
    shards under ``data/``, and a dataset card listing the splits, so pushing another ``split``
    to the same repository keeps the splits already there. The repository is created (private
    when ``private``) if it doesn't exist. The Hub address is ``HF_ENDPOINT``'s (default
    https://huggingface.co). The columns are held in memory while the dataset is built.

    Input columns: every column of the rows (all of them are pushed).
    Output columns: none (the rows pass through unchanged).

    Fields (all runtime parameters): ``repo_id`` (``ORG/NAME``), ``split`` (default
    ``"train"``), ``private`` (default False), ``token`` (a Hub token with write access; default:
    ``HF_TOKEN``, else the token saved by ``hf auth login``; never written to pipeline files).
    """

    repo_id: RuntimeParameter[str | None] = Field(
        default=None, description="The dataset repository to push to, as ORG/NAME."
    )
    split: RuntimeParameter[str] = Field(
        default="train", description="The split the rows are pushed as."
    )
    private: RuntimeParameter[bool] = Field(
        default=False, description="Create the repository as private (when it doesn't exist)."
    )
    token: RuntimeParameter[SecretStr | None] = Field(
        default=None,
        description="A Hub token with write access; default: HF_TOKEN, else the saved login.",
    )

    def exposures(self, where: str) -> Iterator[Exposure]:
        return hub_push_writes(where, {"repo_id": self.repo_id}, {})

    def load(self) -> None:
        super().load()
        if not self.repo_id:
            raise ValueError(
                "PushToHub needs repo_id: pass repo_id='ORG/NAME' or set it in "
                "run(parameters={'<step name>': {'repo_id': ...}})"
            )
        from synthflow.distiset import check_repo_id

        check_repo_id(self.repo_id)

    def process(self, inputs: Sequence[Row]) -> Iterator[list[Row]]:
        from datasets import Dataset

        columns: dict[str, list[Any]] = {}
        count = 0
        for row in inputs:  # one pass: a spilled input is a file read in order
            for name in row.keys() - columns.keys():
                if not name.startswith(_PRIVATE_PREFIX):
                    columns[name] = [None] * count  # a column that starts late: null before
            for name, values in columns.items():
                values.append(row.get(name))
            count += 1
        if count == 0:
            return  # nothing to push: an empty split would replace the one on the Hub
        token = self.token.get_secret_value() if self.token else os.environ.get("HF_TOKEN")
        repo_id = self.repo_id or ""  # checked in load()
        try:
            Dataset.from_dict(columns).push_to_hub(
                repo_id, split=self.split, private=self.private, token=token
            )
        except Exception as exc:
            reason = " ".join(str(exc).split()) or type(exc).__name__
            raise RuntimeError(
                f"PushToHub: pushing {count} rows to {repo_id} failed: {type(exc).__name__}: "
                f"{reason[:300]} (check repo_id and that the token can write to it)"
            ) from None
        batch: list[Row] = []
        for row in inputs:
            batch.append(row)
            if len(batch) == 1024:
                yield batch
                batch = []
        if batch:
            yield batch
