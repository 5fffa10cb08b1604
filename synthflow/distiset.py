"""The Distiset: the datasets a run produced, one per leaf step, and how they are shared.

On disk and on the Hub a Distiset has the same layout::

    pipeline.yaml                         the pipeline, with the run's parameter values
    run.json                              the run's record: stats per step, version, command
    README.md                             the dataset card
    <subset>/<split>-00000-of-00001.parquet   (or -0000i-of-0000n with several shards)
    artifacts/<step>/<artifact>/...       files steps saved with ``save_artifact``, each with
                                          its metadata.json (distilabel's layout)

``save_to_disk`` builds it in a temporary directory beside the target and renames it into
place, so a directory is never left half-written; ``push_to_hub`` uploads the same tree. The
method signatures are distilabel 1.5's, so code written for its Distiset runs unchanged.
"""

from __future__ import annotations

import math
import os
import re
import shlex
import shutil
import sys
import tempfile
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, fields
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson

from synthflow.errors import DiskFullError, DistisetError, SerializationError
from synthflow.pipeline import _disk
from synthflow.steps.base import ARTIFACTS_DIR, METADATA_COLUMN

if TYPE_CHECKING:
    from datasets import Dataset, DatasetDict

    from synthflow.models.callpath.calls import LLMCallStats
    from synthflow.pipeline.pipeline import Pipeline
    from synthflow.pipeline.stats import StepStats

PIPELINE_FILE = "pipeline.yaml"
RUN_FILE = "run.json"
CARD_FILE = "README.md"
LOG_FILE = "pipeline.log"
ARTIFACT_METADATA_FILE = "metadata.json"
RUN_FORMAT = 1

_PART_NAME = "{split}-{index:05d}-of-{count:05d}.parquet"
_PUSH_OPTIONS = frozenset(
    {"commit_message", "commit_description", "max_shard_size", "num_shards", "api"}
)
"""``push_to_hub``'s keyword arguments beyond distilabel's named ones (``api``: the
``huggingface_hub.HfApi`` to use)."""
_SAFE_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.]*$")
_SUBSET_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.\-]*$")
_REPO_ID = re.compile(r"^(?:[A-Za-z0-9][A-Za-z0-9_.\-]*/)?[A-Za-z0-9][A-Za-z0-9_.\-]*$")
"""``ORG/NAME``, or ``NAME`` alone: a repository of the account the token belongs to."""
_WRITE_BATCH_ROWS = 10_000


