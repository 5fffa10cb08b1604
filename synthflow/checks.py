"""The catalog's contract as executable checks, as scikit-learn's ``check_estimator`` is for
estimators: a task or step is done when it passes them, and no reviewer has to remember the rules.

Run them on your own class::

    from synthflow.checks import StepSpec, check_step

    check_step(StepSpec(MyTask, {"num_items": 3}, answer="1. first\\n2. second\\n3. third"))

or as one pytest case per check and class::

    from synthflow.checks import StepSpec, parametrize_with_checks

    @parametrize_with_checks([StepSpec(MyTask, {"num_items": 3}), StepSpec(MyStep)])
    def test_conformance(spec, check):
        check(spec)

A ``StepSpec`` says how to build the class and feed it: the constructor's keyword arguments, input
rows (by default one row with a short text in each input column) and, for tasks, a well-formed
answer to script the LLM with (by default the built-in ``OfflineLLM`` answers). Tasks never get an
LLM from the spec's keyword arguments for the malformed-answer check: it scripts its own.

The checks (``CHECKS``, in order):

- ``check_constructible``: builds from the spec, with every field the class adds documented (a
  ``Field(description=...)`` or a mention in the docstring) and stored as given.
- ``check_docstring``: the class docstring names every input and output column (columns named by
  the configuration, like ``KeepColumns(columns=[...])``, or by the data a loader reads, are
  exempt), every runtime parameter the
  class adds, and, for a task from a paper (``paper=True``), cites it with an arXiv id.
- ``check_standalone``: ``load()``, then ``process`` (sync or async) on the example rows, then
  ``unload()``: every row comes out with the declared ``outputs``, and adds no other column; the
  step's configuration is unchanged.
- ``check_in_pipeline``: the same through ``LoadDataFromDicts >> step`` in a pipeline run.
- ``check_yaml_round_trip``: the pipeline saved as YAML and JSON and loaded back has the same
  signature, the same dump, and the step the same columns.
- ``check_picklable``: the step pickles (``executor="process"`` sends it to workers).
- ``check_malformed_answers`` (tasks: the steps that parse an LLM's answer): garbage, an empty
  string, ``None`` and refusals from a scripted LLM never raise out of a pipeline run (each row
  is kept, its outputs null); standalone, ``format_output`` may raise nothing but
  ``OutputParseError``.
"""

from __future__ import annotations

import asyncio
import copy
import itertools
import pickle
import re
import tempfile
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import anyio
from pydantic import BaseModel

from synthflow.errors import OutputParseError
from synthflow.models.llms.base import LLM
from synthflow.runtime_parameters import is_runtime_field
from synthflow.steps.base import (
    FAILED,
    METADATA_COLUMN,
    ROW_ID,
    GeneratorStep,
    GlobalStep,
    Row,
    Step,
    _Step,
    batch_rows,
)
from synthflow.steps.tasks.base import ERROR_COLUMN, Task
from synthflow.steps.tasks.typing import ChatType

if TYPE_CHECKING:
    from synthflow.pipeline.pipeline import Pipeline

Answer = str | None | Callable[[ChatType], str | None]

MALFORMED_ANSWERS: tuple[str | None, ...] = (
    "",
    None,
    '}{ ][ ```json\n{"not": valid,,\n``` \x00 lorem ipsum',
    "I'm sorry, but I can't help with that request.",
    '{"unexpected": ["shape", 1, null], "of": {"json": true}}',
    "1.\n2.\n3.",
)
"""What ``check_malformed_answers`` scripts the LLM to answer: empty, nothing, broken JSON with
prose, a refusal, well-formed JSON of the wrong shape, a numbered list with nothing in it."""

_IGNORED = frozenset({METADATA_COLUMN, ROW_ID, ERROR_COLUMN})
"""Columns every task may add besides its outputs (per-row metadata, lineage, the row's error)."""

_ARXIV_RE = re.compile(r"arXiv[:\s]*\d{4}\.\d{4,5}|arxiv\.org/abs/\d{4}\.\d{4,5}", re.IGNORECASE)


