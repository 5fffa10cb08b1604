"""Runtime parameters: step and LLM fields that ``pipeline.run(parameters=...)`` may set.

A field is a runtime parameter when its annotation is ``RuntimeParameter[T]``::

    class MyStep(Step):
        temperature: RuntimeParameter[float] = 0.7

A runtime parameter the run can't do without may be left out when the step is built, as in
distilabel: declare it with ``default=None`` but a type that doesn't allow None, and supply it
later through ``run(parameters=...)`` or the CLI's ``--param``::

    class LoadThings(GeneratorStep):
        repo_id: RuntimeParameter[str] = Field(default=None, description="...")

When the run starts, ``missing_runtime_parameters`` names every one still unset, in one error.

Parameters nest: a field holding an LLM exposes the LLM's runtime parameters under its name, so
``{"gen": {"llm": {"generation_kwargs": {"temperature": 0.7}}}}`` reaches
``gen.llm.generation_kwargs``.
"""

from __future__ import annotations

import difflib
import types
import typing
from dataclasses import dataclass
from typing import Annotated, Any, TypeVar

from pydantic import BaseModel, ValidationError

from synthflow.errors import RuntimeParameterError

_T = TypeVar("_T")


class _RuntimeMarker:
    def __repr__(self) -> str:
        return "RuntimeParameter"


RUNTIME = _RuntimeMarker()
RuntimeParameter = Annotated[_T, RUNTIME]

GIVEN_LATER: Any = None
"""The default of a runtime parameter the run needs but the step may be built without
(``Field(default=GIVEN_LATER)``): None, as distilabel writes it, typed so checkers accept it."""


@dataclass(frozen=True, slots=True)
class RuntimeParameterInfo:
    path: str
    description: str | None
    optional: bool
    value: Any


def is_runtime_field(model: type[BaseModel], name: str) -> bool:
    field = model.model_fields[name]
    return any(meta is RUNTIME for meta in field.metadata) or _marked(field.annotation)


def _marked(annotation: Any) -> bool:
    """Whether a union holds a ``RuntimeParameter[...]``: distilabel writes
    ``Optional[RuntimeParameter[str]]``, which leaves the marker inside the union, where
    pydantic doesn't lift it into the field's metadata."""
    origin = typing.get_origin(annotation)
    if origin is Annotated:
        return any(meta is RUNTIME for meta in typing.get_args(annotation)[1:])
    if origin is typing.Union or origin is types.UnionType:
        return any(_marked(arg) for arg in typing.get_args(annotation))
    return False


def _allows_none(annotation: Any) -> bool:
    if annotation is None or annotation is type(None) or annotation is Any:
        return True
    origin = typing.get_origin(annotation)
    if origin is Annotated:
        return _allows_none(typing.get_args(annotation)[0])
    if origin is typing.Union or origin is types.UnionType:
        return any(_allows_none(arg) for arg in typing.get_args(annotation))
    return False


def _required_at_run(model: type[BaseModel], name: str) -> bool:
    """Whether the run needs a value: no default, or distilabel's ``default=None`` on a type
    that doesn't allow None (a value to be given later)."""
    field = model.model_fields[name]
    if field.is_required():
        return True
    return field.default is None and not _allows_none(field.annotation)


def missing_runtime_parameters(model: BaseModel, prefix: str = "") -> list[str]:
    """The dotted paths of ``model``'s runtime parameters that the run needs but that are still
    unset (None), recursing into nested models such as the LLM."""
    cls = type(model)
    missing = [
        f"{prefix}{name}"
        for name in cls.model_fields
        if is_runtime_field(cls, name)
        and getattr(model, name, None) is None
        and _required_at_run(cls, name)
    ]
    for name in cls.model_fields:
        value = getattr(model, name, None)
        if isinstance(value, BaseModel):
            missing.extend(missing_runtime_parameters(value, prefix=f"{prefix}{name}."))
    return missing