class Distiset(dict[str, "DatasetDict"]):
    """Maps each leaf step's name to a ``DatasetDict`` with one ``train`` split (two after
    ``train_test_split``). A plain ``Dataset`` as a value, as distilabel's docs build one, counts
    as its ``train`` split.

    With a single leaf, the key is ``"default"``, as in distilabel. ``stats`` holds per-step
    counters of the run that made it (``failed_rows`` sums up its failures); ``pipeline_config``
    the pipeline, as ``Pipeline.dump()`` wrote it when the run ended; ``artifacts`` what its
    steps saved with ``save_artifact``.
    """

    stats: dict[str, StepStats]
    stop_reason: str | None
    """Why the run ended before its sources were exhausted (a budget), or None."""
    pipeline_config: dict[str, Any] | None
    """The pipeline that made it, with the run's parameter values; None if it couldn't be
    written (a field YAML can't hold; ``run_info["pipeline_error"]`` says which)."""
    run_info: dict[str, Any]
    """About the run: synthflow version, pipeline signature, end time, and the CLI command."""
    artifacts_path: Path | None
    """The directory of the steps' artifacts (``<step>/<artifact>/``), or None when there are
    none: the run's directory after a run, the saved copy after ``load_from_disk``."""
    failures: Path | None
    """The run's failure record (``failures.jsonl`` in its directory): one JSON line per row
    that failed, with its source id, step, error, attempts, request and raw response; None when
    no row failed. ``datasets.load_dataset("json", data_files=str(distiset.failures))`` reads it."""
    log_filename_path: Path | None
    """A log file to save (``pipeline.log``) and push with the data; synthflow runs write none,
    so it is None unless set (or loaded with a saved Distiset that has one)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.stats = {}
        self.stop_reason = None
        self.pipeline_config = None
        self.run_info = {}
        self.artifacts_path = None
        self.failures = None
        self.retried_rows: int | None = None
        """In a run that retried failed rows (``retry_failed=True``): how many it retried."""
        self.log_filename_path = None
        self._saved_stats: dict[str, Any] = {}  # as read by load_from_disk

    @classmethod
    def from_leaf_files(
        cls, files: dict[str, Path], stats: dict[str, StepStats], *, enable_metadata: bool = True
    ) -> Distiset:
        """The Distiset of a run's leaf files (``enable_metadata=False`` leaves the
        ``synthflow_metadata`` column out, as distilabel's ``enable_metadata`` does)."""
        from datasets import Dataset, DatasetDict

        distiset = cls()
        single = len(files) == 1
        for leaf, path in files.items():
            dataset = Dataset.from_file(str(path))
            if not enable_metadata and METADATA_COLUMN in dataset.column_names:
                dataset = dataset.remove_columns(METADATA_COLUMN)
            distiset["default" if single else leaf] = DatasetDict({"train": dataset})
        distiset.stats = stats
        return distiset

    # -- how the run went ------------------------------------------------------------------

    @property
    def failed_rows(self) -> dict[str, int]:
        """Rows that failed in the run, per step that failed them (steps without failures are
        left out). A row is counted once, in the step where it failed; it is in the data with
        null outputs and its error in the ``synthflow_error`` column (``on_error="null"``, the
        default), or left out (``"drop"``)."""
        return {name: s.errors for name, s in self.stats.items() if s.errors}

    @property
    def source_rows(self) -> int:
        """Rows the run's sources made (in a resumed run: those made after it resumed)."""
        return sum(s.rows_out for s in self.stats.values() if s.source)

    @property
    def all_rows_failed(self) -> bool:
        """True when rows failed and none came out without an error: such a run is never a
        success, whatever the tolerance."""
        failed = sum(self.failed_rows.values())
        if not failed:
            return False
        if self.retried_rows is not None:  # the sources sent only the rows retried
            return self._rows_without_error() == 0
        return failed >= self.source_rows or self._rows_without_error() == 0

    def failure_summary(self) -> str | None:
        """One line saying how many rows failed in which step, or None when none did."""
        failed = self.failed_rows
        if not failed:
            return None
        total = sum(failed.values())
        steps = ", ".join(f"{name} {count}" for name, count in failed.items())
        made = self.source_rows
        # (more failures than source rows: rows that were expanded, or failed in two branches)
        of = f" of {made}" if made > 0 and total <= made else ""
        if self.retried_rows is not None:
            of = f" of {self.retried_rows} retried"
        return f"{total}{of} rows failed ({steps}); their errors are in the synthflow_error column"

    def _rows_without_error(self) -> int:
        from synthflow.steps.tasks.base import ERROR_COLUMN

        clean = 0
        for splits in self.values():
            for dataset in _splits(splits).values():
                if ERROR_COLUMN not in dataset.column_names:
                    clean += len(dataset)
                else:
                    errors = dataset.with_format("arrow")[ERROR_COLUMN]
                    clean += errors.null_count
        return clean

    def llm_usage(self) -> LLMCallStats:
        """LLM figures of the whole run: requests, cache hits, 429s, retries, tokens, cost."""
        from synthflow.models.callpath.calls import LLMCallStats

        return LLMCallStats.total([s.llm for s in self.stats.values() if s.llm is not None])

    def record_pipeline(self, pipeline: Pipeline) -> None:
        """Keep the definition of the pipeline that made this Distiset, for saving and the card.
        Never fails the run: a pipeline that can't be written is noted in ``run_info``."""
        from synthflow import __version__
        from synthflow.serialization import dump_pipeline

        try:
            self.pipeline_config = dump_pipeline(pipeline)
        except SerializationError as exc:
            self.pipeline_config = None
            self.run_info["pipeline_error"] = str(exc)
        config = (self.pipeline_config or {}).get("pipeline") or {}
        self.run_info.update(
            pipeline=pipeline.name,
            signature=config.get("signature") or pipeline.signature,
            synthflow_version=__version__,
            finished_at=datetime.now(UTC).isoformat(timespec="seconds"),
        )

    @property
    def pipeline_yaml(self) -> str | None:
        """``pipeline_config`` as the YAML text that ``save_to_disk`` writes."""
        if self.pipeline_config is None:
            return None
        from synthflow.serialization import to_text

        return to_text(self.pipeline_config, "yaml")

    # -- artifacts ----------------------------------------------------------------------------

    @property
    def artifacts(self) -> dict[str, list[dict[str, Any]]]:
        """What the steps saved with ``save_artifact``: per step, a list of ``{"name",
        "metadata", "path"}`` (``path``: the artifact's directory), in name order."""
        root = self.artifacts_path
        if root is None or not root.is_dir():
            return {}
        found: dict[str, list[dict[str, Any]]] = {}
        for step_dir in _visible_dirs(root):
            for artifact in _visible_dirs(step_dir):
                meta_file = artifact / ARTIFACT_METADATA_FILE
                try:
                    metadata = orjson.loads(meta_file.read_bytes()) if meta_file.is_file() else {}
                except orjson.JSONDecodeError:
                    metadata = {}
                entry = {"name": artifact.name, "metadata": metadata, "path": artifact}
                found.setdefault(step_dir.name, []).append(entry)
        return found

    # -- splits -------------------------------------------------------------------------------

    def train_test_split(
        self, train_size: float, shuffle: bool = True, seed: int | None = None
    ) -> Distiset:
        """Split every subset's ``train`` rows into ``train`` and ``test`` (``train_size``: the
        share that stays in ``train``, between 0 and 1); returns this Distiset, as distilabel's
        does."""
        if not 0 < train_size < 1:
            raise DistisetError(
                f"train_size must be a share between 0 and 1 (e.g. 0.9), got {train_size!r}"
            )
        for name, value in self.items():
            train = _splits(value)["train"]
            self[name] = train.train_test_split(train_size=train_size, shuffle=shuffle, seed=seed)
        return self

    def transform_columns_to_image(self, columns: str | list[str]) -> Distiset:
        """Turn base64 image columns (what image generation tasks write) into ``datasets``
        ``Image`` columns in every subset and split, so that the Hub's viewer shows pictures and
        a reader gets ``PIL`` images back; returns this Distiset, as distilabel's does. A null
        stays null; a value that isn't base64 of an image is a one-line error naming the row.
        Decoding the pictures needs Pillow; converting them doesn't."""
        from datasets import DatasetDict, Image

        wanted = [columns] if isinstance(columns, str) else list(columns)
        for name, value in self.items():
            splits = dict(_splits(value))
            for split, dataset in splits.items():
                for column in (c for c in wanted if c in dataset.column_names):
                    images = [
                        _image_cell(text, f"{name}/{split}", column, i)
                        for i, text in enumerate(dataset[column])
                    ]
                    dataset = dataset.remove_columns(column).add_column(
                        column, images, feature=Image()
                    )
                splits[split] = dataset
            self[name] = DatasetDict(splits) if isinstance(value, Mapping) else splits["train"]
        return self

    # -- on disk ------------------------------------------------------------------------------

    def save_to_disk(
        self,
        distiset_path: str | os.PathLike[str],
        max_shard_size: str | int | None = None,
        num_shards: int | None = None,
        num_proc: int | None = None,
        storage_options: dict[str, Any] | None = None,
        save_card: bool = True,
        save_pipeline_config: bool = True,
        save_pipeline_log: bool = True,
    ) -> Path | str:
        """Write the Distiset to ``distiset_path`` (see the module docstring for the layout)
        and return where it went.

        ``max_shard_size`` (bytes, or a text like ``"500MB"``) or ``num_shards`` split each
        split's parquet into parts. A URL (``s3://...``, ``memory://...``) or
        ``storage_options`` writes through fsspec. ``num_proc`` is accepted for distilabel's
        signature; writing streams, so it changes nothing. A local directory is replaced only
        if it is empty or holds a saved Distiset."""
        del num_proc  # parquet parts are written as a stream; there is nothing to parallelise
        shards = _Sharding.of(max_shard_size, num_shards)
        options = _TreeOptions(save_card, save_pipeline_config, save_pipeline_log, shards)
        location = os.fspath(distiset_path)
        if storage_options is not None or _is_url(location):
            return self._save_remote(location, storage_options or {}, options)
        target = Path(location).expanduser().absolute()
        check_output_dir(target)
        then = "free space there and save again (nothing of the run is lost)"
        try:
            with _disk.when_full(target, then):
                tmp = _disk.new_directory(target.parent, prefix=f".{target.name}.tmp-")
        except OSError as exc:
            raise DistisetError(f"can't write to {target.parent}: {_reason(exc)}") from None
        try:
            with _disk.when_full(target, then):
                self._write_tree(tmp, repo_id=None, options=options)
                _move_into_place(tmp, target)
        except DiskFullError:
            raise
        except OSError as exc:
            raise DistisetError(f"can't save the distiset to {target}: {_reason(exc)}") from None
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        return target

    def _save_remote(
        self, location: str, storage_options: dict[str, Any], options: _TreeOptions
    ) -> str:
        fs, root = _filesystem(location, storage_options)
        if fs.isfile(root):
            raise DistisetError(f"can't save to {location}: it exists and is not a directory")
        if fs.isdir(root) and fs.ls(root) and not fs.isfile(f"{root}/{RUN_FILE}"):
            raise DistisetError(
                f"can't save to {location}: it holds other files, and synthflow replaces only "
                "an empty directory or a saved distiset; choose another directory"
            )
        with tempfile.TemporaryDirectory(prefix="synthflow-save-") as tmp:
            local = Path(tmp)
            self._write_tree(local, repo_id=None, options=options)
            try:
                if fs.isdir(root):
                    fs.rm(root, recursive=True)
                for path in sorted(local.rglob("*")):
                    if path.is_file():
                        remote = f"{root}/{path.relative_to(local).as_posix()}"
                        fs.makedirs(remote.rsplit("/", 1)[0], exist_ok=True)
                        fs.put_file(str(path), remote)
            except OSError as exc:
                raise DistisetError(
                    f"can't save the distiset to {location}: {_reason(exc)}"
                ) from None
        return location

    @classmethod
    def load_from_disk(
        cls,
        distiset_path: str | os.PathLike[str],
        keep_in_memory: bool | None = None,
        storage_options: dict[str, Any] | None = None,
        download_dir: str | os.PathLike[str] | None = None,
    ) -> Distiset:
        """Read a Distiset written by ``save_to_disk`` (or downloaded from the Hub). A URL or
        ``storage_options`` reads through fsspec: the files are copied to ``download_dir`` (a
        new temporary directory by default) first. The data is memory-mapped from the parquet
        files' Arrow tables either way; ``keep_in_memory`` is accepted for distilabel's
        signature."""
        del keep_in_memory  # the parquet files are read into Arrow tables in memory already
        location = os.fspath(distiset_path)
        if storage_options is not None or _is_url(location):
            root = _download(location, storage_options or {}, download_dir)
        else:
            root = Path(location).expanduser()
        return cls._load_local(root)

    @classmethod
    def _load_local(cls, root: Path) -> Distiset:
        from datasets import DatasetDict

        if not root.is_dir():
            raise DistisetError(f"no saved distiset at {root}: not a directory")
        record: dict[str, Any] = {}
        if (root / RUN_FILE).is_file():
            try:
                record = orjson.loads((root / RUN_FILE).read_bytes())
            except orjson.JSONDecodeError as exc:
                raise DistisetError(f"{root / RUN_FILE} is not valid JSON: {exc}") from None
        distiset = cls()
        subsets = list(record.get("subsets") or {}) or sorted(
            p.name for p in root.iterdir() if p.is_dir() and any(p.glob("*.parquet"))
        )
        for subset in subsets:
            splits: dict[str, list[Path]] = {}
            for part in sorted((root / subset).glob("*.parquet")):
                splits.setdefault(part.name.split("-", 1)[0].removesuffix(".parquet"), []).append(
                    part
                )
            if not splits:
                raise DistisetError(f"subset {subset!r} has no parquet files under {root}")
            distiset[subset] = DatasetDict({s: _read_parquet(ps) for s, ps in splits.items()})
        if not distiset:
            raise DistisetError(f"no saved distiset at {root}: it holds no parquet data")
        if (root / PIPELINE_FILE).is_file():
            from synthflow.pipeline_file import parse_text

            text = (root / PIPELINE_FILE).read_text(encoding="utf-8")
            try:
                distiset.pipeline_config = parse_text(text, "yaml", source=PIPELINE_FILE)
            except SerializationError as exc:
                raise DistisetError(f"{root / PIPELINE_FILE}: {exc}") from None
        if (root / ARTIFACTS_DIR).is_dir():
            distiset.artifacts_path = root / ARTIFACTS_DIR
        if (root / LOG_FILE).is_file():
            distiset.log_filename_path = root / LOG_FILE
        distiset.run_info = dict(record.get("run") or {})
        distiset.stop_reason = record.get("stop_reason")
        distiset._saved_stats = dict(record.get("stats") or {})
        distiset.stats = {n: _stats_from_dict(d) for n, d in distiset._saved_stats.items()}
        return distiset

    def _write_tree(self, root: Path, *, repo_id: str | None, options: _TreeOptions) -> None:
        for subset, value in self.items():
            if not _SUBSET_NAME.match(subset):
                raise DistisetError(f"subset name {subset!r} can't be a directory name")
            for split, dataset in _splits(value).items():
                if not _SAFE_NAME.match(split):
                    raise DistisetError(f"split name {split!r} can't be a file name")
                (root / subset).mkdir(parents=True, exist_ok=True)
                count = options.shards.count(dataset)
                for index in range(count):
                    name = _PART_NAME.format(split=split, index=index, count=count)
                    part = dataset.shard(count, index, contiguous=True) if count > 1 else dataset
                    _write_parquet(part, root / subset / name)
        if self.pipeline_config is not None and options.pipeline_config:
            _disk.write_bytes(root / PIPELINE_FILE, (self.pipeline_yaml or "").encode())
        log = self.log_filename_path
        if options.pipeline_log and log is not None and log.is_file():
            shutil.copyfile(log, root / LOG_FILE)
        if self.artifacts_path is not None and self.artifacts_path.is_dir():
            shutil.copytree(self.artifacts_path, root / ARTIFACTS_DIR)
        script = self.pipeline_script()
        if script is not None:
            shutil.copyfile(script, root / script.name)
        record = {
            "synthflow": {"format": RUN_FORMAT},
            "run": self.run_info,
            "stop_reason": self.stop_reason,
            "subsets": {
                s: {split: len(ds) for split, ds in _splits(v).items()} for s, v in self.items()
            },
            "failed_rows": self.failed_rows,
            "stats": {name: self._stats_record(name, s) for name, s in self.stats.items()},
        }
        json_options = orjson.OPT_INDENT_2 | orjson.OPT_NON_STR_KEYS
        encoded = orjson.dumps(record, option=json_options, default=str) + b"\n"
        _disk.write_bytes(root / RUN_FILE, encoded)
        if options.card:
            _disk.write_bytes(root / CARD_FILE, self.dataset_card(repo_id).encode())

    def _stats_record(self, name: str, stats: StepStats) -> dict[str, Any]:
        record = stats.as_dict()
        # Latency percentiles are saved, not the samples: keep the ones read from disk.
        saved = (self._saved_stats.get(name) or {}).get("llm") or {}
        if isinstance(record.get("llm"), dict) and not record["llm"].get("latency"):
            record["llm"]["latency"] = saved.get("latency") or {}
        return record

    # -- on the Hub ---------------------------------------------------------------------------

    def push_to_hub(
        self,
        repo_id: str,
        private: bool = False,
        token: str | None = None,
        generate_card: bool = True,
        include_script: bool = False,
        **kwargs: Any,
    ) -> str:
        """Upload the data, ``pipeline.yaml``, ``run.json``, the artifacts and (with
        ``generate_card``) a dataset card to the dataset repo ``repo_id`` (created if
        missing, ``private`` then), in one commit, and return its URL.

        ``include_script`` uploads the script that is running (``sys.argv[0]``) beside them,
        under its file name. ``token`` falls back to ``$HF_TOKEN`` or the saved login. Keyword
        arguments: ``commit_message``, ``commit_description``, ``max_shard_size`` /
        ``num_shards`` (as ``save_to_disk``), and ``api``, the ``huggingface_hub.HfApi`` to use.
        """
        unknown = sorted(set(kwargs) - _PUSH_OPTIONS)
        if unknown:
            raise DistisetError(
                f"push_to_hub got an unexpected argument {unknown[0]!r}; it takes "
                f"{', '.join(sorted(_PUSH_OPTIONS - {'api'}))} besides repo_id, private, "
                "token, generate_card and include_script"
            )
        check_repo_id(repo_id)
        script = _running_script() if include_script else None
        api = kwargs.get("api")
        if api is None:
            from huggingface_hub import HfApi

            api = HfApi(token=token)
        repo_id = _with_namespace(repo_id, api)
        shards = _Sharding.of(kwargs.get("max_shard_size"), kwargs.get("num_shards"))
        options = _TreeOptions(generate_card, True, True, shards)
        name = (self.pipeline_config or {}).get("pipeline", {}).get("name", "distiset")
        message = kwargs.get("commit_message") or f"Upload {name} (made with synthflow)"
        with tempfile.TemporaryDirectory(prefix="synthflow-push-") as tmp:
            folder = Path(tmp)
            with _disk.when_full(
                folder, "free space there (the temporary directory) and push again"
            ):
                self._write_tree(folder, repo_id=repo_id, options=options)
                if script is not None:
                    shutil.copyfile(script, folder / script.name)
            try:
                api.create_repo(repo_id, repo_type="dataset", private=private, exist_ok=True)
                api.upload_folder(
                    repo_id=repo_id,
                    repo_type="dataset",
                    folder_path=folder,
                    commit_message=message,
                    commit_description=kwargs.get("commit_description"),
                    # shards and artifacts of an earlier push
                    delete_patterns=["*.parquet", f"{ARTIFACTS_DIR}/**"],
                )
            except (OSError, ValueError) as exc:
                raise DistisetError(
                    f"push to {repo_id} failed: {type(exc).__name__}: {_reason(exc)}"
                ) from None
        endpoint = str(getattr(api, "endpoint", None) or "https://huggingface.co").rstrip("/")
        return f"{endpoint}/datasets/{repo_id}"

    def dataset_card(self, repo_id: str | None = None) -> str:
        """The README.md that goes with the data: how it was made (the DAG as a mermaid
        diagram, the models), the subsets and their sizes, and the command that remakes it."""
        from synthflow.serialization import to_text

        rows = sum(len(ds) for value in self.values() for ds in _splits(value).values())
        front = {
            "configs": [
                {
                    "config_name": subset,
                    "data_files": [
                        {"split": split, "path": f"{subset}/{split}-*.parquet"}
                        for split in _splits(value)
                    ],
                }
                for subset, value in self.items()
            ],
            "tags": ["synthetic", "synthflow"],
            "size_categories": [_size_category(rows)],
        }
        config = self.pipeline_config
        body = (config or {}).get("pipeline") or {}
        title = repo_id or body.get("name") or "Distiset"
        lines = [f"---\n{to_text(front, 'yaml')}---", "", f"# {title}", ""]
        lines.append(
            f"This dataset was generated with synthflow "
            f"{self.run_info.get('synthflow_version', '')}".rstrip()
            + (f" by the pipeline `{body['name']}`." if body.get("name") else ".")
        )
        if body.get("description"):
            lines += ["", str(body["description"])]
        if config is not None:
            lines += ["", "## How it was made", "", "```mermaid", _mermaid(config), "```"]
            models = _models_table(config)
            if models:
                lines += ["", "## Models", "", *models]
        elif self.run_info.get("pipeline_error"):
            lines += ["", f"The pipeline couldn't be saved: {self.run_info['pipeline_error']}"]
        lines += ["", "## Subsets", "", "| subset | split | rows | columns |", "|---|---|---|---|"]
        for subset, value in self.items():
            for split, ds in _splits(value).items():
                columns = ", ".join(f"`{c}`" for c in ds.column_names)
                lines.append(f"| {subset} | {split} | {len(ds)} | {columns} |")
        artifacts = self.artifacts
        if artifacts:
            lines += ["", "## Artifacts", "", "| step | artifact | metadata |", "|---|---|---|"]
            for step, entries in artifacts.items():
                for entry in entries:
                    metadata = orjson.dumps(entry["metadata"], default=str).decode()
                    where = f"{ARTIFACTS_DIR}/{step}/{entry['name']}"
                    lines.append(f"| {step} | [{entry['name']}]({where}) | `{metadata}` |")
        if self.stats:
            lines += [
                "",
                "## Run",
                "",
                "| step | rows in | rows out | failed rows |",
                "|---|---|---|---|",
            ]
            for s in self.stats.values():
                lines.append(f"| {s.name} | {s.rows_in} | {s.rows_out} | {s.errors} |")
            if self.stop_reason:
                lines += ["", f"The run stopped early: {self.stop_reason}."]
        command = self.reproduce_command(repo_id)
        if command:
            lines += ["", "## Reproduce", "", "```bash", command, "```"]
            script = self.pipeline_script()
            if script is not None:
                lines += [
                    "",
                    f"`{script.name}`, the script that defines the pipeline's own classes, is "
                    f"saved beside `{PIPELINE_FILE}`: run the command in a directory that holds "
                    "it.",
                ]
            original = self.run_info.get("command")
            if original and original != command:
                lines += ["", "It was made with:", "", "```bash", str(original), "```"]
        if repo_id:
            first = next(iter(self), "default")
            lines += [
                "",
                "## Load",
                "",
                "```python",
                "from datasets import load_dataset",
                "",
                f'dataset = load_dataset("{repo_id}", "{first}", split="train")',
                "```",
            ]
        return "\n".join(lines) + "\n"

    def pipeline_script(self) -> Path | None:
        """The script that defined classes the pipeline uses (``run_info["script"]``, which
        ``synthflow pipeline run --script`` records), when it still exists: it is saved with
        the data, so the reproduce command's ``--allow-module`` finds it."""
        recorded = self.run_info.get("script")
        if not recorded or self.pipeline_config is None:
            return None
        from synthflow.pipeline_file import modules_of

        script = Path(str(recorded))
        if script.stem not in modules_of(self.pipeline_config) or not script.is_file():
            return None
        return script

    def reproduce_command(self, repo_id: str | None = None) -> str | None:
        """The CLI command that runs the saved pipeline again (its parameter values are in
        ``pipeline.yaml``); None when the pipeline couldn't be saved."""
        if self.pipeline_config is None:
            return None
        from synthflow.pipeline_file import is_trusted, modules_of

        config = (
            f"https://huggingface.co/datasets/{repo_id}/resolve/main/{PIPELINE_FILE}"
            if repo_id
            else PIPELINE_FILE
        )
        parts = ["synthflow", "pipeline", "run", "--config", config]
        for module in modules_of(self.pipeline_config):
            if not is_trusted(module):
                parts += ["--allow-module", module]
        return shlex.join(parts)

    # -- display ------------------------------------------------------------------------------

    def __repr__(self) -> str:
        parts = [
            f"  {name}/{split}: {len(ds)} rows, columns {ds.column_names}"
            for name, value in self.items()
            for split, ds in _splits(value).items()
        ]
        return "Distiset(\n" + "\n".join(parts) + "\n)"

    def _repr_html_(self) -> str:
        from html import escape

        rows = "".join(
            f"<tr><td><code>{escape(subset)}</code></td><td>{escape(split)}</td>"
            f"<td>{len(ds)}</td><td>{escape(', '.join(ds.column_names))}</td></tr>"
            for subset, value in self.items()
            for split, ds in _splits(value).items()
        )
        name = self.run_info.get("pipeline")
        title = "Distiset" + (f" from pipeline <b>{escape(str(name))}</b>" if name else "")
        note = f"<p>Stopped early: {escape(self.stop_reason)}</p>" if self.stop_reason else ""
        return (
            f"<div><p>{title}</p><table><thead><tr><th>subset</th><th>split</th><th>rows</th>"
            f"<th>columns</th></tr></thead><tbody>{rows}</tbody></table>{note}</div>"
        )