class CheckFailed(AssertionError):
    """A class does not meet the catalog contract; the message says which rule and why."""


@dataclass(frozen=True)
class StepSpec:
    """How the checks build a catalog class and feed it.

    Args:
        cls: the task or step class.
        kwargs: constructor keyword arguments beyond the defaults (tasks get ``llm`` from the
            checks unless given here).
        rows: input rows; default: one row with a short text in each of the step's inputs.
        answer: for tasks, a well-formed answer (a text, or a function of the messages) to
            script the LLM with; default: the built-in ``OfflineLLM`` answers.
        paper: whether the class implements a paper, which its docstring must cite.
        data_columns: the output columns are the data's (a loader reading files), so the
            docstring can't name them.
        id: the name of this case in test ids; default: the class name.
    """

    cls: type[_Step]
    kwargs: Mapping[str, Any] = field(default_factory=dict)
    rows: Sequence[Row] | None = None
    answer: Answer = None
    paper: bool = False
    data_columns: bool = False
    id: str | None = None

    @property
    def name(self) -> str:
        return self.id or self.cls.__name__

    @property
    def takes_llm(self) -> bool:
        return "llm" in self.cls.model_fields

    def build(self, llm: LLM | None = None, *, name: str | None = None) -> _Step:
        """A new instance; ``llm`` replaces the spec's (or the default offline) LLM."""
        kwargs = dict(self.kwargs)
        if name is not None:
            kwargs["name"] = name
        if self.takes_llm:
            if llm is not None:
                kwargs["llm"] = llm
            else:
                kwargs.setdefault("llm", _offline())
        return self.cls(**kwargs)

    def answering_llm(self) -> LLM | None:
        """The LLM that gives well-formed answers: the scripted ``answer``, else the default."""
        if not self.takes_llm or self.answer is None:
            return None
        return _scripted(self.answer)

    def input_rows(self, step: _Step) -> list[Row]:
        if self.rows is not None:
            return copy.deepcopy(list(self.rows))
        return [{column: f"An example {column}." for column in step.inputs}]


def _offline() -> LLM:
    from synthflow.testing import OfflineLLM

    return OfflineLLM()


def _scripted(answer: Answer) -> LLM:
    from synthflow.testing import FunctionLLM

    if callable(answer):
        return FunctionLLM(fn=answer)
    text = answer
    return FunctionLLM(fn=lambda messages: text)


# -- the checks ---------------------------------------------------------------------------------


def check_constructible(spec: StepSpec) -> None:
    """Builds from the spec; the fields the class adds are documented and stored as given."""
    try:
        step = spec.build()
    except Exception as exc:
        _fail(spec, f"can't be built with {dict(spec.kwargs)!r}: {type(exc).__name__}: {exc}")
    for name, value in spec.kwargs.items():
        if name != "llm" and getattr(step, name) != value:
            _fail(spec, f"field {name!r} holds {getattr(step, name)!r}, not the {value!r} given")
    doc = spec.cls.__doc__ or ""
    for name in _own_fields(spec.cls):
        info = spec.cls.model_fields[name]
        if not info.description and not _mentions(doc, name):
            _fail(spec, f"field {name!r} is undocumented: give it Field(description=...)")
    for kind in ("inputs", "outputs"):
        columns = getattr(step, kind)
        if not isinstance(columns, list) or not all(isinstance(c, str) for c in columns):
            _fail(spec, f"{kind} must be a list of column names, got {columns!r}")
        if len(set(columns)) != len(columns):
            _fail(spec, f"{kind} names a column twice: {columns!r}")
    if spec.takes_llm and "model_name" not in step.outputs:
        _fail(spec, "a task's outputs include 'model_name', as distilabel's do")


