"""Pipelines as YAML or JSON: writing them, loading them back safely, and their signature.

A file holds a header and the pipeline::

    synthflow: {version: 0.1.0, format: 1}
    pipeline:
      name: demo
      description: null
      signature: 6f0c...            # informational; recomputed on load
      steps:
      - name: generate
        type_info: {module: synthflow.steps.tasks.text_generation, name: TextGeneration}
        llm:                         # nested models carry their own type_info
          type_info: {module: synthflow.models.llms.offline, name: OfflineLLM}
          model: synthflow-offline
          ...
        ...                          # every other field, runtime parameters included
        runtime_parameters_info:     # documentation only; the values above are what load
        - {name: llm.latency, description: Seconds each call takes., optional: true, value: 0.0}
      connections:
      - {from: load, to: generate}   # one entry per edge, in connection order

Secrets (``SecretStr`` values) and fields declared ``Field(exclude=True)`` are never written.

Loading imports classes only from ``synthflow`` and from modules the caller allows explicitly, and
it checks every module named in the file before importing any of them: a file from the internet
can't make synthflow import arbitrary code. YAML is read with the safe loader, so a file can't
construct Python objects either. Where a loaded pipeline may send the user's keys, which files it
may read and whether it may run a model repo's code is ``synthflow.trust``'s to decide.
"""

from __future__ import annotations

import difflib
import enum
import functools
import hashlib
import importlib
import os
import re
import sys
import warnings
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson
from pydantic import BaseModel, SecretBytes, SecretStr, ValidationError

from synthflow.errors import SerializationError

# Reading a file as plain data is synthflow.pipeline_file's job; its names stay importable here.
from synthflow.pipeline_file import FORMAT_VERSION as FORMAT_VERSION
from synthflow.pipeline_file import MAX_DOWNLOAD_BYTES as MAX_DOWNLOAD_BYTES
from synthflow.pipeline_file import SKIP_KEYS, is_type_info, type_infos, yaml_module
from synthflow.pipeline_file import TRUSTED_PACKAGE as TRUSTED_PACKAGE
from synthflow.pipeline_file import Format as Format
from synthflow.pipeline_file import connections_of as connections_of
from synthflow.pipeline_file import format_of as format_of
from synthflow.pipeline_file import is_trusted as is_trusted
from synthflow.pipeline_file import models_of as models_of
from synthflow.pipeline_file import modules_of as modules_of
from synthflow.pipeline_file import parse_text as parse_text
from synthflow.pipeline_file import pipeline_section as pipeline_section
from synthflow.pipeline_file import read_source as read_source
from synthflow.runtime_parameters import (
    is_runtime_field,
    runtime_parameters_info,
    unset_to_leave_out,
)
from synthflow.steps.base import _Step

if TYPE_CHECKING:
    from synthflow.pipeline.pipeline import Pipeline

_MODULE_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$")
_PLAIN = frozenset({str, int, bool, type(None)})  # written as they are, in every mode


def _moved_modules() -> dict[str, str]:
    homes = {
        "synthflow.llms": {
            "synthflow.models.callpath": "_http _clock answers cache calls limiter pricing retry "
            "structured",
            "synthflow.models.llms": "api base openai anthropic cohere gemini huggingface ollama "
            "offline",
            "synthflow.models.llms.local": "transformers vllm llama_cpp litellm",
        },
        "synthflow.embeddings": {
            "synthflow.models.embeddings": "base hidden_states openai sentence_transformers",
        },
    }
    moved = {old: old.replace("synthflow.", "synthflow.models.", 1) for old in homes}
    moved["synthflow.llms.local"] = "synthflow.models.llms.local.base"
    for old, news in homes.items():
        for new, leaves in news.items():
            moved.update({f"{old}.{leaf}": f"{new}.{leaf}" for leaf in leaves.split()})
    return moved


MOVED_MODULES: dict[str, str] = _moved_modules()
"""Modules a class was saved under before the model layer moved to ``synthflow.models``
(pipelines saved then name them), and where they are now; new saves name the new ones."""


# -- writing ------------------------------------------------------------------------------------


def type_info(cls: type) -> dict[str, str]:
    """Where a class is imported from. ``@step`` classes carry their function's module and
    qualified name, so they serialize by reference like any class."""
    return {"module": cls.__module__, "name": cls.__qualname__}


