"""The step model: Step, GeneratorStep and GlobalStep.

A step is a pydantic model (its fields are its configuration, and they serialize) with a
``process`` method. Rows are plain dicts. The engine decides how a step runs from its kind:

- ``GeneratorStep.process(offset)`` yields batches of new rows; it has no inputs.
- ``Step.process(*inputs)`` takes a batch of rows per predecessor and yields batches of rows. It
  may add or remove columns, drop rows, or add rows.
- ``GlobalStep.process(inputs)`` sees every row of its input at once.

``process`` may be a plain generator or an async generator. A plain generator runs on the event
loop, which suits quick work; ``executor="thread"`` or ``executor="process"`` moves slow work off
it (see the ``executor`` field).

Each row carries its lineage id under ``ROW_ID``. Steps that change rows in place, or copy them
with ``{**row, ...}`` / ``dict(row)``, keep it for free; a brand-new dict gets the id of the last
row of the batch it came from.
"""

from __future__ import annotations

import logging
import re
from collections.abc import AsyncIterator, Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Literal, TypeVar, overload

import orjson
from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, field_validator

from synthflow.runtime_parameters import RuntimeParameter
from synthflow.steps.resources import StepResources, apply_resources

if TYPE_CHECKING:
    from synthflow.pipeline.pipeline import Pipeline

Row = dict[str, Any]
StepInput = list[Row]
"""A batch of rows, as ``process`` receives it."""
StepOutput = Iterator[list[Row]] | AsyncIterator[list[Row]]
"""What ``process`` returns: an iterator (or async iterator) of batches of rows."""
GeneratorStepOutput = (
    Iterator[tuple[list[Row], bool]] | Iterator[list[Row]] | AsyncIterator[list[Row]]
)
"""What a generator step's ``process`` returns: batches, or distilabel's ``(batch, is_last)``."""


def batch_rows(batch: Any) -> list[Row]:
    """The rows of one batch that ``process`` yielded; distilabel's ``(batch, is_last)`` pairs
    are accepted too."""
    if isinstance(batch, tuple) and len(batch) == 2 and isinstance(batch[1], bool):
        batch = batch[0]
    return list(batch)


ROW_ID = "_sf_row_id"
"""The key under which every row carries its lineage id. It never reaches the final dataset."""

FAILED = "_sf_failed"
"""Private key a step sets on a row it could not process, with the error text as its value (a
task does so for a row whose answer it can't parse). The engine takes it off and applies the
step's ``on_error`` policy to that row alone."""

ERROR_COLUMN = "synthflow_error"
"""Column that holds the error of a row whose step failed under ``on_error="null"``."""

METADATA_COLUMN = "synthflow_metadata"
"""Column of per-row details from each task, shaped as distilabel's ``distilabel_metadata``:
``statistics_<task>`` (the call's input and output tokens), ``raw_output_<task>`` (the text the
model wrote) and ``raw_input_<task>`` (the messages sent); see ``Task``."""

ARTIFACTS_DIR = "artifacts"
"""Folder of a run's directory (and of a saved Distiset) that holds the steps' artifacts, as
``artifacts/<step>/<artifact>/``."""

_log = logging.getLogger("synthflow.steps")


def merge_rows(parts: Sequence[Row | None], owners: Mapping[str, int] | None = None) -> Row:
    """One row from a fan-in's branch rows (one per predecessor, in connection order; None for
    a routed branch the row didn't take).

    Branches carry their common ancestors' columns alike. A column that one branch wrote after
    the paths split is taken from that branch (``owners``: column -> branch index, worked out
    when the pipeline is validated, which refuses columns that several branches write, unless
    routing keeps them apart). ``METADATA_COLUMN`` keeps every branch's per-task entries.
    """
    row: Row = {}
    metadata: dict[str, Any] = {}
    for part in parts:
        if part is None:
            continue
        row.update(part)
        if isinstance(part.get(METADATA_COLUMN), dict):
            metadata.update(part[METADATA_COLUMN])
    if owners:
        for column, branch in owners.items():
            owner = parts[branch]
            if owner is not None and column in owner:
                row[column] = owner[column]
    if metadata:
        row[METADATA_COLUMN] = metadata
    return row


def takes_separate_inputs(step: _Step) -> bool:
    """Whether a step with several predecessors gets one batch per predecessor (its
    ``process`` takes ``*inputs``, or several parameters) rather than merged rows."""
    if not isinstance(step, Step):
        return False
    if step.separate_inputs is not None:
        return step.separate_inputs
    import inspect

    params = list(inspect.signature(step.process).parameters.values())
    return any(p.kind is p.VAR_POSITIONAL for p in params) or len(params) > 1