def check_docstring(spec: StepSpec) -> None:
    """The docstring names the columns, the runtime parameters and (for papers) the paper."""
    doc = spec.cls.__doc__ or ""
    if not doc.strip():
        _fail(spec, "has no docstring: say what it does, its input and output columns")
    step = spec.build()
    configured = _strings(spec.kwargs)
    for column in [*step.inputs, *([] if spec.data_columns else step.outputs)]:
        if any(value and value in column for value in configured):
            continue  # named by the configuration, not by the class
        if not _mentions(doc, column):
            _fail(spec, f"the docstring doesn't name its column {column!r}")
    for name in _own_fields(spec.cls):
        if is_runtime_field(spec.cls, name) and not _mentions(doc, name):
            _fail(spec, f"the docstring doesn't document its runtime parameter {name!r}")
    if spec.paper and not _ARXIV_RE.search(doc):
        _fail(spec, "the docstring doesn't cite its paper (authors, title, arXiv id)")


def check_standalone(spec: StepSpec) -> None:
    """``load()``, ``process`` and ``unload()`` outside a pipeline, as distilabel users do; its
    configuration is the same afterwards (a run must not change what the pipeline is)."""
    from synthflow.serialization import dump_step

    step = spec.build(spec.answering_llm())
    rows = spec.input_rows(step)
    before = dump_step(step)
    step.load()
    try:
        out = _process(step, copy.deepcopy(rows))
    except Exception as exc:
        cause = _unwrap(exc)
        _fail(spec, f"process raised {type(cause).__name__}: {cause}")
    finally:
        step.unload()
    if not out and not isinstance(step, GlobalStep):
        _fail(spec, "process yielded no rows for the example input")
    failed = [row[FAILED] for row in out if row.get(FAILED)]
    if failed:
        _fail(spec, f"process failed a row on a well-formed answer: {failed[0]}")
    if dump_step(step) != before:
        _fail(spec, "running it changed its configuration; keep run state in private attributes")
    _check_columns(spec, step, rows, out, where="standalone")


def check_in_pipeline(spec: StepSpec) -> None:
    """The step runs in a pipeline fed by ``LoadDataFromDicts`` with the declared columns."""
    rows = spec.input_rows(spec.build())
    out = _run(spec, spec.answering_llm(), rows)
    step = spec.build()
    if not out and not isinstance(step, GlobalStep):
        _fail(spec, "the pipeline produced no rows")
    errors = [r[ERROR_COLUMN] for r in out if r.get(ERROR_COLUMN)]
    if errors:
        _fail(spec, f"rows failed in the pipeline on well-formed answers: {errors[0]}")
    _check_columns(spec, step, rows, out, where="in a pipeline")


def check_yaml_round_trip(spec: StepSpec) -> None:
    """Saved as YAML (and JSON) and loaded back, the pipeline is the same pipeline."""
    from synthflow.pipeline import Pipeline
    from synthflow.serialization import to_text

    pipeline, step = _pipeline(spec, None, spec.input_rows(spec.build()))
    # The class's module, and those of the models given to it (a user's LLM, embeddings).
    allowed = [spec.cls.__module__, *(type(v).__module__ for v in _models(spec.kwargs))]
    for fmt in ("yaml", "json"):
        try:
            text = to_text(pipeline.dump(), fmt)
            load = Pipeline.from_yaml if fmt == "yaml" else Pipeline.from_json
            loaded = load(text, allowed_modules=allowed)
        except Exception as exc:
            _fail(spec, f"{fmt} round trip failed: {type(exc).__name__}: {exc}")
        if loaded.signature != pipeline.signature:
            _fail(spec, f"{fmt} round trip changed the pipeline signature")
        if loaded.dump() != pipeline.dump():
            _fail(spec, f"{fmt} round trip changed the pipeline's dump")
        again = loaded.steps[step.name]
        if (again.inputs, again.outputs) != (step.inputs, step.outputs):
            _fail(spec, f"{fmt} round trip changed the step's columns")


def check_picklable(spec: StepSpec) -> None:
    """The step pickles and unpickles to the same definition (process workers get a copy)."""
    from synthflow.serialization import dump_step

    step = spec.build()
    try:
        again = pickle.loads(pickle.dumps(step))
    except Exception as exc:
        _fail(spec, f"doesn't pickle: {type(exc).__name__}: {exc}")
    if dump_step(again) != dump_step(step):
        _fail(spec, "unpickled, it has another definition")