def create_distiset(
    data_dir: str | os.PathLike[str],
    pipeline_path: str | os.PathLike[str] | None = None,
    log_filename_path: str | os.PathLike[str] | None = None,
    enable_metadata: bool = False,
    dag: Any = None,
) -> Distiset:
    """The Distiset of a finished run from its directory (``pipeline.run_dir``), as distilabel's
    helper makes one from its cache: one subset per leaf (``"default"`` with one), the steps'
    artifacts, and the pipeline from ``pipeline_path`` (a ``pipeline.yaml``) when given. As in
    distilabel, the ``synthflow_metadata`` column is left out unless ``enable_metadata``.
    ``dag`` is accepted for distilabel's signature (citations come from the card's pipeline)."""
    del dag
    root = Path(data_dir).expanduser()
    data = root / "data"
    leaves = sorted(p.parent.name for p in data.glob("*/data.arrow")) if data.is_dir() else []
    if not leaves:
        raise DistisetError(
            f"no finished run in {root}: it has no data/<leaf>/data.arrow; pass the run "
            "directory of a pipeline that ran to the end (pipeline.run_dir)"
        )
    files = {leaf: data / leaf / "data.arrow" for leaf in leaves}
    distiset = Distiset.from_leaf_files(files, {}, enable_metadata=enable_metadata)
    artifacts = root / ARTIFACTS_DIR
    if artifacts.is_dir() and any(artifacts.iterdir()):
        distiset.artifacts_path = artifacts
    if pipeline_path is not None:
        from synthflow.pipeline_file import parse_text

        path = Path(pipeline_path)
        try:
            distiset.pipeline_config = parse_text(
                path.read_text(encoding="utf-8"), "yaml", source=str(path)
            )
        except (OSError, SerializationError) as exc:
            raise DistisetError(f"can't read the pipeline {path}: {_reason(exc)}") from None
    if log_filename_path is not None:
        distiset.log_filename_path = Path(log_filename_path)
    return distiset