def settle_failures(
    step: _Step,
    rows: list[Row],
    outputs_on_failure: dict[str, Any] | None = None,
    record: Callable[[Row, Any], None] | None = None,
) -> tuple[list[Row], int]:
    """Apply ``step.on_error`` to the rows it marked as failed (``FAILED``); return the rows
    kept and how many had failed. Each failed row keeps its own error, which names the step:
    "null" gives it ``outputs_on_failure`` and the error in ``ERROR_COLUMN``, "drop" leaves it
    out, "fail" raises ``StepError`` naming the row. ``record(row, marker)`` sees each failed
    row first (a run's failure record)."""
    if not any(FAILED in row for row in rows):  # nearly every batch: a scan, no copy
        return rows, 0
    from synthflow.errors import StepError
    from synthflow.models.callpath.secrets import redact

    if outputs_on_failure is None:
        outputs_on_failure = step.outputs_on_failure()
    kept: list[Row] = []
    failed = 0
    for row in rows:
        message = row.pop(FAILED, None)
        if message is None:
            kept.append(row)
            continue
        failed += 1
        if record is not None:
            record(row, message)  # the record redacts what it writes
        message = redact(str(message))  # an error may quote a server that echoed the key
        if step.on_error == "fail":
            row_id = row.get(ROW_ID)
            where = "a row" if row_id is None else f"row {row_id}"
            raise StepError(
                f"step {step.name!r} failed on {where}: {message}",
                step=step.name,
                row_id=row_id,
            )
        if step.on_error == "null":
            # Not values an earlier step left under those names.
            row.update(
                step.outputs_on_failure() if outputs_on_failure is None else outputs_on_failure
            )
            row[ERROR_COLUMN] = f"{step.name}: {message}"
            kept.append(row)
    return kept, failed


ErrorPolicy = Literal["fail", "null", "drop"]
Executor = Literal["loop", "thread", "process"]

_StepT = TypeVar("_StepT", bound="_Step")

# distilabel's rule, exactly: a name is a path segment (run directories, artifacts), a YAML key
# and the head of a parameter path 'name.field', so neither '.' nor '/' nor spaces.
_NAME_RE = re.compile(r"[A-Za-z0-9_\-]+")


