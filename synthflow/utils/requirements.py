"""The packages a step or a pipeline needs to run, checked before the run starts.

``@requirements(["nltk>=3.8"])`` on a step class, and ``Pipeline(requirements=[...])`` for the
whole pipeline, take PEP 508 specifiers. ``pipeline.run()`` refuses to start while any of them
is not installed (``ModuleNotFoundError``, naming what to ``pip install``), as distilabel does.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from importlib.metadata import PackageNotFoundError, version
from typing import TypeVar

from packaging.requirements import InvalidRequirement, Requirement

T = TypeVar("T", bound=type)


def _parsed(spec: str) -> Requirement:
    try:
        return Requirement(spec)
    except InvalidRequirement as exc:
        raise ValueError(f"requirement {spec!r} is not a PEP 508 specifier: {exc}") from None


def requirements(specs: list[str]) -> Callable[[T], T]:
    """Declares the packages a step class needs (``@requirements(["nltk>=3.8"])``)."""
    checked = [str(_parsed(s)) for s in specs]

    def declare(cls: T) -> T:
        # Its own list: a subclass adds to what its bases need, never edits their list.
        inherited = list(getattr(cls, "requirements", []))
        declared = inherited + [s for s in checked if s not in inherited]
        setattr(cls, "requirements", declared)  # noqa: B010 - any class, typed as a TypeVar
        return cls

    return declare


def _satisfied(requirement: Requirement) -> bool:
    if requirement.marker is not None and not requirement.marker.evaluate():
        return True  # not meant for this platform or Python
    try:
        installed = version(requirement.name)
    except PackageNotFoundError:
        return False
    return requirement.specifier.contains(installed, prereleases=True)


def missing_requirements(specs: Iterable[str]) -> list[str]:
    """The specifiers of ``specs`` that the installed packages don't meet, in order, once."""
    missing: list[str] = []
    for spec in dict.fromkeys(specs):
        if not _satisfied(_parsed(spec)):
            missing.append(spec)
    return missing


def check_requirements(specs: Iterable[str]) -> None:
    missing = missing_requirements(specs)
    if missing:
        wanted = " ".join(f"'{s}'" for s in missing)
        raise ModuleNotFoundError(
            f"Please install the following requirements to run the pipeline: "
            f"{', '.join(missing)} (pip install {wanted})"
        )


__all__ = ["check_requirements", "missing_requirements", "requirements"]
