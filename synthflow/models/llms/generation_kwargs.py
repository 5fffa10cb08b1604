"""The generation kwargs each LLM client takes, checked where they are set.

A client declares the kwargs its API takes, with their types, once: a ``TypedDict``
(``total=False``) in ``LLM.generation_kwargs_spec``. ``LLM`` checks ``generation_kwargs``
against it whenever they are set (the constructor, an assignment, ``run(parameters=...)``, the
CLI's ``--param``, a saved pipeline, ``llm.generate(..., **kwargs)``), so a misspelt name or a
value of the wrong type is a one-line error, with a suggestion, before any request is sent.
None is accepted for every kwarg (the API's default). Values are checked strictly (``"0.3"`` is
not a number) and kept as given.

``LLM.passthrough_generation_kwarg`` names the escape hatch: a mapping the client hands to its
provider unchecked (``extra_body`` for HTTP APIs), for fields synthflow doesn't know.
``LLM.unsupported_generation_kwargs`` names kwargs the API lacks, with the reason shown.
A class without a spec takes any kwargs, unchecked; subclasses inherit their parent's spec and
may extend it (a ``TypedDict`` subclass).
"""

from __future__ import annotations

import difflib
import functools
import types
import typing
from collections.abc import Mapping
from typing import Any, Literal, TypedDict

from pydantic import ConfigDict, TypeAdapter, ValidationError

from synthflow.errors import RuntimeParameterError

__all__ = [
    "CommonGenerationKwargs",
    "GenerationKwargsError",
    "check_generation_kwargs",
    "declared_generation_kwargs",
]

Stop = str | list[str]
"""A stop string, or several."""


class CommonGenerationKwargs(TypedDict, total=False):
    """The portable names synthflow documents, which every client maps to its API's."""

    temperature: float
    max_new_tokens: int
    max_tokens: int
    top_p: float
    top_k: int
    stop: Stop
    seed: int
    frequency_penalty: float
    presence_penalty: float
    logprobs: bool
    top_logprobs: int


class GenerationKwargsError(RuntimeParameterError):
    """A generation kwarg the client doesn't take, or a value of the wrong type.

    ``key`` is the kwarg; ``reason`` the message without the client's name, so that a runtime
    parameter error can name the full path instead."""

    def __init__(self, owner: str, key: str, reason: str) -> None:
        super().__init__(f"{owner}: {reason}")
        self.key = key
        self.reason = reason


_STRICT = ConfigDict(strict=True)


@functools.cache
def declared_generation_kwargs(spec: type) -> dict[str, Any]:
    """The kwargs a spec declares, with their types (a parent ``TypedDict``'s included)."""
    return typing.get_type_hints(spec)


@functools.cache
def _adapter(spec: type, key: str) -> TypeAdapter[Any]:
    hint = declared_generation_kwargs(spec)[key]
    optional: Any = typing.Optional[hint]  # noqa: UP045 - built at runtime from a hint
    return TypeAdapter(optional, config=_STRICT)


def check_generation_kwargs(
    owner: str,
    spec: type | None,
    kwargs: Mapping[str, Any],
    *,
    unsupported: Mapping[str, str] | None = None,
    passthrough: str | None = None,
) -> None:
    """Raise ``GenerationKwargsError`` for the first kwarg ``owner`` doesn't take (an unknown
    name, one in ``unsupported``, or a value that isn't of its declared type)."""
    if spec is None:
        return
    declared = declared_generation_kwargs(spec)
    for key, value in kwargs.items():
        if not isinstance(key, str):
            raise GenerationKwargsError(
                owner, str(key), f"generation kwarg names are strings, got {key!r}"
            )
        if unsupported and key in unsupported:
            raise GenerationKwargsError(
                owner,
                key,
                f"can't take {key!r} ({unsupported[key]}): remove it from generation_kwargs",
            )
        if key not in declared:
            raise GenerationKwargsError(owner, key, _unknown(key, declared, passthrough))
        try:
            _adapter(spec, key).validate_python(value)
        except ValidationError:
            shown = _describe(declared[key])
            raise GenerationKwargsError(
                owner, key, f"generation kwarg {key!r} takes {shown}, got {value!r}"
            ) from None


def _unknown(key: str, declared: Mapping[str, Any], passthrough: str | None) -> str:
    message = f"unknown generation kwarg {key!r}"
    close = difflib.get_close_matches(key, list(declared), n=1, cutoff=0.6)
    if close:
        message += f": did you mean {close[0]!r}?"
    if passthrough:
        message += f" (a field only your provider knows goes in {passthrough})"
    elif not close:
        message += f"; it takes {', '.join(sorted(declared))}"
    return message


_NAMES = {
    float: "a number",
    int: "an integer",
    bool: "true or false",
    str: "a string",
    dict: "a mapping",
    list: "a list",
}


def _describe(hint: Any) -> str:
    """A type as the error says it: ``str | list[str]`` -> "a string or a list of strings"."""
    origin = typing.get_origin(hint)
    if origin is typing.Union or origin is types.UnionType:
        return " or ".join(_describe(arg) for arg in typing.get_args(hint) if arg is not type(None))
    if origin is Literal:
        return "one of " + ", ".join(repr(arg) for arg in typing.get_args(hint))
    if origin is list:
        (item,) = typing.get_args(hint) or (Any,)
        inner = _describe(item)
        return (
            "a list"
            if item is Any
            else f"a list of {inner.removeprefix('a ').removeprefix('an ')}s"
        )
    if origin is dict or hint is dict:
        return "a mapping"
    if hint is Any:
        return "any value"
    return _NAMES.get(hint, getattr(hint, "__name__", repr(hint)))