def _image_cell(text: Any, where: str, column: str, row: int) -> dict[str, Any] | None:
    """An ``Image`` cell for a base64 string (or a ``data:image`` URL); None stays None."""
    from synthflow.models.image_generation.base import decode_image

    if text is None:
        return None
    data = decode_image(text) if isinstance(text, str) else None
    if data is None:
        raise DistisetError(
            f"{where} row {row}: column {column!r} doesn't hold a base64 image; "
            "transform_columns_to_image takes the columns image generation tasks write"
        )
    return {"bytes": data, "path": None}


def _splits(value: Any) -> Mapping[str, Dataset]:
    """A subset's splits: a ``DatasetDict``, or a lone ``Dataset`` as its ``train`` split."""
    if isinstance(value, Mapping):
        return value
    return {"train": value}


@dataclass(frozen=True)
class _Sharding:
    """How many parquet parts each split is written in."""

    max_bytes: int | None = None
    shards: int | None = None

    @classmethod
    def of(cls, max_shard_size: str | int | None, num_shards: int | None) -> _Sharding:
        if num_shards is not None and (not isinstance(num_shards, int) or num_shards < 1):
            raise DistisetError(f"num_shards must be a whole number >= 1, got {num_shards!r}")
        if max_shard_size is None:
            return cls(None, num_shards)
        from datasets.utils.py_utils import convert_file_size_to_int

        try:
            size = convert_file_size_to_int(max_shard_size)
        except ValueError:
            size = 0
        if size < 1:
            raise DistisetError(
                f"max_shard_size must be a size like '500MB' or a number of bytes, got "
                f"{max_shard_size!r}"
            )
        return cls(size, num_shards)

    def count(self, dataset: Dataset) -> int:
        rows = len(dataset)
        if self.shards is not None:
            return max(1, min(self.shards, rows))
        if self.max_bytes is None or rows == 0:
            return 1
        size: int = dataset.data.nbytes
        return max(1, min(rows, math.ceil(size / self.max_bytes)))