def check_malformed_answers(spec: StepSpec) -> None:
    """A task survives whatever a model writes: no exception leaves a pipeline run, every row is
    kept (outputs null when unreadable); ``format_output`` raises only ``OutputParseError``."""
    step = spec.build()
    if not spec.takes_llm or not isinstance(step, Task):
        return  # no answer to parse: a step that reads a model some other way (hidden states)
    rows = spec.input_rows(step)
    format_output = getattr(step, "format_output", None)
    if format_output is not None:
        for answer in MALFORMED_ANSWERS:
            try:
                columns = format_output(answer, copy.deepcopy(rows[0]))
            except OutputParseError:
                continue
            except Exception as exc:
                _fail(
                    spec,
                    f"format_output({answer!r}) raised {type(exc).__name__}: {exc}; raise "
                    "OutputParseError when an answer can't be read",
                )
            stray = set(columns) - set(step.outputs)
            if stray:
                _fail(spec, f"format_output({answer!r}) set undeclared columns {sorted(stray)}")
    answers = itertools.cycle(MALFORMED_ANSWERS)

    def malformed(messages: ChatType) -> str | None:
        return next(answers)

    many = [copy.deepcopy(row) for row in rows for _ in MALFORMED_ANSWERS]
    try:
        out = _run(spec, _scripted(malformed), many)
    except Exception as exc:
        _fail(spec, f"a malformed answer failed the run: {type(exc).__name__}: {exc}")
    if not isinstance(step, GeneratorStep) and len(out) < len(many):
        _fail(spec, f"{len(many) - len(out)} of {len(many)} rows with malformed answers were lost")
    for row in out:
        missing = [c for c in step.outputs if c not in row]
        if missing:
            _fail(spec, f"a row with a malformed answer lacks columns {missing}")


CHECKS: tuple[Callable[[StepSpec], None], ...] = (
    check_constructible,
    check_docstring,
    check_standalone,
    check_in_pipeline,
    check_yaml_round_trip,
    check_picklable,
    check_malformed_answers,
)


def check_step(spec: StepSpec | type[_Step], **spec_kwargs: Any) -> None:
    """Run every check on one class; raise ``CheckFailed`` on the first rule it breaks.
    ``check_step(MyTask, kwargs={...}, answer=...)`` builds the spec from keyword arguments."""
    if not isinstance(spec, StepSpec):
        spec = StepSpec(spec, **spec_kwargs)
    for check in CHECKS:
        check(spec)


def checks_for(specs: Sequence[StepSpec]) -> Iterator[tuple[StepSpec, Callable[[StepSpec], None]]]:
    """Every (spec, check) pair, for a test runner to run one by one."""
    for spec in specs:
        for check in CHECKS:
            yield spec, check


def parametrize_with_checks(specs: Sequence[StepSpec]) -> Any:
    """A ``pytest.mark.parametrize("spec, check", ...)`` decorator with one case per class and
    check, named ``<class>-<check>``."""
    import pytest

    pairs = list(checks_for(specs))
    ids = [f"{spec.name}-{check.__name__.removeprefix('check_')}" for spec, check in pairs]
    return pytest.mark.parametrize(("spec", "check"), pairs, ids=ids)


# -- helpers ------------------------------------------------------------------------------------


def _fail(spec: StepSpec, message: str) -> Any:
    raise CheckFailed(f"{spec.name}: {message}")


def _unwrap(exc: BaseException) -> BaseException:
    """The one error inside task-group wrappers (``process_rows`` runs rows in a task group)."""
    while isinstance(exc, BaseExceptionGroup) and len(exc.exceptions) == 1:
        exc = exc.exceptions[0]
    return exc


