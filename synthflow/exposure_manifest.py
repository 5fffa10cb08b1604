"""Writes ``exposure_classes.json``: for every pydantic class defined in synthflow, the rule
(``synthflow.exposure_rules``) that says what it reaches and the facts the rule needs, so that
``synthflow pipeline info --config`` reads a file without importing the classes it names.

    python -m synthflow.exposure_manifest     # after changing a class that reaches anything

A class whose ``exposures`` (or, for an API client, its endpoint or key variables) is its own
code, not one of the rules, gets the rule "build": info builds it, as a run would.
"""

from __future__ import annotations

import importlib
import pkgutil
import types
import typing
from collections.abc import Callable, Iterator
from typing import Any

import orjson
from pydantic import BaseModel

from synthflow.exposure_rules import MANIFEST, REMOTE_CODE, RULE_FIELDS

SKIPPED_MODULES = ("synthflow.cli", "synthflow.__main__", "synthflow.exposure_manifest")

RENAMING_VALIDATORS = (
    "_accept_distilabel_names",
    "_distilabel_names",
    "_image_generation_model_is_llm",
    "_endpoint_is_base_url",
)
"""Before-validators that only rename distilabel's names (``field_aliases``), which the rules
read as unknown keys (a file that uses an alias of a field a rule reads is built)."""


FACTORY_DEFAULTS = {("argilla", "api_url"), ("argilla", "api_key")}
"""Fields whose default factory the rule itself applies to a file that leaves them out."""


def _rules() -> dict[Callable[..., Any], str]:
    """Each ``exposures`` implementation that a rule states, and the rule."""
    from synthflow.models.embeddings.api import APIEmbeddings
    from synthflow.models.llms.api import APILLM
    from synthflow.models.llms.local.litellm import LiteLLM
    from synthflow.models.llms.local.llama_cpp import LlamaCppLLM
    from synthflow.steps.argilla import _ArgillaStep
    from synthflow.steps.generators import LoadDataFromFileSystem, LoadDataFromHub
    from synthflow.steps.hub import PushToHub
    from synthflow.steps.sources import LoadDataFromDisk

    return {
        APILLM.exposures: "api",
        APIEmbeddings.exposures: "api",
        LiteLLM.exposures: "litellm",
        LlamaCppLLM.exposures: "model_file",
        _ArgillaStep.exposures: "argilla",
        LoadDataFromDisk.exposures: "saved_dataset",
        LoadDataFromHub.exposures: "hub_dataset",
        LoadDataFromFileSystem.exposures: "data_files",
        PushToHub.exposures: "hub_push",
    }


def classes() -> Iterator[type[BaseModel]]:
    """Every pydantic class defined in a synthflow module, in module order."""
    import synthflow

    names = [m.name for m in pkgutil.walk_packages(synthflow.__path__, "synthflow.")]
    for name in sorted(names):
        if name in SKIPPED_MODULES:
            continue
        module = importlib.import_module(name)
        for value in vars(module).values():
            if (
                isinstance(value, type)
                and issubclass(value, BaseModel)
                and value.__module__ == name
                and "<locals>" not in value.__qualname__
            ):
                yield value


def entry(cls: type[BaseModel]) -> dict[str, Any]:
    """What ``exposure_rules`` needs to know of ``cls``."""
    rule = _rule_of(cls)
    fields = list(cls.model_fields)
    read = [*RULE_FIELDS.get(rule, {}), REMOTE_CODE]
    read = [name for name in read if name in cls.model_fields]
    out: dict[str, Any] = {"rule": rule, "fields": fields}
    if rule == "api":
        out["facts"] = _api_facts(_api_class(cls))
    defaults: dict[str, Any] = {}
    required: list[str] = []
    for name in read:
        field = cls.model_fields[name]
        if field.is_required():
            required.append(name)
        elif field.default_factory is None and _is_plain(field.default):
            defaults[name] = field.default
        elif field.default_factory is None or (rule, name) not in FACTORY_DEFAULTS:
            required.append(name)  # a default the data can't hold: build it to tell
    out["defaults"] = defaults
    out["required"] = required
    out["nullable"] = [name for name in read if _nullable(cls, name)]
    aliases: dict[str, str] = dict(getattr(cls, "field_aliases", {}) or {})
    out["aliases"] = dict(sorted(aliases.items()))
    out["aliases_of_read"] = sorted(a for a, t in aliases.items() if t.split(".")[0] in read)
    dropped = _dropped_if_off(cls)
    if dropped:
        out["dropped_if_off"] = dropped
    return out


