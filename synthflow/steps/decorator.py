"""``@step``: turn a generator function into a Step class."""

from __future__ import annotations

import contextlib
import inspect
import logging
from collections.abc import AsyncIterator, Callable, Generator, Iterator
from typing import Annotated, Any, Literal, cast

from pydantic import PrivateAttr, create_model

from synthflow.runtime_parameters import RUNTIME
from synthflow.steps.base import GeneratorStep, GlobalStep, Row, Step, StepOutput, _Step

_log = logging.getLogger("synthflow.steps")

StepType = Literal["normal", "global", "generator"]
_BASES: dict[str, type[_Step]] = {
    "normal": Step,
    "global": GlobalStep,
    "generator": GeneratorStep,
}


def step(
    inputs: list[str] | dict[str, bool] | None = None,
    outputs: list[str] | dict[str, bool] | None = None,
    step_type: StepType = "normal",
) -> Callable[[Callable[..., StepOutput]], type[_Step]]:
    """Make a Step class from a function that yields batches of rows.

        @step(inputs=["instruction"], outputs=["shout"])
        def Shout(inputs: StepInput, suffix: RuntimeParameter[str] = "!"):
            for row in inputs:
                row["shout"] = row["instruction"].upper() + suffix
            yield inputs

    Keyword parameters of the function after the inputs become fields of the step (annotate them
    ``RuntimeParameter[T]`` to make them settable through ``run(parameters=...)``). The class
    takes the function's name, module and docstring, so it pickles and serializes by reference.
    An output column the function never sets, in any row of a run, is named in one warning
    when the step ends.
    """
    if step_type not in _BASES:
        raise ValueError(f"step_type must be one of {sorted(_BASES)}, got {step_type!r}")
    base = _BASES[step_type]
    in_cols = column_names(inputs, required_only=True)
    out_cols = column_names(outputs)
    optional_cols = [c for c in column_names(inputs) if c not in in_cols]

    def decorator(func: Callable[..., StepOutput]) -> type[_Step]:
        signature = inspect.signature(func)
        fields: dict[str, Any] = {}
        hints = _field_annotations(func)
        params = list(signature.parameters.values())
        positional = [p for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
        for param in params:
            if step_type == "generator" and param.name == "offset":
                continue
            if param.kind is not inspect.Parameter.KEYWORD_ONLY and param.default is param.empty:
                continue  # the inputs (or offset) the engine passes positionally
            if param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD):
                continue
            annotation = hints.get(param.name, Any)
            default = ... if param.default is param.empty else param.default
            fields[param.name] = (annotation, default)
        field_names = list(fields)

        named = {p.name for p in positional}

        def process(self: _Step, *args: Any, **given: Any) -> StepOutput:
            # distilabel users call process(inputs=rows): for a function taking *inputs, that
            # is its first positional argument.
            if "inputs" in given and "inputs" not in named:
                args = (given.pop("inputs"), *args)
            kwargs = {name: getattr(self, name) for name in field_names}
            result: StepOutput = _noting_unset_columns(self, func(*args, **given, **kwargs))
            return result

        def unload(self: _Step) -> None:
            base.unload(self)
            _warn_unset_columns(self)

        namespace: dict[str, Any] = {
            "process": process,
            "unload": unload,
            "inputs": property(lambda self: list(in_cols)),
            "outputs": property(lambda self: list(out_cols)),
            "optional_inputs": property(lambda self: list(optional_cols)),
        }
        cls = cast(
            "type[_Step]",
            create_model(
                func.__name__,
                __base__=base,
                __module__=func.__module__,
                __doc__=func.__doc__,
                _unset_outputs=(set[str], PrivateAttr(default_factory=lambda: set(out_cols))),
                _made_rows=(bool, PrivateAttr(default=False)),
                **fields,
            ),
        )
        for key, value in namespace.items():
            setattr(cls, key, value)
        cls.__qualname__ = func.__qualname__
        if issubclass(cls, Step):
            cls.separate_inputs = any(p.kind is p.VAR_POSITIONAL for p in params) or (
                len([p for p in positional if p.default is p.empty]) > 1
            )
        return cls

    return decorator


def _noting_unset_columns(step: _Step, result: Any) -> Any:
    """``result`` (what ``process`` returned), noting as its batches pass which declared output
    columns are still unset in every row. Once each has been seen, a batch costs one set test."""
    if not step._unset_outputs:  # type: ignore[attr-defined]
        return result
    if inspect.isgenerator(result):
        return _note_sync(step, result)
    if inspect.isasyncgen(result):
        return _note_async(step, result)
    return result


def _note_sync(step: _Step, batches: Generator[Any, Any, Any]) -> Iterator[Any]:
    with contextlib.closing(batches):
        for batch in batches:
            _note(step, batch)
            yield batch


async def _note_async(step: _Step, batches: Any) -> AsyncIterator[Any]:
    try:
        async for batch in batches:
            _note(step, batch)
            yield batch
    finally:
        await batches.aclose()


def _note(step: _Step, batch: Any) -> None:
    unset: set[str] = step._unset_outputs  # type: ignore[attr-defined]
    if not unset:
        return
    rows: list[Row] = batch[0] if isinstance(batch, tuple) else batch
    if not rows:
        return
    step._made_rows = True  # type: ignore[attr-defined]
    # Usually the first row has every column: any() stops there.
    unset.difference_update([c for c in unset if any(c in row for row in rows)])


def _warn_unset_columns(step: _Step) -> None:
    unset: set[str] = step._unset_outputs  # type: ignore[attr-defined]
    if not unset or not step._made_rows:  # type: ignore[attr-defined]
        return
    names = ", ".join(repr(c) for c in sorted(unset))
    _log.warning(
        "step %r (%s) declares output %s %s but never set %s in any row: set it in the "
        "function (row[%r] = ...), or take it out of @step(outputs=...)",
        step.name,
        type(step).__name__,
        "column" if len(unset) == 1 else "columns",
        names,
        "it" if len(unset) == 1 else "them",
        sorted(unset)[0],
    )
    unset.clear()  # once per step


def column_names(
    columns: list[str] | dict[str, bool] | None, *, required_only: bool = False
) -> list[str]:
    """Column names from a list, or from distilabel's ``{column: required}`` mapping: with
    ``required_only``, the columns marked optional (False) are left out, since a step's
    inputs are the columns an earlier step must produce."""
    if isinstance(columns, dict):
        return [name for name, required in columns.items() if required or not required_only]
    return list(columns or [])


def _field_annotations(func: Callable[..., Any]) -> dict[str, Any]:
    """The parameters' annotations, evaluated one by one.

    distilabel's docs import ``StepOutput`` and friends under ``if TYPE_CHECKING:`` and write them
    as strings (or the module uses ``from __future__ import annotations``): such a name doesn't
    exist at run time. Only the keyword parameters' annotations matter (they type the fields),
    so the return annotation is never evaluated, and a parameter whose annotation can't be
    evaluated is typed ``Any`` (kept a runtime parameter when written ``RuntimeParameter[...]``).
    """
    raw = inspect.get_annotations(func)
    namespace = dict(getattr(func, "__globals__", {}))
    hints: dict[str, Any] = {}
    for name, annotation in raw.items():
        if name == "return":
            continue
        if not isinstance(annotation, str):
            hints[name] = annotation
            continue
        try:
            hints[name] = eval(annotation, namespace)  # what eval_str=True does, one name at a time
        except Exception:
            runtime = annotation.replace(" ", "").startswith("RuntimeParameter[")
            hints[name] = Annotated[Any, RUNTIME] if runtime else Any
    return hints