@dataclass(frozen=True)
class _TreeOptions:
    card: bool = True
    pipeline_config: bool = True
    pipeline_log: bool = True
    shards: _Sharding = _Sharding()


def _visible_dirs(path: Path) -> list[Path]:
    return sorted(p for p in path.iterdir() if p.is_dir() and not p.name.startswith("."))


def _is_url(location: str) -> bool:
    scheme, sep, _ = location.partition("://")
    return bool(sep) and scheme.isidentifier() and scheme != "file"


def _filesystem(location: str, storage_options: dict[str, Any]) -> tuple[Any, str]:
    from fsspec.core import url_to_fs  # type: ignore[import-untyped]

    try:
        fs, root = url_to_fs(location, **storage_options)
    except (ImportError, ValueError) as exc:
        raise DistisetError(f"can't reach {location}: {_reason(exc)}") from None
    return fs, str(root).rstrip("/")


def _download(
    location: str, storage_options: dict[str, Any], download_dir: str | os.PathLike[str] | None
) -> Path:
    fs, root = _filesystem(location, storage_options)
    if not fs.isdir(root):
        raise DistisetError(f"no saved distiset at {location}: not a directory")
    local = (
        Path(download_dir).expanduser()
        if download_dir is not None
        else Path(tempfile.mkdtemp(prefix="synthflow-distiset-"))
    )
    try:
        for remote in fs.find(root):
            target = local / str(remote)[len(root) :].lstrip("/")
            target.parent.mkdir(parents=True, exist_ok=True)
            fs.get_file(remote, str(target))
    except OSError as exc:
        raise DistisetError(f"can't read the distiset at {location}: {_reason(exc)}") from None
    return local


