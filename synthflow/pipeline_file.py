"""A pipeline file as plain data: its text from a path or an http(s) URL, parsed, and what it
names (steps, connections, modules, models).

Nothing a file names is imported here, and neither is pydantic, so that ``synthflow pipeline
info`` reads a file in about the time the interpreter takes to start. Turning the data into a
Pipeline, and a Pipeline into data, is ``synthflow.serialization``'s job.
"""

from __future__ import annotations

import functools
import importlib
import os
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any, Literal

import orjson

from synthflow.errors import SerializationError

FORMAT_VERSION = 1
"""Version of the file layout; a file with a higher one was written by a newer synthflow."""

TRUSTED_PACKAGE = "synthflow"
MAX_DOWNLOAD_BYTES = 256 * 1024 * 1024

Format = Literal["yaml", "json"]

SKIP_KEYS = ("type_info", "runtime_parameters_info")
"""Keys of a step spec that describe it rather than set a field."""


def yaml_module() -> Any:
    """PyYAML, imported on first use (typed as Any: it ships no type hints)."""
    return importlib.import_module("yaml")


def format_of(path: str | os.PathLike[str]) -> Format | None:
    suffix = Path(str(path).split("?", 1)[0]).suffix.lower()
    if suffix == ".json":
        return "json"
    if suffix in (".yaml", ".yml"):
        return "yaml"
    return None


def read_source(source: str | os.PathLike[str]) -> tuple[str, Format | None]:
    """The text of a local file or of an http(s) URL, and its format if the name tells it."""
    text_source = os.fspath(source)
    if text_source.startswith(("http://", "https://")):
        return _download(text_source), format_of(text_source)
    path = Path(text_source).expanduser()
    try:
        return path.read_text(encoding="utf-8"), format_of(path)
    except FileNotFoundError:
        raise SerializationError(f"no such file: {text_source}") from None
    except IsADirectoryError:
        raise SerializationError(f"{text_source} is a directory, not a pipeline file") from None
    except UnicodeDecodeError:
        raise SerializationError(f"{text_source} is not a UTF-8 text file") from None
    except OSError as exc:
        raise SerializationError(f"can't read {text_source}: {exc.strerror or exc}") from None


def _download(url: str) -> str:
    import httpx

    headers = _hub_auth(url)
    try:
        with httpx.stream(
            "GET", url, headers=headers, follow_redirects=True, timeout=30.0
        ) as response:
            if response.status_code >= 400:
                hint = ""
                if response.status_code in (401, 403) and _is_hub_url(url):
                    hint = (
                        " (a private or gated repo: set HF_TOKEN or run `hf auth login`)"
                        if not headers
                        else " (the Hugging Face token has no access to this repo)"
                    )
                raise SerializationError(
                    f"can't fetch {url}: HTTP {response.status_code} {response.reason_phrase}{hint}"
                )
            body = bytearray()
            for chunk in response.iter_bytes():
                body += chunk
                if len(body) > MAX_DOWNLOAD_BYTES:
                    raise SerializationError(
                        f"can't fetch {url}: larger than {MAX_DOWNLOAD_BYTES // 2**20} MiB"
                    )
            encoding = response.encoding or "utf-8"
    except httpx.HTTPError as exc:
        raise SerializationError(f"can't fetch {url}: {type(exc).__name__}: {exc}") from None
    try:
        return bytes(body).decode(encoding)
    except (UnicodeDecodeError, LookupError):
        raise SerializationError(f"can't fetch {url}: the answer is not UTF-8 text") from None


def _is_hub_url(url: str) -> bool:
    endpoint = os.environ.get("HF_ENDPOINT", "https://huggingface.co").rstrip("/")
    return url.startswith(endpoint + "/")


def _hub_auth(url: str) -> dict[str, str]:
    """The user's Hugging Face token ($HF_TOKEN or the saved login) for a Hub URL, so pipelines
    in private repos load too. No other host ever gets it, and httpx drops it on a redirect to
    another origin (the Hub's file CDN)."""
    if not _is_hub_url(url):
        return {}
    from huggingface_hub import get_token

    token = get_token()
    return {"authorization": f"Bearer {token}"} if token else {}


def parse_text(
    text: str,
    fmt: Format | None,
    *,
    source: str = "the config",
    expected: str = "a synthflow pipeline: expected a mapping with a 'pipeline' key",
) -> dict[str, Any]:
    """Parse YAML or JSON (sniffed when ``fmt`` is None) into a mapping."""
    if fmt is None:
        fmt = "json" if text.lstrip().startswith("{") else "yaml"
    if fmt == "json":
        try:
            data = orjson.loads(text)
        except orjson.JSONDecodeError as exc:
            raise SerializationError(f"{source} is not valid JSON: {exc}") from None
    else:
        yaml = yaml_module()
        try:
            data = yaml.load(text, Loader=_yaml_loader())  # a safe loader: no Python objects
        except yaml.YAMLError as exc:
            raise SerializationError(f"{source} is not valid YAML: {_yaml_reason(exc)}") from None
    if not isinstance(data, dict):
        raise SerializationError(f"{source} is not {expected}, got {type(data).__name__}")
    return data


@functools.cache
def _yaml_loader() -> type[Any]:
    """The safe loader, which also reads ``!!python/tuple`` as a list: distilabel writes its
    files with PyYAML's unsafe dumper, which tags tuples so (a tuple of texts is no object)."""
    yaml = yaml_module()
    base: type[Any] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)

    class Loader(base):  # type: ignore[misc]  # PyYAML ships no types: base is Any
        """The safe loader, and tuples."""

    def tuple_as_list(loader: Any, node: Any) -> list[Any]:
        return list(loader.construct_sequence(node, deep=True))

    Loader.add_constructor("tag:yaml.org,2002:python/tuple", tuple_as_list)
    return Loader


