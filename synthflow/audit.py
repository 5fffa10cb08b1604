"""What a pipeline reaches outside itself: the endpoints it calls (and with whose key), the
paths and URLs it reads and writes, and the settings that run code it didn't ship with.

Each step and model reports its own with a method ``exposures(where)`` (the ``Exposing``
protocol); ``exposures_of`` walks a step and every model nested in it. synthflow's classes
state theirs as rules over their field values (``synthflow.exposure_rules``), so
``file_exposures`` reads a pipeline file's from its data, without building (or importing) the
classes it names. ``synthflow pipeline info`` renders them, and ``synthflow.trust`` refuses the
risky ones of a pipeline loaded from a file before it runs.

pydantic is imported only to walk built models: ``pipeline info --config`` never imports it.
"""

from __future__ import annotations

import os
import urllib.parse
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, Protocol, runtime_checkable

if TYPE_CHECKING:
    from pydantic import BaseModel


@dataclass(frozen=True)
class Endpoint:
    """An HTTP API a model calls."""

    where: str
    """The step and field that holds the model, e.g. ``generate.llm``."""
    provider: str
    url: str
    """The URL requests go to, as resolved now (argument, environment variable or default)."""
    setting: str | None
    """The URL as set on the model (``base_url``); None when it comes from ``url_env`` or is
    the provider's default."""
    key_env: str | None
    """The environment variable the key it sends comes from; None when it sends no key from
    the environment (none set, or one given to the model itself)."""
    key_given: bool
    """It was given a key of its own (``api_key=...``)."""
    key_envs: tuple[str, ...] = ()
    """Every variable it would read a key from."""
    own_hosts: tuple[str, ...] = ()
    """The provider's own hosts, where its key belongs."""
    url_env: str | None = None
    """The variable that names its endpoint (``OPENAI_BASE_URL``)."""
    inspected: bool = True
    """False when read from a file's text for a class that wasn't imported (its key unknown)."""

    @property
    def host(self) -> str:
        return host_of(self.url)

    def key_text(self) -> str:
        if not self.inspected:
            return "key: unknown, the class was not imported"
        if self.key_given:
            return "key given in the pipeline"
        if self.key_env:
            return f"key from ${self.key_env}"
        if self.key_envs:
            return f"no key (${' / $'.join(self.key_envs)} not set)"
        return "no key"


@dataclass(frozen=True)
class DataAccess:
    """A local path or URL a step reads or writes."""

    where: str
    target: str
    mode: Literal["reads", "writes", "loads"]
    """"loads": a model's weights, which don't reach any row (not restricted)."""

    @property
    def local(self) -> bool:
        """A path on this machine (not a Hub repo, an http(s) or a cloud storage URL)."""
        scheme = urllib.parse.urlsplit(self.target).scheme
        return scheme in ("", "file") or len(scheme) == 1  # "C:" is a drive, not a scheme

    def local_path(self) -> Path:
        """The path, absolute, up to its first glob character (``data/*.jsonl`` -> ``data``)."""
        text = self.target.removeprefix("file://")
        cut = min((i for i, c in enumerate(text) if c in "*?["), default=len(text))
        return Path(os.path.abspath(Path(text[:cut] or ".").expanduser()))


@dataclass(frozen=True)
class ForeignCode:
    """Code from outside synthflow that the pipeline runs."""

    where: str
    what: str
    """``trust_remote_code`` (a model repo's own Python code), or ``module NAME``."""


Exposure = Endpoint | DataAccess | ForeignCode


@runtime_checkable
class Exposing(Protocol):
    def exposures(self, where: str) -> Iterator[Exposure]:
        """What this object itself reaches (not the models nested in it: ``exposures_of``
        walks those)."""


TRUSTED_PACKAGE = "synthflow"


def exposures_of(model: BaseModel, where: str) -> Iterator[Exposure]:
    """Everything ``model`` and the models nested in its fields reach, each once."""
    from pydantic import BaseModel  # a built model's module has it: no cost

    seen: set[Exposure] = set()
    for item in _walk(model, where, BaseModel):
        if item not in seen:
            seen.add(item)
            yield item


def pipeline_exposures(steps: Mapping[str, BaseModel]) -> list[Exposure]:
    """The exposures of every step, by step name."""
    out: list[Exposure] = []
    for name, step in steps.items():
        out.extend(exposures_of(step, name))
    return out


_URL_KEYS = ("base_url", "api_base", "api_url")
_PATH_KEYS = ("data_files", "dataset_path", "model_path")