def dump_pipeline(pipeline: Pipeline) -> dict[str, Any]:
    """The pipeline as plain data (``pipeline.dump()``); raises SerializationError when a field
    holds something YAML and JSON can't represent."""
    from synthflow import __version__

    return {
        "synthflow": {"version": __version__, "format": FORMAT_VERSION},
        "pipeline": {
            "name": pipeline.name,
            "description": pipeline.description,
            "signature": signature(pipeline),
            "steps": [dump_step(step) for step in pipeline.steps.values()],
            "connections": [{"from": a, "to": b} for a, b in pipeline.edges],
            **_routes_entry(pipeline),
        },
        # Where distilabel writes them: packages the run needs besides synthflow.
        **({"requirements": list(pipeline.requirements)} if pipeline.requirements else {}),
    }


def _routes_entry(pipeline: Pipeline) -> dict[str, Any]:
    """distilabel's ``routing_batch_functions`` list, when the pipeline routes any batches."""
    routes = [route.dump() for route in pipeline.routes.values()]
    return {"routing_batch_functions": routes} if routes else {}


def dump_step(step: _Step) -> dict[str, Any]:
    out: dict[str, Any] = {"name": step.name}
    out.update(_dump_model(step, where=f"step {step.name!r}", strict=True, runtime=True))
    out["runtime_parameters_info"] = _runtime_parameters(step)
    return out


def _dump_model(
    model: BaseModel, *, where: str, strict: bool, runtime: bool, canonical: bool = False
) -> dict[str, Any]:
    cls = type(model)
    out: dict[str, Any] = {"type_info": type_info(cls)}
    for name, field in cls.model_fields.items():
        if name == "name" and isinstance(model, _Step):
            continue
        if not runtime and is_runtime_field(cls, name):
            continue
        value = getattr(model, name, None)
        if isinstance(value, SecretStr | SecretBytes):
            continue
        if field.exclude is True:
            # Never written; but code (FunctionLLM.fn) is part of what a pipeline is, so the
            # signature names it by reference.
            if canonical and callable(value):
                out[name] = _opaque(value)
            continue
        where_field = f"{where}: field {name!r}"
        out[name] = _dump_value(
            value, where=where_field, strict=strict, runtime=runtime, canonical=canonical
        )
    return out


def _dump_value(
    value: Any, *, where: str, strict: bool, runtime: bool = True, canonical: bool = False
) -> Any:
    """Plain data for ``value``.

    ``strict``: raise on what can't be written (else write a stand-in). ``runtime``: include the
    runtime parameters of nested models. ``canonical``: write integral floats as ints, so the
    signature doesn't depend on whether a default was written ``1`` or ``1.0``.
    """
    if value is None or isinstance(value, str | bool | int):
        return value
    if isinstance(value, float):
        return int(value) if canonical and value.is_integer() else value
    kw: dict[str, Any] = {
        "where": where,
        "strict": strict,
        "runtime": runtime,
        "canonical": canonical,
    }
    # Inline rows can be many: plain values are copied without a call each.
    if isinstance(value, list | tuple):
        return [v if type(v) in _PLAIN else _dump_value(v, **kw) for v in value]
    if isinstance(value, dict):
        return {k: v if type(v) in _PLAIN else _dump_value(v, **kw) for k, v in value.items()}
    if isinstance(value, BaseModel):
        return _dump_model(value, **kw)
    if isinstance(value, SecretStr | SecretBytes):
        return None
    if isinstance(value, enum.Enum):
        return _dump_value(value.value, **kw)
    if isinstance(value, set | frozenset):
        items = [_dump_value(v, **kw) for v in value]
        return sorted(items, key=lambda v: orjson.dumps(v, option=orjson.OPT_SORT_KEYS))
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    if not callable(value):
        from pydantic_core import PydanticSerializationError, to_jsonable_python

        try:
            return to_jsonable_python(value)
        except PydanticSerializationError:
            pass
    if not strict:
        return _opaque(value)
    kind = type(value).__name__
    raise SerializationError(
        f"can't save {where}: it holds a {kind}, which YAML and JSON can't represent; declare "
        "the field with Field(exclude=True) and build the object in load()"
    )


