"""A package's public names, imported on first use (PEP 562).

Importing any module of a package runs the package's ``__init__`` first; when that imports every
class the package exports, loading one LLM client imports them all. A package that lists its
names with ``lazy_exports`` imports a class's module only when the name is first used, so
``import synthflow.models.llms.offline`` (as a saved pipeline names it) costs one client.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable, Mapping
from typing import Any


def lazy_exports(
    package: str, homes: Mapping[str, str]
) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """``__getattr__`` and ``__dir__`` for ``package``; ``homes`` maps each public name to the
    module that defines it. A name, once imported, is set on the package, so later lookups
    are plain attribute reads."""
    namespace = vars(sys.modules[package])

    def __getattr__(name: str) -> Any:
        home = homes.get(name)
        if home is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(home), name)
        namespace[name] = value
        return value

    def __dir__() -> list[str]:
        return sorted({*namespace, *homes})

    return __getattr__, __dir__