def file_exposures(data: Mapping[str, Any]) -> tuple[list[Exposure], list[Exposure]]:
    """What a pipeline file's steps reach, for ``pipeline info``, and the part of it that
    ``synthflow.trust`` judges: that of the steps of synthflow's classes, read from the file's
    data by the classes' rules (``synthflow.exposure_rules``), or from the step built when only
    building it tells. For a step with a class from another module (never imported): the
    module, and the URLs, paths and ``trust_remote_code`` its text names."""
    from synthflow.exposure_rules import spec_exposures
    from synthflow.pipeline_file import is_trusted, modules_of, pipeline_section

    out: list[Exposure] = []
    judged: list[Exposure] = []
    for i, spec in enumerate(pipeline_section(data, strict=False).get("steps") or []):
        if not isinstance(spec, dict):
            continue
        name = str(spec.get("name") or f"#{i + 1}")
        foreign = [m for m in modules_of({"pipeline": {"steps": [spec]}}) if not is_trusted(m)]
        if not foreign:
            found = spec_exposures(spec, name)
            if found is None:
                found = _built_exposures(spec, i, name)
            if found is not None:
                out += found
                judged += found
                continue
        out += [ForeignCode(name, f"module {module}") for module in foreign]
        out += list(_named_in(spec, name))
    return out, judged


def _built_exposures(spec: dict[str, Any], index: int, name: str) -> list[Exposure] | None:
    """The exposures of the step ``spec`` builds; None when it doesn't build."""
    from synthflow.errors import SerializationError
    from synthflow.serialization import load_step

    try:
        step = load_step(spec, index)
    except SerializationError:
        return None  # a file that doesn't load: the run says why; show what its text names
    return list(exposures_of(step, name))


def _named_in(value: Any, where: str) -> Iterator[Exposure]:
    if isinstance(value, dict):
        for key, item in value.items():
            if key in _URL_KEYS and isinstance(item, str):
                yield Endpoint(where, "?", item, item, None, False, inspected=False)
            elif key in _PATH_KEYS:
                yield from (DataAccess(where, t, "reads") for t in targets(item))
            elif key == "trust_remote_code" and item is True:
                yield ForeignCode(where, "trust_remote_code")
            elif key not in ("type_info", "runtime_parameters_info", "data"):
                yield from _named_in(item, f"{where}.{key}" if isinstance(item, dict) else where)
    elif isinstance(value, list) and value and isinstance(value[0], dict):
        for item in value:
            yield from _named_in(item, where)


def _walk(model: BaseModel, where: str, base: type[BaseModel]) -> Iterator[Exposure]:
    module = type(model).__module__
    if module != TRUSTED_PACKAGE and not module.startswith(TRUSTED_PACKAGE + "."):
        yield ForeignCode(where, f"module {module}")
    if isinstance(model, Exposing):
        yield from model.exposures(where)
    if getattr(model, "trust_remote_code", False) is True:
        yield ForeignCode(where, "trust_remote_code")
    for name in type(model).model_fields:
        value = getattr(model, name, None)
        yield from _walk_value(value, f"{where}.{name}", base)


def _walk_value(value: Any, where: str, base: type[BaseModel]) -> Iterator[Exposure]:
    if isinstance(value, base):
        yield from _walk(value, where, base)
    elif isinstance(value, list | tuple):
        # Inline rows can be many and hold no models: look at the first before walking.
        if value and isinstance(value[0], base | list | tuple | dict):
            for i, item in enumerate(value):
                yield from _walk_value(item, f"{where}[{i}]", base)
    elif isinstance(value, dict):
        for key, item in value.items():
            if isinstance(item, base):
                yield from _walk(item, f"{where}.{key}", base)


def host_of(url: str) -> str:
    """The host (and port) of a URL, lower case; "" for one without."""
    parts = urllib.parse.urlsplit(url if "://" in url else f"//{url}")
    return (parts.netloc.rsplit("@", 1)[-1]).lower()


def targets(value: Any) -> list[str]:
    """The paths or URLs in a ``str | list[str]`` setting."""
    if isinstance(value, str):
        return [value]
    if isinstance(value, list | tuple):
        return [str(v) for v in value if isinstance(v, str | os.PathLike)]
    if isinstance(value, dict):  # split -> files
        return [t for v in value.values() for t in targets(v)]
    if isinstance(value, os.PathLike):
        return [os.fspath(value)]
    return []


def env_key(names: Iterable[str], given: object) -> str | None:
    """The first of ``names`` set in the environment, unless a key was ``given``."""
    if given is not None:
        return None
    return next((name for name in names if os.environ.get(name)), None)


def render(exposures: list[Exposure]) -> list[str]:
    """Lines for ``pipeline info``: endpoints, data and foreign code, grouped."""
    lines: list[str] = []
    endpoints = [e for e in exposures if isinstance(e, Endpoint)]
    data = [e for e in exposures if isinstance(e, DataAccess)]
    foreign = [e for e in exposures if isinstance(e, ForeignCode)]
    lines.append("endpoints it calls")
    for ep in endpoints:
        url = ep.url or "(the provider's default)"
        lines.append(f"  {ep.where}: {ep.provider} {url}  ({ep.key_text()})")
    if not endpoints:
        lines.append("  (none)")
    lines += ["", "data it reads and writes"]
    for access in data:
        lines.append(f"  {access.where}: {access.mode} {access.target}")
    if not data:
        lines.append("  (none)")
    lines += ["", "code from outside synthflow it runs"]
    for code in foreign:
        lines.append(f"  {code.where}: {code.what}")
    if not foreign:
        lines.append("  (none)")
    return lines