def _running_script() -> Path:
    """The script that is running, for ``push_to_hub(include_script=True)``."""
    script = Path(sys.argv[0]) if sys.argv and sys.argv[0] else None
    if script is None or script.suffix != ".py" or not script.is_file():
        raise DistisetError(
            "include_script=True uploads the running script, but this is not a Python script "
            f"run from a file ({sys.argv[0] if sys.argv else ''!r}); push with "
            "include_script=False and upload the script yourself"
        )
    return script


def check_output_dir(target: Path) -> None:
    """Raise DistisetError unless a Distiset can be saved to ``target``; the CLI calls it
    before a run, so a long run doesn't end on a directory it can't write."""
    if target.exists() and not target.is_dir():
        raise DistisetError(f"can't save to {target}: it exists and is not a directory")
    if target.is_dir() and any(target.iterdir()) and not _is_saved_distiset(target):
        raise DistisetError(
            f"can't save to {target}: it holds other files, and synthflow replaces only an empty "
            "directory or a saved distiset; choose another directory"
        )
    ancestor = target.parent
    while not ancestor.exists() and ancestor != ancestor.parent:
        ancestor = ancestor.parent
    if not ancestor.is_dir():
        raise DistisetError(f"can't save to {target}: {ancestor} is a file, not a directory")
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=target.parent):
            pass
    except OSError as exc:
        raise DistisetError(f"can't write to {target.parent}: {_reason(exc)}") from None