def _own_fields(cls: type[_Step]) -> list[str]:
    """Fields the class adds to the step kind it builds on."""
    bases = [b for b in (Task, GlobalStep, Step, GeneratorStep) if issubclass(cls, b)]
    inherited = set().union(*(b.model_fields for b in bases)) if bases else set()
    return [name for name in cls.model_fields if name not in inherited]


def _mentions(doc: str, word: str) -> bool:
    return re.search(rf"(?<![A-Za-z0-9_]){re.escape(word)}(?![A-Za-z0-9_])", doc) is not None


def _models(value: Any) -> list[BaseModel]:
    """The pydantic models in a configuration value."""
    if isinstance(value, BaseModel):
        return [value]
    if isinstance(value, Mapping):
        return [m for v in value.values() for m in _models(v)]
    if isinstance(value, list | tuple):
        return [m for v in value for m in _models(v)]
    return []


def _strings(value: Any) -> set[str]:
    """Every string in a configuration value, keys included."""
    if isinstance(value, str):
        return {value}
    if isinstance(value, Mapping):
        return {str(k) for k in value} | {s for v in value.values() for s in _strings(v)}
    if isinstance(value, list | tuple | set):
        return {s for v in value for s in _strings(v)}
    return set()


def _check_columns(
    spec: StepSpec, step: _Step, rows: list[Row], out: list[Row], *, where: str
) -> None:
    declared = set(step.outputs)
    given = {column for row in rows for column in row}
    if isinstance(step, GeneratorStep):
        given = set()
        produced = {column for row in out for column in row} - _IGNORED
        if produced != declared:
            _fail(spec, f"{where}: yields columns {sorted(produced)}, declares {sorted(declared)}")
    for row in out:
        present = set(row) - _IGNORED
        missing = declared - present
        if missing and not isinstance(step, GeneratorStep):
            _fail(spec, f"{where}: a row lacks declared output columns {sorted(missing)}")
        stray = present - given - declared
        if stray:
            _fail(spec, f"{where}: added undeclared columns {sorted(stray)}")


def _process(step: _Step, rows: list[Row]) -> list[Row]:
    """Drive ``process`` to the end: a plain or async iterator, as the step defines it."""
    process: Callable[..., Any] = getattr(step, "process")  # noqa: B009 (every kind has one)
    result = process(0) if isinstance(step, GeneratorStep) else process(rows)
    if hasattr(result, "__aiter__"):

        async def drain() -> list[Row]:
            return [r async for batch in result for r in batch_rows(batch)]

        rows_out: list[Row] = _run_coroutine(drain)
        return rows_out
    return [r for batch in result for r in batch_rows(batch)]


def _run_coroutine(fn: Callable[[], Any]) -> Any:
    """``anyio.run(fn)``, from a thread of its own when an event loop is already running."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return anyio.run(fn)
    box: list[Any] = []
    errors: list[BaseException] = []

    def target() -> None:
        try:
            box.append(anyio.run(fn))
        except BaseException as exc:
            errors.append(exc)

    thread = threading.Thread(target=target)
    thread.start()
    thread.join()
    if errors:
        raise errors[0]
    return box[0]


def _pipeline(spec: StepSpec, llm: LLM | None, rows: list[Row]) -> tuple[Pipeline, _Step]:
    from synthflow.pipeline import Pipeline
    from synthflow.steps.generators import LoadDataFromDicts

    with Pipeline(name="conformance") as pipeline:
        step = spec.build(llm, name="checked")
        if not isinstance(step, GeneratorStep):
            LoadDataFromDicts(name="rows", data=rows) >> step
    return pipeline, step


def _run(spec: StepSpec, llm: LLM | None, rows: list[Row]) -> list[Row]:
    """The rows that come out of ``LoadDataFromDicts(rows) >> step``."""
    pipeline, _ = _pipeline(spec, llm, rows)
    with tempfile.TemporaryDirectory(prefix="synthflow-checks-") as cache:
        pipeline.cache_dir = Path(cache)
        distiset = pipeline.run(use_cache=False, progress=False)
        return [dict(row) for split in distiset.values() for row in split["train"]]