def _rule_of(cls: type[BaseModel]) -> str:
    exposures = getattr(cls, "exposures", None)
    rule = "none" if exposures is None else _rules().get(exposures, "build")
    if rule == "api" and not _plain_api_client(_api_class(cls)):
        rule = "build"
    if rule != "build" and not _validators_keep_values(cls, rule):
        rule = "build"
    return rule


def _api_class(cls: type[BaseModel]) -> type[BaseModel]:
    """The API client that calls the endpoint: the class, or an embeddings model's wire."""
    wire = getattr(cls, "_wire", None)
    if wire is None:
        return cls
    returned: type[BaseModel] = typing.get_type_hints(wire)["return"]
    return returned


def _plain_api_client(cls: type[BaseModel]) -> bool:
    """Its endpoint, key variables and own hosts are APILLM's, from its class variables."""
    from synthflow.models.llms.api import APILLM

    own = ("endpoint", "key_env_names", "provider_hosts", "exposures")
    return all(getattr(cls, name) is getattr(APILLM, name) for name in own)


def _api_facts(cls: Any) -> dict[str, Any]:
    from synthflow.audit import host_of

    names = cls.api_key_envs or ((cls.api_key_env,) if cls.api_key_env else ())
    return {
        "provider": cls.provider,
        "default_base_url": cls.default_base_url,
        "base_url_env": cls.base_url_env,
        "key_envs": list(names),
        "own_hosts": [host_of(cls.default_base_url)] if cls.default_base_url else [],
        "endpoint_form": cls.endpoint_form,
        "base_url_env_path": cls.base_url_env_path,
    }


def _validators_keep_values(cls: type[BaseModel], rule: str) -> bool:
    """No validator may turn a file's value of a field the rule reads into another."""
    decorators = cls.__pydantic_decorators__
    for name, validator in decorators.model_validators.items():
        if validator.info.mode in ("before", "wrap") and name not in RENAMING_VALIDATORS:
            return False
    read = set(RULE_FIELDS.get(rule, {})) | {REMOTE_CODE}
    for checker in decorators.field_validators.values():
        if read & set(checker.info.fields):
            return checker.cls_var_name == "_as_text"  # a Path as its text; text stays
    return True


def _nullable(cls: type[BaseModel], name: str) -> bool:
    field = cls.model_fields[name]
    if field.default_factory is None and not field.is_required() and field.default is None:
        return True
    return _has_none(field.annotation)


def _has_none(annotation: Any) -> bool:
    if annotation is None or annotation is type(None):
        return True
    if isinstance(annotation, types.UnionType) or typing.get_origin(annotation) is not None:
        return any(_has_none(arg) for arg in typing.get_args(annotation))
    return False


def _dropped_if_off(cls: type[BaseModel]) -> list[str]:
    """distilabel's settings an LLM drops when they ask for nothing (None or False)."""
    from synthflow.models.llms.base import _DISTILABEL_ONLY, LLM

    if not issubclass(cls, LLM):
        return []
    return sorted(_DISTILABEL_ONLY.keys() - cls.model_fields.keys())


def _is_plain(value: Any) -> bool:
    return value is None or isinstance(value, str | bool | int | float)


PUBLIC_PACKAGES = ("steps", "steps.tasks", "models", "pipeline")
"""synthflow's packages whose public names a distilabel file's classes resolve to
(``synthflow.distilabel_files``)."""


def public_names() -> dict[str, dict[str, str]]:
    """For each public package, its classes and functions, each as ``module:qualname`` (an
    alias, such as ``AsyncLLM``, names the class it stands for)."""
    out: dict[str, dict[str, str]] = {}
    for package in PUBLIC_PACKAGES:
        module = importlib.import_module(f"synthflow.{package}")
        homes: dict[str, str] = {}
        for name in dir(module):
            value = getattr(module, name)
            home = getattr(value, "__module__", None) or ""
            if callable(value) and home.startswith("synthflow.") and not name.startswith("_"):
                homes[name] = f"{home}:{value.__qualname__}"
        out[package] = dict(sorted(homes.items()))
    return out


def manifest() -> dict[str, Any]:
    found = {f"{c.__module__}:{c.__qualname__}": entry(c) for c in classes()}
    return {"classes": dict(sorted(found.items())), "public_names": public_names()}


def text() -> bytes:
    return orjson.dumps(manifest(), option=orjson.OPT_INDENT_2) + b"\n"


def main() -> None:
    MANIFEST.write_bytes(text())
    print(f"wrote {MANIFEST}")


if __name__ == "__main__":
    main()
