"""The failure record of a run: one JSON line per row that failed, written as it happens.

A row fails in one step (an LLM call that failed after its retries, an answer that never fit
its schema or couldn't be read, a step that raised on it, a worker process that died twice on
its batch). The step marks it with ``FAILED``, holding a ``RowFailure``; when the engine applies
the step's ``on_error`` policy (``settle_failures``) it hands each failed row to the run's
``FailureRecord``, which appends a line to ``failures.jsonl`` in the run's directory. The file
reads with ``datasets.load_dataset("json", data_files=...)`` or as plain JSON Lines: every field
is a number, a string, a list of strings or null, the same in every line.

Each line holds the row's source id (its lineage id, the position of its source row), the step
and the steps before it (``lineage``), the attempts made, the error's class, message and cause
(``llm``, ``schema``, ``parse``, ``step``, ``worker``), and the request sent and the raw
response received as text. Every line passes through ``redact`` before it is written: the one
place where secrets are taken out of the record.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

import orjson

from synthflow.models.callpath.secrets import redact  # the one redaction of the run
from synthflow.pipeline._disk import when_full
from synthflow.steps.base import ROW_ID, Row

FAILURES_FILE = "failures.jsonl"
_FREE_SPACE = "free space there and run again: the rows that failed are asked again"

CAUSES = ("llm", "schema", "parse", "step", "worker")
"""Why a row failed: an LLM call failed for good; the answer never fit its schema; the task
couldn't read its columns from the answer; the step raised on it; its worker process died."""


@dataclass
class RowFailure:
    """Why a row failed, as the step that failed it knows: what ``FAILED`` holds. Picklable,
    so a worker process can send it back with the row."""

    error_class: str
    message: str
    cause: str = "step"
    attempts: int = 1
    request: str | None = None
    """What was sent for the row (the chat messages, as JSON text), when there was a call."""
    response: str | None = None
    """The raw response received: the answer's text, or the error body of the endpoint."""

    def __str__(self) -> str:
        return f"{self.error_class}: {self.message}"

    @classmethod
    def of(
        cls,
        exc: BaseException,
        *,
        request: Any = None,
        response: str | None = None,
        attempts: int | None = None,
    ) -> RowFailure:
        """The failure of a row on which ``exc`` was raised."""
        from synthflow.errors import (
            LLMError,
            LLMSchemaError,
            LLMStatusError,
            OutputParseError,
            WorkerDiedError,
        )

        cause = "step"
        if isinstance(exc, LLMSchemaError):
            cause = "schema"
            response = response if response is not None else exc.answer
        elif isinstance(exc, LLMError):
            cause = "llm"
        elif isinstance(exc, OutputParseError):
            cause = "parse"
        elif isinstance(exc, WorkerDiedError):
            cause = "worker"
        if response is None and isinstance(exc, LLMStatusError):
            response = exc.body or None
        if attempts is None:
            attempts = 1 + exc.retries if isinstance(exc, LLMError) else 1
            if isinstance(exc, LLMSchemaError):
                attempts += exc.reasks
        return cls(
            error_class=type(exc).__name__,
            message=str(exc),
            cause=cause,
            attempts=attempts,
            request=as_text(request),
            response=response,
        )


def as_text(value: Any) -> str | None:
    """A request as text: as it is when it is text, else as JSON."""
    if value is None or isinstance(value, str):
        return value
    return orjson.dumps(value, default=str).decode()


def failure_of(marker: Any) -> RowFailure:
    """What a row's ``FAILED`` marker says, as a ``RowFailure`` (a plain text marker, as a
    user's step may set, names no class: the step raised it)."""
    if isinstance(marker, RowFailure):
        return marker
    text = str(marker)
    name, sep, message = text.partition(": ")
    if sep and name.isidentifier():
        return RowFailure(error_class=name, message=message)
    return RowFailure(error_class="Error", message=text)


class FailureRecord:
    """Appends one line per failed row to ``path``. A new run starts the file afresh; a run
    resumed at row ``keep_before`` keeps the lines of the rows before it (the others are made
    again). Lines are written (not fsynced) as rows fail, so a killed run keeps what failed
    before it died."""

    def __init__(
        self,
        path: Path,
        lineage: Mapping[str, Sequence[str]],
        *,
        keep_before: int | None = None,
    ) -> None:
        self.path = path
        self._lineage = {step: list(steps) for step, steps in lineage.items()}
        self._lock = threading.Lock()
        if keep_before is None:
            path.unlink(missing_ok=True)
        elif path.exists():
            kept = [
                orjson.dumps(r) + b"\n"
                for r in read_failures(path)
                if r.get("row_id") is not None and r["row_id"] < keep_before
            ]
            partial = path.with_suffix(".tmp")
            partial.write_bytes(b"".join(kept))
            partial.replace(path)
        self._file: BinaryIO | None = None  # opened by the first failure
        self.count = 0

    def record(self, step: str, row: Row, failure: RowFailure) -> None:
        line = {
            "row_id": row.get(ROW_ID),
            "step": step,
            "lineage": self._lineage.get(step, [step]),
            "cause": failure.cause,
            "error_class": failure.error_class,
            "error": failure.message,
            "attempts": failure.attempts,
            "request": failure.request,
            "response": failure.response,
            "time": time.time(),
        }
        text = redact(orjson.dumps(line, default=str).decode())
        with self._lock, when_full(self.path, _FREE_SPACE):
            if self._file is None:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                self._file = open(self.path, "ab")  # noqa: SIM115 (closed by close())
            self._file.write(text.encode() + b"\n")
            self._file.flush()
            self.count += 1

    def close(self) -> None:
        with self._lock:
            file, self._file = self._file, None
            if file is not None:
                with when_full(self.path, _FREE_SPACE):
                    file.close()


def read_failures(path: Path) -> list[dict[str, Any]]:
    """The lines of a failure record; a last line cut short by a crash is left out."""
    if not path.exists():
        return []
    records = []
    for line in path.read_bytes().splitlines():
        try:
            records.append(orjson.loads(line))
        except orjson.JSONDecodeError:
            continue
    return records


def failed_row_ids(records: Iterable[Mapping[str, Any]]) -> set[int]:
    """The source ids of the rows a failure record names."""
    return {int(r["row_id"]) for r in records if r.get("row_id") is not None}


def lineage_of(
    predecessors: Mapping[str, Sequence[str]], order: Iterable[str]
) -> dict[str, list[str]]:
    """For each step, the steps a row goes through to reach it, itself last, in run order."""
    ancestors: dict[str, set[str]] = {}
    ranks = {name: i for i, name in enumerate(order)}
    for name in ranks:
        seen: set[str] = set()
        for pred in predecessors.get(name, ()):
            seen |= ancestors[pred] | {pred}
        ancestors[name] = seen
    return {name: [*sorted(seen, key=ranks.__getitem__), name] for name, seen in ancestors.items()}