def _yaml_reason(exc: Exception) -> str:
    mark = getattr(exc, "problem_mark", None)
    problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
    if "python/" in str(problem):  # distilabel saves a pydantic structured_output class so
        problem += (
            " (a Python object, which synthflow never builds from a file: put its JSON schema "
            "there, e.g. {format: json, schema: {...}})"
        )
    if mark is not None:
        return f"line {mark.line + 1}, column {mark.column + 1}: {problem}"
    return " ".join(str(exc).split())


def pipeline_section(data: Mapping[str, Any], *, strict: bool = True) -> dict[str, Any]:
    """The ``pipeline`` mapping, in synthflow's layout also when distilabel wrote the file
    (``synthflow.distilabel_files``; ``strict=False``: what synthflow can't run left as it is,
    for a description of the file)."""
    header = data.get("synthflow")
    if isinstance(header, dict):
        fmt = header.get("format", FORMAT_VERSION)
        if isinstance(fmt, int) and fmt > FORMAT_VERSION:
            raise SerializationError(
                f"the file was written by synthflow {header.get('version', '?')} (format {fmt}); "
                f"this synthflow reads format {FORMAT_VERSION}: upgrade synthflow"
            )
    body = data.get("pipeline")
    if not isinstance(body, dict):
        raise SerializationError(
            "not a synthflow pipeline: expected a top-level 'pipeline' mapping with 'steps' and "
            "'connections'"
        )
    from synthflow.distilabel_files import is_distilabel_layout, synthflow_body

    return synthflow_body(body, strict=strict) if is_distilabel_layout(body) else body


def connections_of(body: Mapping[str, Any]) -> list[tuple[str, str]]:
    """The edges, in order. ``to`` may also be a list (hand-written files)."""
    raw = body.get("connections") or []
    if not isinstance(raw, list):
        raise SerializationError("'pipeline.connections' must be a list of {from, to} mappings")
    edges: list[tuple[str, str]] = []
    for entry in raw:
        if not isinstance(entry, dict) or "from" not in entry or "to" not in entry:
            raise SerializationError(
                f"connection {entry!r} must be a mapping like {{from: load, to: generate}}"
            )
        targets = entry["to"] if isinstance(entry["to"], list) else [entry["to"]]
        edges.extend((str(entry["from"]), str(t)) for t in targets)
    return edges


def is_type_info(value: Any) -> bool:
    return (
        isinstance(value, dict)
        and isinstance(value.get("module"), str)
        and isinstance(value.get("name"), str)
    )


def type_infos(steps: list[Any]) -> Iterator[tuple[str, Any]]:
    """Every type_info in a list of step specs, with the step it belongs to."""
    for i, spec in enumerate(steps):
        if not isinstance(spec, dict):
            continue  # reported when the step is loaded
        name = spec.get("name")
        where = f"step {name!r}" if name else f"step #{i + 1}"
        yield where, spec.get("type_info")
        for key, value in spec.items():
            if key not in SKIP_KEYS:
                yield from _nested_type_infos(value, where)


def _nested_type_infos(value: Any, where: str) -> Iterator[tuple[str, Any]]:
    if isinstance(value, dict):
        if is_type_info(value.get("type_info")):
            yield where, value["type_info"]
        for key, item in value.items():
            if key not in SKIP_KEYS:
                yield from _nested_type_infos(item, where)
    elif isinstance(value, list):
        for item in value:
            yield from _nested_type_infos(item, where)


def modules_of(data: Mapping[str, Any]) -> list[str]:
    """Every module the pipeline's classes come from, in order of first use."""
    steps = pipeline_section(data).get("steps") or []
    seen: dict[str, None] = {}
    for _where, info in type_infos(steps):
        if is_type_info(info):
            seen[info["module"]] = None
    return list(seen)


def is_trusted(module: str, allowed: Iterable[str] = ()) -> bool:
    return any(
        module == root or module.startswith(root + ".") for root in (TRUSTED_PACKAGE, *allowed)
    )


# -- summaries ----------------------------------------------------------------------------------


_RESOURCES_INFO = {"module": "synthflow.steps.resources", "name": "StepResources"}
"""Every step's ``resources``: a nested model, but not one of its models."""


def models_of(spec: Mapping[str, Any]) -> list[tuple[str, str | None]]:
    """The nested models of a step spec (its LLMs): ``(class name, model name or None)``."""
    return [(cls, model) for cls, model, _module in nested_models(spec)]


def nested_models(spec: Mapping[str, Any]) -> list[tuple[str, str | None, str]]:
    """The nested models of a step spec: ``(class name, model name or None, module)``."""
    found: list[tuple[str, str | None, str]] = []

    def visit(value: Any) -> None:
        if isinstance(value, dict):
            info = value.get("type_info")
            if isinstance(info, dict) and is_type_info(info) and info != _RESOURCES_INFO:
                model = value.get("model") or value.get("model_id") or value.get("model_name")
                model_name = str(model) if model is not None else None
                found.append((info["name"], model_name, info["module"]))
            for key, item in value.items():
                if key not in SKIP_KEYS and key != "data":
                    visit(item)
        elif isinstance(value, list):
            for item in value:
                visit(item)

    for key, value in spec.items():
        if key not in SKIP_KEYS and key != "data":
            visit(value)
    return found