def check_repo_id(repo_id: str) -> None:
    if not _REPO_ID.match(repo_id) or ".." in repo_id:
        raise DistisetError(
            f"repo id {repo_id!r} must look like ORG/NAME (e.g. my-org/my-data), or NAME alone "
            "for a repository of your own account"
        )


def _with_namespace(repo_id: str, api: Any) -> str:
    """``repo_id`` with its owner: a bare ``NAME`` belongs to the account the token is of, as
    ``huggingface_hub`` (and distilabel) read it."""
    if "/" in repo_id:
        return repo_id
    try:
        owner = api.whoami()["name"]
    except Exception as exc:  # no token, a refused one, or no answer: all say the same to fix
        raise DistisetError(
            f"repo id {repo_id!r} has no ORG/ and the Hub can't say whose account it is "
            f"({type(exc).__name__}: {_reason(exc)}): give ORG/NAME, or log in "
            "(huggingface-cli login, or set HF_TOKEN)"
        ) from None
    return f"{owner}/{repo_id}"


def _is_saved_distiset(path: Path) -> bool:
    return (path / RUN_FILE).is_file()


def _move_into_place(tmp: Path, target: Path) -> None:
    if not target.exists():
        os.rename(tmp, target)
        return
    old = target.with_name(f".{target.name}.old-{uuid.uuid4().hex[:8]}")
    os.rename(target, old)
    try:
        os.rename(tmp, target)
    except OSError:
        os.rename(old, target)
        raise
    shutil.rmtree(old, ignore_errors=True)