def _opaque(value: Any) -> str:
    """A stable stand-in for a value that can't be written (no memory addresses)."""
    target = value if hasattr(value, "__qualname__") else type(value)
    return f"<{getattr(target, '__module__', '?')}.{getattr(target, '__qualname__', '?')}>"


def _runtime_parameters(step: _Step) -> list[dict[str, Any]]:
    out = []
    for info in runtime_parameters_info(step):
        entry: dict[str, Any] = {
            "name": info.path,
            "description": info.description,
            "optional": info.optional,
        }
        owner: Any = step
        *parents, leaf = info.path.split(".")
        for part in parents:
            owner = getattr(owner, part)
        field = type(owner).model_fields[leaf]
        if field.exclude is not True and not isinstance(info.value, SecretStr | SecretBytes):
            entry["value"] = _dump_value(info.value, where=info.path, strict=False)
        out.append(entry)
    return out


def signature(pipeline: Pipeline) -> str:
    """A stable hash of the DAG and of every step's definition: runtime parameters, excluded
    fields and secrets left out, so it survives a save and load and names the run's cache."""
    steps = []
    for name, step in sorted(pipeline.steps.items()):
        definition = _dump_model(step, where=name, strict=False, runtime=False, canonical=True)
        steps.append([name, definition])
    # Routing decides which rows each step sees; a pipeline without any keeps its signature.
    payload = orjson.dumps(
        {"steps": steps, "edges": sorted(pipeline.edges), **_routes_entry(pipeline)},
        option=orjson.OPT_SORT_KEYS | orjson.OPT_NON_STR_KEYS,
    )
    return hashlib.blake2b(payload, digest_size=10).hexdigest()


def to_text(data: Mapping[str, Any], fmt: Format) -> str:
    if fmt == "json":
        options = orjson.OPT_INDENT_2 | orjson.OPT_NON_STR_KEYS
        return orjson.dumps(data, option=options).decode() + "\n"
    yaml = yaml_module()
    text: str = yaml.dump(
        data, Dumper=_yaml_dumper(), sort_keys=False, allow_unicode=True, width=100
    )
    return text


@functools.cache
def _yaml_dumper() -> type[Any]:
    yaml = yaml_module()
    base: type[Any] = getattr(yaml, "CSafeDumper", yaml.SafeDumper)

    class Dumper(base):  # type: ignore[misc]
        """Safe dumper that writes multi-line strings (prompts) as literal blocks."""

    def represent_str(dumper: Any, value: str) -> Any:
        style = "|" if "\n" in value else None
        return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)

    Dumper.add_representer(str, represent_str)
    return Dumper