def _snake(name: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


class _Step(BaseModel):
    """What every step kind shares: name, column mappings, lifecycle, connections."""

    model_config = ConfigDict(
        arbitrary_types_allowed=True, validate_assignment=True, extra="forbid"
    )

    requirements: ClassVar[list[str]] = []
    """Packages (PEP 508) the step needs; ``@requirements([...])`` sets them and ``run`` checks."""

    name: str = Field(default="", description="Unique name of the step in its pipeline.")
    input_mappings: dict[str, str] = Field(
        default_factory=dict,
        description="Maps the step's input names to the row's column names.",
    )
    output_mappings: dict[str, str] = Field(
        default_factory=dict,
        description="Renames the step's output columns: {output_name: column_name}.",
    )
    on_error: ErrorPolicy = Field(
        default="fail",
        description="What an exception in process does: 'fail' cancels the run; 'null' keeps "
        "the rows with null outputs and the error in the 'synthflow_error' column; 'drop' "
        "drops them.",
    )
    executor: Executor = Field(
        default="loop",
        description="Where process runs: 'loop' on the event loop (quick work, async code), "
        "'thread' in worker threads (blocking I/O, code that releases the GIL), 'process' in a "
        "process pool (CPU-bound work, local models). With 'process', each worker unpickles the "
        "step and runs load() once. A task's model calls from threads are made on the run's "
        "loop (cached, counted, budgeted); a process takes only a local model (not cached or "
        "counted there), never an API client.",
    )
    workers: int = Field(
        default=1, ge=1, description="Threads or processes for executor='thread'/'process'."
    )
    isolate_failures: bool = Field(
        default=True,
        description="When process raises on a batch and on_error is 'null' or 'drop', run the "
        "batch again in halves to find the rows that fail, so the policy applies to them alone, "
        "each with its own error (about log2(batch size) more calls per failing row). Turn it "
        "off for a step with side effects: the policy then applies to the whole batch.",
    )

    resources: StepResources = Field(
        default_factory=StepResources,
        description="distilabel's resource request; replicas become workers (see "
        "synthflow.steps.resources).",
    )

    _pipeline: Pipeline | None = PrivateAttr(default=None)
    _workers_from_resources: bool = PrivateAttr(default=False)
    # Set by the engine before the step loads (and before it is pickled for a process pool),
    # so artifacts land in the run's directory whatever worker calls ``save_artifact``.
    _artifacts_root: Path | None = PrivateAttr(default=None)

    def __init__(self, /, **data: Any) -> None:
        # distilabel's Step(pipeline=p): join p as if built inside ``with p:``.
        pipeline = data.pop("pipeline", None)
        if pipeline is None:
            super().__init__(**data)
        else:
            with pipeline:
                super().__init__(**data)

    # Steps register with the pipeline that is open in a ``with Pipeline():`` block, if any.
    def model_post_init(self, context: Any, /) -> None:
        from synthflow.pipeline.pipeline import current_pipeline

        apply_resources(self)
        pipeline = current_pipeline()
        if pipeline is not None:
            pipeline.add_step(self)

    @field_validator("name")
    @classmethod
    def _check_name(cls, value: str) -> str:
        if value and not _NAME_RE.fullmatch(value):
            raise ValueError(
                f"step name {value!r} must hold only letters, digits, '_' and '-' (it is used "
                "in parameter paths like 'name.field' and as a directory name)"
            )
        return value

    def default_name(self) -> str:
        return _snake(type(self).__name__)

    @property
    def pipeline(self) -> Pipeline | None:
        return self._pipeline

    # -- columns ---------------------------------------------------------------------------

    @property
    def inputs(self) -> list[str]:
        """Columns the step reads. The engine checks an ancestor produces each one."""
        return []

    @property
    def outputs(self) -> list[str]:
        """Columns the step adds."""
        return []

    @property
    def optional_inputs(self) -> list[str]:
        """Columns the step reads when a row has them (distilabel's inputs marked ``False``):
        no step before it need produce them, and ``input_mappings`` may name them."""
        return []

    def mapped_inputs(self) -> list[str]:
        """``inputs`` as row column names, after ``input_mappings``."""
        return [self.input_mappings.get(c, c) for c in self.inputs]

    def mapped_outputs(self) -> list[str]:
        """``outputs`` as row column names, after ``output_mappings``."""
        return [self.output_mappings.get(c, c) for c in self.outputs]

    def outputs_on_failure(self) -> dict[str, Any]:
        """What a row that failed in this step gets in its output columns (row names): null."""
        return dict.fromkeys(self.mapped_outputs())

    # -- lifecycle -------------------------------------------------------------------------

    def load(self) -> None:
        """Acquire what ``process`` needs. Runs once before the first batch, in the worker that
        runs ``process`` (a pool process for ``executor="process"``)."""

    def unload(self) -> None:
        """Release what ``load`` acquired. Runs once after the last batch."""

    # -- artifacts -------------------------------------------------------------------------

    @property
    def artifacts_directory(self) -> Path | None:
        """Where this step's artifacts go in the run in progress (None outside a run)."""
        if self._artifacts_root is None:
            return None
        return self._artifacts_root / self.name

    def save_artifact(
        self,
        name: str,
        write_function: Callable[[Path], None],
        metadata: dict[str, Any] | None = None,
    ) -> None:
        """Save a file (or files) made by the step with the run's data, as distilabel does.

        ``write_function`` gets the directory ``artifacts/<step>/<name>/`` to write into, and
        ``metadata`` is saved beside it as ``metadata.json``. The Distiset lists them
        (``distiset.artifacts``) and ``save_to_disk`` / ``push_to_hub`` carry them. Outside a
        run (a step used alone) there is nowhere to keep them: a warning says so, and nothing
        is written."""
        if not name or "/" in name or "\\" in name or name in (".", ".."):
            raise ValueError(f"artifact name {name!r} must be a plain name (no '/'), e.g. 'index'")
        directory = self.artifacts_directory
        if directory is None:
            _log.warning(
                "step %r: artifact %r not saved: artifacts are kept only while the step runs "
                "in a pipeline",
                self.name,
                name,
            )
            return
        target = directory / name
        target.mkdir(parents=True, exist_ok=True)
        write_function(target)
        encoded = orjson.dumps(metadata or {}, option=orjson.OPT_INDENT_2, default=str)
        (target / "metadata.json").write_bytes(encoded + b"\n")

    # -- connections -----------------------------------------------------------------------

    def connect(self, *steps: _Step) -> None:
        """Send this step's rows to each of ``steps``."""
        for other in steps:
            _pipeline_of(self, other).connect(self, other)

    @overload
    def __rshift__(self, other: _StepT) -> _StepT: ...
    @overload
    def __rshift__(self, other: list[_StepT]) -> list[_StepT]: ...
    def __rshift__(self, other: _Step | list[_StepT]) -> _Step | list[_StepT]:
        if not isinstance(other, _Step | list):
            return NotImplemented  # a routing batch function: its __rrshift__ takes this step
        if isinstance(other, list):
            self.connect(*other)
            return other
        self.connect(other)
        return other

    def __rrshift__(self, other: Sequence[_Step]) -> _Step:
        for step in other:
            step.connect(self)
        return self


def _pipeline_of(a: _Step, b: _Step) -> Pipeline:
    from synthflow.errors import PipelineValidationError

    pa, pb = a.pipeline, b.pipeline
    if pa is not None and pb is not None and pa is not pb:
        raise PipelineValidationError(
            f"can't connect {a.name!r} and {b.name!r}: they belong to different pipelines"
        )
    pipeline = pa or pb
    if pipeline is None:
        raise PipelineValidationError(
            f"can't connect {a.default_name()!r} to {b.default_name()!r}: neither belongs to a "
            "pipeline; create them inside 'with Pipeline() as p:' or call p.add_step() first"
        )
    for step in (a, b):
        if step.pipeline is None:
            pipeline.add_step(step)
    return pipeline


class GeneratorStep(_Step):
    """A source of rows; the roots of a pipeline. Subclasses implement ``process(offset)``."""

    batch_size: RuntimeParameter[int] = Field(
        default=50, ge=1, description="Rows per batch the step yields."
    )

    numbers_rows: ClassVar[bool] = True
    """Whether the engine gives the rows their lineage ids, in the order they come. False for a
    source whose rows carry theirs already (a stage of a distributed run), at or above the
    ``offset`` it is given, in id order."""

    makes_rows_by_id: ClassVar[bool] = False
    """Whether ``process(offset, wanted=...)`` makes only the rows whose ids ``wanted`` (a
    predicate on lineage ids) accepts, each carrying its id and the same as in a run of every
    row: a source of independent rows seeded by their ids. The engine then asks it for the
    rows a shard owns, or that a retry re-runs, and nothing else is made. Any other source makes
    every row and the engine keeps the wanted ones; an LLM task that can't (its rows come from
    one call) is run whole by the first shard of a distributed run."""

    def process(self, *args: Any, **kwargs: Any) -> StepOutput:
        """``process(offset=0)``: yield batches of new rows, starting at row ``offset``.

        distilabel's ``(batch, is_last)`` tuples are accepted too."""
        raise NotImplementedError(f"{type(self).__name__} must implement process(offset)")


class Step(_Step):
    """A step that transforms batches of rows. Subclasses implement ``process(*inputs)``.

    With one predecessor ``process`` gets one batch. With several, the engine joins their rows by
    lineage and calls ``process(*batches)`` with one aligned batch per predecessor, in the order
    they were connected, when the method takes ``*inputs``; otherwise it merges each joined row
    into one dict (later predecessors win on shared columns).
    """

    input_batch_size: RuntimeParameter[int] = Field(
        default=50, ge=1, description="Rows per batch given to process."
    )

    separate_inputs: ClassVar[bool | None] = None
    """Whether process wants one batch per predecessor; None: read from its signature."""

    # Typed loosely so subclasses may declare ``process(self, inputs)`` or ``(self, *inputs)``.
    def process(self, *args: Any, **kwargs: Any) -> StepOutput:
        raise NotImplementedError(f"{type(self).__name__} must implement process(*inputs)")


class GlobalStep(Step):
    """A step that needs every row of its input at once, e.g. to drop duplicates.

    The engine buffers the input and calls ``process(inputs)`` once. Past ``spill_threshold``
    rows the buffer moves to disk: ``inputs`` is then a sequence backed by a file, read anew on
    each iteration, so iterate it and yield the rows to keep rather than mutating it in place.
    Each batch ``process`` yields goes on at once, so yield in batches (``DropDuplicates`` yields
    1,024 rows at a time) and the output is never all in memory either. (With
    ``executor="process"`` the worker sends its whole output back when ``process`` returns.)

    Output rows keep their lineage ids while they come out in id order (a filter, a dedup); from
    the first row that doesn't (a sort, a new row), the rest start a new lineage, numbered in
    output order. ``on_error`` ("null" or "drop") applies when ``process`` fails before it yields
    anything and its input was not spilled; a failure after that fails the run.
    """

    spill_threshold: RuntimeParameter[int] = Field(
        default=100_000,
        ge=1,
        description="Rows buffered in memory before the input spills to disk.",
    )