def _write_parquet(dataset: Dataset, path: Path) -> None:
    import pyarrow.parquet as pq

    schema = dataset.features.arrow_schema  # carries the datasets features as metadata
    with _disk.open_for_writing(path) as sink, pq.ParquetWriter(sink, schema) as writer:
        for table in dataset.with_format("arrow").iter(batch_size=_WRITE_BATCH_ROWS):
            writer.write_table(table.cast(schema))


def _read_parquet(parts: list[Path]) -> Dataset:
    import pyarrow as pa
    import pyarrow.parquet as pq
    from datasets import Dataset

    tables = [pq.read_table(str(p)) for p in parts]
    return Dataset(pa.concat_tables(tables) if len(tables) > 1 else tables[0])


def _stats_from_dict(data: dict[str, Any]) -> StepStats:
    from synthflow.pipeline.stats import StepStats

    known = {f.name for f in fields(StepStats)}
    stats = StepStats(**{k: v for k, v in data.items() if k in known and k != "llm"})
    llm = data.get("llm")
    if isinstance(llm, dict):
        try:
            from synthflow.models.callpath.calls import LLMCallStats

            names = {f.name for f in fields(LLMCallStats)}
            stats.llm = LLMCallStats(**{k: v for k, v in llm.items() if k in names})
        except (ImportError, TypeError):
            pass
    return stats


def _mermaid(config: dict[str, Any]) -> str:
    from synthflow.pipeline_file import connections_of, models_of, pipeline_section

    body = pipeline_section(config, strict=False)
    ids: dict[str, str] = {}
    lines = ["flowchart TD"]
    for i, spec in enumerate(body.get("steps") or []):
        name = str(spec.get("name"))
        ids[name] = f"s{i}"
        label = [name, str((spec.get("type_info") or {}).get("name", "?"))]
        label += [model for _cls, model in models_of(spec) if model]
        text = "<br/>".join(_mermaid_text(part) for part in label)
        lines.append(f'    {ids[name]}["{text}"]')
    for a, b in connections_of(body):
        if a in ids and b in ids:
            lines.append(f"    {ids[a]} --> {ids[b]}")
    return "\n".join(lines)


def _mermaid_text(text: str) -> str:
    return (
        text.replace("&", "&amp;").replace('"', "#quot;").replace("<", "&lt;").replace(">", "&gt;")
    )


def _models_table(config: dict[str, Any]) -> list[str]:
    from synthflow.pipeline_file import models_of, pipeline_section

    rows = []
    for spec in pipeline_section(config, strict=False).get("steps") or []:
        for cls, model in models_of(spec):
            rows.append(f"| {spec.get('name')} | {cls} | {model or ''} |")
    return ["| step | client | model |", "|---|---|---|", *rows] if rows else []


def _size_category(rows: int) -> str:
    bounds = [(1_000, "n<1K"), (10_000, "1K<n<10K"), (100_000, "10K<n<100K")]
    bounds += [(1_000_000, "100K<n<1M"), (10_000_000, "1M<n<10M"), (100_000_000, "10M<n<100M")]
    for limit, label in bounds:
        if rows < limit:
            return label
    return "n>100M"


def _reason(exc: BaseException) -> str:
    if isinstance(exc, OSError) and exc.strerror:
        where = f" ({exc.filename})" if exc.filename else ""
        return f"{exc.strerror}{where}"
    return " ".join(str(exc).split()) or type(exc).__name__