def write_text_atomic(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` through a temporary file and a rename: readers see the old
    file or the new one, never half of one."""
    from synthflow.pipeline._disk import new_text_file

    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = new_text_file(path.parent, prefix=f".{path.name}.")
    except OSError as exc:
        raise SerializationError(f"can't write {path}: {exc.strerror or exc}") from None
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def save_pipeline(
    pipeline: Pipeline, path: str | os.PathLike[str], fmt: Format | None = None
) -> Path:
    """Write ``pipeline`` to ``path`` in ``fmt``, or in the format its name tells."""
    target = Path(path)
    if fmt is not None and fmt not in ("yaml", "json"):
        raise SerializationError(f"format must be 'yaml' or 'json', got {fmt!r}")
    fmt = fmt or format_of(target)
    if fmt is None:
        raise SerializationError(
            f"can't tell the format of {str(path)!r} from its name; use a .yaml, .yml or .json "
            "file name, or pass format='yaml' or 'json'"
        )
    data = dump_pipeline(pipeline)
    write_text_atomic(target, to_text(data, fmt))
    _warn_if_main_classes(data, target)
    return target


def _warn_if_main_classes(data: Mapping[str, Any], target: Path) -> None:
    """Warn when the file names classes of ``__main__`` (a script run as ``python x.py``):
    loading fails anywhere else, and only a warning now says so before someone tries."""
    classes = sorted(
        {info["name"] for _, info in type_infos(pipeline_section(data)["steps"])
         if is_type_info(info) and info["module"] == "__main__"}
    )  # fmt: skip
    if not classes:
        return
    script = Path(sys.argv[0]).name if sys.argv and sys.argv[0].endswith(".py") else "FILE.py"
    warnings.warn(
        f"{target} names classes defined in the script being run ({', '.join(classes)}, "
        f"module __main__), which won't load in another program: move them into a module "
        f"the script imports (load with --allow-module MODULE), or run the script with "
        f"'synthflow pipeline run --script {script}', which saves them under its module name",
        UserWarning,
        stacklevel=4,  # the user's pipeline.save(...) line
    )


# -- reading ------------------------------------------------------------------------------------


def load_file(
    source: str | os.PathLike[str],
    *,
    allowed_modules: Iterable[str] = (),
    cache_dir: str | os.PathLike[str] | None = None,
    fmt: Format | None = None,
) -> Pipeline:
    """Load a pipeline file; ``fmt`` when the caller knows the format (else from the name,
    else sniffed)."""
    text, named = read_source(source)
    data = parse_text(text, fmt or named, source=os.fspath(source))
    return load_pipeline(
        data, allowed_modules=allowed_modules, cache_dir=cache_dir, source=os.fspath(source)
    )


def is_path(value: str | bytes | os.PathLike[str]) -> bool:
    """Whether ``from_yaml``/``from_json`` got a file (a path, as distilabel's take) rather
    than the text itself: a PathLike, an existing file, or one line naming a .yaml/.yml/.json
    file or an http(s) URL."""
    if isinstance(value, bytes):
        return False
    if isinstance(value, os.PathLike):
        return True
    if "\n" in value or not value.strip():
        return False
    if value.startswith(("http://", "https://")) or format_of(value) is not None:
        return True
    try:
        return Path(value).expanduser().is_file()
    except (OSError, ValueError):
        return False


def load_pipeline(
    data: Mapping[str, Any],
    *,
    allowed_modules: Iterable[str] = (),
    cache_dir: str | os.PathLike[str] | None = None,
    source: str = "the pipeline file",
) -> Pipeline:
    """Build a Pipeline from the data ``dump_pipeline`` wrote (or a hand-written equivalent).

    It may have been written by anyone: what it would do with the user's keys, files and
    ``trust_remote_code`` is recorded and checked before it runs (``synthflow.trust``)."""
    from synthflow.pipeline.pipeline import Pipeline
    from synthflow.trust import LoadedTrust

    allowed = normalize_allowed(allowed_modules)
    body = pipeline_section(data)
    steps = body.get("steps")
    if not isinstance(steps, list) or not steps:
        raise SerializationError("the pipeline has no steps: 'pipeline.steps' must be a list")
    # Refuse before importing anything: one bad module means nothing in the file is imported.
    for where, info in type_infos(steps):
        check_module_allowed(_module_of(info, where), allowed, where=where)

    pipeline = Pipeline(
        name=str(body.get("name") or "pipeline"),
        description=body.get("description"),
        cache_dir=cache_dir,
        requirements=_requirements(data.get("requirements")),
    )
    with pipeline:
        for i, spec in enumerate(steps):
            if not isinstance(spec, dict):
                raise SerializationError(f"step #{i + 1} is not a mapping of field to value")
            _load_step(spec, i, allowed)
    for a, b in connections_of(body):
        for name in (a, b):
            if name not in pipeline.steps:
                hint = _suggest(name, list(pipeline.steps))
                raise SerializationError(
                    f"connection {a} -> {b} names unknown step {name!r}: {hint}"
                )
        pipeline.connect(pipeline.steps[a], pipeline.steps[b])
    _load_routes(pipeline, body.get("routing_batch_functions") or [], allowed)
    pipeline._trust = LoadedTrust.record(pipeline.steps, source)
    return pipeline


def _requirements(value: Any) -> list[str]:
    """A file's ``requirements`` (PEP 508 specifiers; ``run`` checks them). One naming
    distilabel, which a file distilabel wrote lists, is dropped: synthflow runs it instead."""
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise SerializationError("'requirements' must be a list of package specifiers")
    from packaging.requirements import InvalidRequirement, Requirement

    kept = []
    for spec in value:
        try:
            name = Requirement(spec).name
        except InvalidRequirement as exc:
            raise SerializationError(
                f"requirement {spec!r} is not a PEP 508 specifier: {exc}"
            ) from None
        if name.lower() != "distilabel":
            kept.append(spec)
    return kept


def _load_routes(pipeline: Pipeline, entries: Any, allowed: tuple[str, ...]) -> None:
    from synthflow.pipeline.routing import load_routing_function

    if not isinstance(entries, list):
        raise SerializationError("'pipeline.routing_batch_functions' must be a list")
    for i, entry in enumerate(entries):
        where = f"routing batch function #{i + 1}"
        step = entry.get("step") if isinstance(entry, dict) else None
        if step not in pipeline.steps:
            raise SerializationError(f"{where} names unknown step {step!r}")
        route = load_routing_function(entry, where, allowed)
        route.step = pipeline.steps[step]
        successors = [b for a, b in pipeline.edges if a == step]
        targets = entry.get("targets") or successors
        unknown = [t for t in targets if t not in successors]
        if unknown:
            raise SerializationError(
                f"{where} routes to {unknown[0]!r}, which is not a successor of {step!r}"
            )
        route.targets = list(targets)
        pipeline.set_route(step, route)


def load_step(spec: dict[str, Any], index: int = 0, allowed_modules: Iterable[str] = ()) -> _Step:
    """One step of a file, on its own (``pipeline info`` inspects steps this way)."""
    allowed = normalize_allowed(allowed_modules)
    for where, info in type_infos([spec]):
        check_module_allowed(_module_of(info, where), allowed, where=where)
    return _load_step(spec, index, allowed)


def _load_step(spec: dict[str, Any], index: int, allowed: tuple[str, ...]) -> _Step:
    name = spec.get("name")
    where = f"step {name!r}" if name else f"step #{index + 1}"
    cls = import_class(spec.get("type_info"), allowed, base=_Step, where=where)
    step = _instantiate(cls, spec, allowed, where)
    assert isinstance(step, _Step)
    return step


def _instantiate(
    cls: type[BaseModel],
    spec: Mapping[str, Any],
    allowed: tuple[str, ...],
    where: str,
    path: str = "",
) -> BaseModel:
    kwargs = {
        key: _revive(value, allowed, where, f"{path}{key}")
        for key, value in spec.items()
        if key not in SKIP_KEYS and not unset_to_leave_out(cls, key, value)
    }
    try:
        return cls(**kwargs)
    except ValidationError as exc:
        raise SerializationError(f"{where}: {_validation_reason(exc, cls, path)}") from None


def _revive(value: Any, allowed: tuple[str, ...], where: str, path: str) -> Any:
    if isinstance(value, dict):
        if is_type_info(value.get("type_info")):
            cls = import_class(value["type_info"], allowed, base=BaseModel, where=where)
            return _instantiate(cls, value, allowed, where, f"{path}.")
        return {k: _revive(v, allowed, where, path) for k, v in value.items()}
    if isinstance(value, list):
        return [_revive(v, allowed, where, path) for v in value]
    return value


def _validation_reason(exc: ValidationError, cls: type[BaseModel], path: str) -> str:
    # A misspelt field is both missing and extra: name the extra one, with its near match.
    errors = sorted(exc.errors(), key=lambda e: e["type"] != "extra_forbidden")
    first = errors[0]
    loc = path + ".".join(str(part) for part in first["loc"])
    message = f"field {loc!r} ({cls.__name__}): {first['msg']}"
    if first["type"] == "extra_forbidden" and len(first["loc"]) == 1:
        message += f" ({_suggest(str(first['loc'][0]), list(cls.model_fields))})"
    if len(errors) > 1:
        message += f" (and {len(errors) - 1} more)"
    return message


def _module_of(info: Any, where: str) -> str:
    if not is_type_info(info):
        raise SerializationError(
            f"{where} has no valid type_info: expected {{module: ..., name: ...}}, got {info!r}"
        )
    module: str = info["module"]
    return module


def normalize_allowed(modules: Iterable[str]) -> tuple[str, ...]:
    if isinstance(modules, str):
        modules = [modules]
    out = []
    for module in modules:
        module = module.strip()
        if not _MODULE_RE.match(module):
            raise SerializationError(
                f"{module!r} is not a module name; allow modules like 'my_package.steps'"
            )
        out.append(module)
    return tuple(out)


def check_module_allowed(module: str, allowed: tuple[str, ...], *, where: str) -> None:
    if module == "__main__":
        raise SerializationError(
            f"{where} uses a class defined in __main__ (a script run directly), which can't be "
            "imported; move it into a module, or run the script with "
            "'synthflow pipeline run --script FILE.py'"
        )
    if not _MODULE_RE.match(module) or any(p.startswith("__") for p in module.split(".")):
        raise SerializationError(f"{where} names an invalid module {module!r}")
    if not is_trusted(module, allowed):
        raise SerializationError(
            f"{where} uses a class from module {module!r}, which is not allowed: loading imports "
            f"only synthflow and modules you trust; allow it with "
            f"allowed_modules=[{module!r}] (CLI: --allow-module {module})"
        )


def import_class(
    info: Any, allowed: tuple[str, ...], *, base: type[BaseModel], where: str
) -> type[BaseModel]:
    """Import the class ``info`` names, after checking its module is allowed."""
    module_name = _module_of(info, where)
    check_module_allowed(module_name, allowed, where=where)
    module_name = MOVED_MODULES.get(module_name, module_name)
    qualname: str = info["name"]
    path = f"{module_name}.{qualname}"
    if "<locals>" in qualname:
        raise SerializationError(
            f"{where} uses {path}, a class defined inside a function, which can't be imported; "
            "define it at module level"
        )
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        hint = ""
        top = module_name.split(".")[0]
        if isinstance(exc, ModuleNotFoundError) and exc.name == top and top != TRUSTED_PACKAGE:
            hint = (
                f" (it is neither installed nor in the current directory: run where {top}.py "
                "or the package is, or add its folder to PYTHONPATH)"
            )
        raise SerializationError(
            f"{where}: can't import module {module_name!r}: {exc}{hint}"
        ) from None
    except Exception as exc:
        raise SerializationError(
            f"{where}: importing module {module_name!r} failed: {type(exc).__name__}: {exc}"
        ) from None
    obj: Any = module
    for part in qualname.split("."):
        if part.startswith("__") or not hasattr(obj, part):
            candidates = [
                n for n, v in vars(module).items() if isinstance(v, type) and issubclass(v, base)
            ]
            raise SerializationError(
                f"{where} has unknown type {path!r}: {module_name} has no class {qualname!r} "
                f"({_suggest(qualname, candidates)})"
            )
        obj = getattr(obj, part)
    if not (isinstance(obj, type) and issubclass(obj, base)):
        kind = "a synthflow step" if base is _Step else "a pydantic model"
        raise SerializationError(f"{where} has type {path!r}, which is not {kind}")
    return obj


def _suggest(name: str, choices: list[str]) -> str:
    close = difflib.get_close_matches(name, choices, n=1, cutoff=0.6)
    if close:
        return f"did you mean {close[0]!r}?"
    return f"known: {', '.join(sorted(choices)) or 'none'}"


def pipeline_html(pipeline: Pipeline) -> str:
    """A compact table for notebooks: each step, its class, its LLM, and where its rows go."""
    from html import escape

    successors: dict[str, list[str]] = {name: [] for name in pipeline.steps}
    for a, b in pipeline.edges:
        successors[a].append(b)
    rows = []
    for name, step in pipeline.steps.items():
        llm = getattr(step, "llm", None)
        model = f"{type(llm).__name__} ({llm.model_name})" if llm is not None else ""
        rows.append(
            "<tr>"
            f"<td><code>{escape(name)}</code></td>"
            f"<td>{escape(type(step).__name__)}</td>"
            f"<td>{escape(model)}</td>"
            f"<td>{escape(', '.join(successors[name]) or '(output)')}</td>"
            "</tr>"
        )
    title = f"Pipeline <b>{escape(pipeline.name)}</b>: {len(pipeline.steps)} steps"
    if pipeline.description:
        title += f" &mdash; {escape(pipeline.description)}"
    return (
        f"<div><p>{title}</p><table><thead><tr><th>step</th><th>class</th><th>LLM</th>"
        f"<th>rows go to</th></tr></thead><tbody>{''.join(rows)}</tbody></table></div>"
    )