def unset_to_leave_out(model: type[BaseModel], name: str, value: Any) -> bool:
    """Whether a saved ``value`` is a runtime parameter still waiting for its value (None on a
    type that doesn't allow None): loading leaves it out, so the default applies again."""
    return (
        value is None
        and name in model.model_fields
        and is_runtime_field(model, name)
        and _required_at_run(model, name)
        and not model.model_fields[name].is_required()
    )


def _nested_models(model: BaseModel) -> dict[str, BaseModel]:
    """Fields holding pydantic models that themselves have runtime parameters (e.g. ``llm``)."""
    nested = {}
    for name in type(model).model_fields:
        value = getattr(model, name, None)
        if isinstance(value, BaseModel) and runtime_parameters_info(value):
            nested[name] = value
    return nested


def runtime_parameters_info(model: BaseModel, prefix: str = "") -> list[RuntimeParameterInfo]:
    """Every runtime parameter of ``model`` (recursively), with its dotted path."""
    infos: list[RuntimeParameterInfo] = []
    cls = type(model)
    for name, field in cls.model_fields.items():
        if is_runtime_field(cls, name):
            infos.append(
                RuntimeParameterInfo(
                    path=f"{prefix}{name}",
                    description=field.description,
                    optional=not _required_at_run(cls, name),
                    value=getattr(model, name, None),
                )
            )
    for name, value in _nested_models(model).items():
        infos.extend(runtime_parameters_info(value, prefix=f"{prefix}{name}."))
    return infos


_GENERATION_KWARGS = frozenset(
    {"temperature", "max_new_tokens", "max_tokens", "top_p", "top_k", "stop", "seed"}
    | {"frequency_penalty", "presence_penalty", "logprobs", "top_logprobs"}
)
"""Names a user may set directly on an LLM that belong in its ``generation_kwargs``."""


def _suggest(name: str, choices: list[str]) -> str:
    close = difflib.get_close_matches(name, choices, n=1, cutoff=0.6)
    if close:
        return f"did you mean {close[0]!r}?"
    return f"valid names: {', '.join(sorted(choices)) or '(none)'}"


def set_runtime_parameters(model: BaseModel, values: dict[str, Any], path: str) -> None:
    """Validate and assign ``values`` onto ``model``'s runtime parameters, recursing into LLMs.

    Raises RuntimeParameterError naming the full dotted path, with a near-match suggestion for
    unknown names and the expected type for bad values.
    """
    if not isinstance(values, dict):
        raise RuntimeParameterError(
            f"runtime parameters for {path!r} must be a mapping of name to value, "
            f"got {type(values).__name__}"
        )
    cls = type(model)
    nested = _nested_models(model)
    settable = [n for n in cls.model_fields if is_runtime_field(cls, n)]
    for name, value in values.items():
        where = f"{path}.{name}"
        if name in nested and isinstance(value, dict):
            set_runtime_parameters(nested[name], value, where)
        elif name in settable:
            try:
                setattr(model, name, value)
            except ValidationError as exc:
                expected = cls.model_fields[name].annotation
                shown = getattr(expected, "__name__", None) or repr(expected)
                reason = exc.errors()[0]["msg"] if exc.errors() else str(exc)
                raise RuntimeParameterError(
                    f"runtime parameter {where!r} expects {shown}, got {value!r}: {reason}"
                ) from None
            except RuntimeParameterError as exc:
                # A checked value (generation kwargs) names the key it refuses: point there.
                key = getattr(exc, "key", None)
                at = where if key is None else f"{where}.{key}"
                raise RuntimeParameterError(f"runtime parameter {at!r}: {exc}") from None
        elif "generation_kwargs" in settable and name in _GENERATION_KWARGS:
            raise RuntimeParameterError(
                f"unknown runtime parameter {where!r}: {name} is a generation kwarg; set it as "
                f"{path}.generation_kwargs.{name} ({{'generation_kwargs': {{{name!r}: ...}}}})"
            )
        else:
            raise RuntimeParameterError(
                f"unknown runtime parameter {where!r}: {_suggest(name, settable + list(nested))}"
            )
