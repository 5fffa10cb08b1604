"""What a class of synthflow's reaches, as rules over its field values: one rule per kind of
exposure, applied to a built object's values (its ``exposures()``) and to a pipeline file's
values (``synthflow pipeline info --config``, which builds nothing and imports no pydantic).

A class names its rule, and the facts the rule needs (a provider's key variables, default
endpoint, own hosts), in ``exposure_classes.json``, generated from the classes themselves by
``python -m synthflow.exposure_manifest`` (tests/test_exposure_rules.py fails when it is stale).
A file's step is read from its data only when every class it names is in that manifest and
every value a rule reads has the type the class would keep as it is; otherwise ``None`` says
"can't tell from the data": the caller builds the step, as a run would.
"""

from __future__ import annotations

import functools
import os
import urllib.parse
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import orjson

from synthflow.audit import DataAccess, Endpoint, Exposure, ForeignCode, env_key, targets

MANIFEST = Path(__file__).with_name("exposure_classes.json")

Values = Mapping[str, Any]
"""Field values by name; a field a file leaves out is absent (its default applies)."""
Facts = Mapping[str, Any]
Rule = Callable[[str, Values, Facts], Iterator[Exposure]]

_MISSING = object()


def _text(value: Any) -> str | None:
    """A text setting's value: None when unset (or given later, as a runtime parameter)."""
    return value if isinstance(value, str) else None


def resolved_url(
    base_url: str | None,
    base_url_env: str | None,
    default: str,
    form: str = "as_given",
    env_path: str = "",
) -> str:
    """The endpoint an API client calls: its ``base_url``, else its provider's base-URL
    variable (with ``env_path`` added where the variable names the API's root, as distilabel's
    ``GROQ_BASE_URL`` does), else the provider's default; completed as its server takes it
    (``form``, one of ``URL_FORMS``)."""
    from_env = (os.environ.get(base_url_env) or "").rstrip("/") if base_url_env else ""
    if from_env and not from_env.endswith(env_path):
        from_env += env_path
    return URL_FORMS[form]((base_url or from_env or default).rstrip("/"))


OLLAMA_PORT = 11434


def _ollama_host(url: str) -> str:
    # OLLAMA_HOST and distilabel's ``host`` may be a bare host, or host:port.
    raw = url.strip().rstrip("/")
    if "://" in raw:
        return raw
    host = raw.rsplit("]", 1)[-1]  # an IPv6 address has colons of its own
    return f"http://{raw}" if ":" in host else f"http://{raw}:{OLLAMA_PORT}"


def _openai_routes(url: str) -> str:
    # The OpenAI routes live under /v1; distilabel's docs also show a bare server URL.
    return f"{url}/v1" if urllib.parse.urlsplit(url).path in ("", "/") else url


URL_FORMS: dict[str, Callable[[str], str]] = {
    "as_given": lambda url: url,
    "ollama_host": _ollama_host,
    "openai_routes": _openai_routes,
}
"""How a client completes the URL it is given (``APILLM.endpoint_form``)."""


def api_endpoint(where: str, values: Values, facts: Facts, url: str | None = None) -> Endpoint:
    """An HTTP API client's endpoint and whose key it sends (``url``: the endpoint as the
    client resolves it, when it is not ``resolved_url``)."""
    base_url = _text(values.get("base_url"))
    names = tuple(facts.get("key_envs") or ())
    key = values.get("api_key")
    return Endpoint(
        where=where,
        provider=str(facts.get("provider")),
        url=url if url is not None else _facts_url(base_url, facts),
        setting=base_url,
        key_env=env_key(names, key),
        key_given=key is not None,
        key_envs=names,
        own_hosts=tuple(facts.get("own_hosts") or ()),
        url_env=facts.get("base_url_env"),
    )


def _facts_url(base_url: str | None, facts: Facts) -> str:
    default = str(facts.get("default_base_url"))
    form = str(facts.get("endpoint_form", "as_given"))
    env_path = str(facts.get("base_url_env_path", ""))
    return resolved_url(base_url, facts.get("base_url_env"), default, form, env_path)


def api_exposures(where: str, values: Values, facts: Facts) -> Iterator[Exposure]:
    yield api_endpoint(where, values, facts)


def litellm_exposures(where: str, values: Values, facts: Facts) -> Iterator[Exposure]:
    # LiteLLM reads the provider's key from its variable (OPENAI_API_KEY for "openai/...")
    # and sends it to api_base when one is set.
    model = str(values.get("model") or "")
    provider = model.split("/", 1)[0] if "/" in model else "openai"
    names = (f"{provider.upper()}_API_KEY",)
    api_base = _text(values.get("api_base"))
    key = values.get("api_key")
    yield Endpoint(
        where=where,
        provider=f"litellm ({provider})",
        url=api_base or "",  # else the provider's own, which LiteLLM knows
        setting=api_base,
        key_env=env_key(names, key),
        key_given=key is not None,
        key_envs=names,
    )


def argilla_exposures(where: str, values: Values, facts: Facts) -> Iterator[Exposure]:
    # Both default to their variable when left out (the fields' default factories).
    api_url = values.get("api_url", _MISSING)
    api_url = os.environ.get("ARGILLA_API_URL") if api_url is _MISSING else _text(api_url)
    key = values.get("api_key", _MISSING)
    env_value = os.environ.get("ARGILLA_API_KEY")
    key = (env_value or None) if key is _MISSING else key
    key_env = "ARGILLA_API_KEY" if key and key == env_value else None
    if key_env is None and api_url and "hf.space" in api_url:
        key_env = "HF_TOKEN" if os.environ.get("HF_TOKEN") else None  # ArgillaStep.load()
    yield Endpoint(
        where=where,
        provider="argilla",
        url=api_url or "",
        setting=api_url,
        key_env=key_env,
        key_given=key is not None and key_env is None,
        key_envs=("ARGILLA_API_KEY",),
        url_env="ARGILLA_API_URL",
    )


def saved_dataset_reads(where: str, values: Values, facts: Facts) -> Iterator[Exposure]:
    path = _text(values.get("dataset_path"))
    if path is not None:  # else given later, as a runtime parameter
        yield DataAccess(where, path, "reads")


def hub_dataset_reads(where: str, values: Values, facts: Facts) -> Iterator[Exposure]:
    repo_id = _text(values.get("repo_id"))
    if repo_id is None:
        return  # given later, as a runtime parameter
    # datasets reads a local directory named as the repo id: that is a local path.
    local = repo_id.startswith(("/", ".", "~")) or os.path.exists(repo_id)
    yield DataAccess(where, repo_id if local else f"hf://datasets/{repo_id}", "reads")


def data_files_reads(where: str, values: Values, facts: Facts) -> Iterator[Exposure]:
    for target in targets(values.get("data_files")):
        yield DataAccess(where, target, "reads")


def hub_push_writes(where: str, values: Values, facts: Facts) -> Iterator[Exposure]:
    repo_id = _text(values.get("repo_id"))
    if repo_id is not None:  # else given later, as a runtime parameter
        yield DataAccess(where, f"hf://datasets/{repo_id}", "writes")


def model_file_loads(where: str, values: Values, facts: Facts) -> Iterator[Exposure]:
    path = _text(values.get("model_path"))
    if path is not None:
        yield DataAccess(where, path, "loads")


def no_exposures(where: str, values: Values, facts: Facts) -> Iterator[Exposure]:
    return iter(())


RULES: dict[str, Rule] = {
    "api": api_exposures,
    "litellm": litellm_exposures,
    "argilla": argilla_exposures,
    "saved_dataset": saved_dataset_reads,
    "hub_dataset": hub_dataset_reads,
    "data_files": data_files_reads,
    "hub_push": hub_push_writes,
    "model_file": model_file_loads,
    "none": no_exposures,
}

TEXT, TEXTS, SECRET, FLAG = "text", "texts", "secret", "flag"
RULE_FIELDS: dict[str, dict[str, str]] = {
    "api": {"base_url": TEXT, "api_key": SECRET},
    "litellm": {"model": TEXT, "api_base": TEXT, "api_key": SECRET},
    "argilla": {"api_url": TEXT, "api_key": SECRET},
    "saved_dataset": {"dataset_path": TEXT},
    "hub_dataset": {"repo_id": TEXT},
    "data_files": {"data_files": TEXTS},
    "hub_push": {"repo_id": TEXT},
    "model_file": {"model_path": TEXT},
    "none": {},
}
"""The fields each rule reads, and the kind of value each holds."""

REMOTE_CODE = "trust_remote_code"


def _fits(value: Any, kind: str) -> bool:
    """Whether a file's ``value`` is kept as it is by a field of this kind (else the class
    would convert or refuse it, and only building it tells)."""
    if value is None:
        return kind != FLAG
    if kind == FLAG:
        return isinstance(value, bool)
    if kind == TEXTS and isinstance(value, list):
        return all(isinstance(v, str) for v in value)
    return isinstance(value, str)


@functools.cache
def _manifest_file() -> dict[str, Any]:
    data: dict[str, Any] = orjson.loads(MANIFEST.read_bytes())
    return data


def manifest() -> dict[str, Any]:
    """The classes of ``exposure_classes.json``, by ``module:qualname``."""
    classes: dict[str, Any] = _manifest_file()["classes"]
    return classes


def public_names() -> dict[str, dict[str, str]]:
    """Each public name of synthflow's public packages (``steps``, ``steps.tasks``, ``models``,
    ``pipeline``) as ``module:qualname``, by package: where distilabel's names resolve."""
    names: dict[str, dict[str, str]] = _manifest_file()["public_names"]
    return names


def _is_model_spec(value: Any) -> bool:
    info = value.get("type_info") if isinstance(value, dict) else None
    return (
        isinstance(info, dict)
        and isinstance(info.get("module"), str)
        and isinstance(info.get("name"), str)
    )


class Unreadable(Exception):
    """The data alone can't say what a class would reach: build it."""


def spec_exposures(spec: Mapping[str, Any], where: str) -> list[Exposure] | None:
    """What a file's step (or model) spec reaches, from its data, in the order
    ``audit.exposures_of`` gives for the built step; None when only building it can tell."""
    if not _is_model_spec(spec):
        return None
    try:
        found = _spec(spec, where, is_step=True)
        return list(dict.fromkeys(found))  # each once, as exposures_of gives them
    except Unreadable:
        return None


def _spec(spec: Mapping[str, Any], where: str, *, is_step: bool = False) -> Iterator[Exposure]:
    info = spec["type_info"]
    entry = manifest().get(f"{info['module']}:{info['name']}")
    if entry is None or entry["rule"] not in RULES:
        raise Unreadable
    fields: list[str] = entry["fields"]
    given = [k for k in spec if k not in ("type_info", "runtime_parameters_info")]
    if is_step:
        given = [k for k in given if k != "name"]
    tolerated: list[str] = entry.get("dropped_if_off", [])
    for key in given:
        if key in tolerated and spec[key] in (None, False):
            continue
        if _plain_alias(key, spec, entry):
            continue
        if key not in fields:
            raise Unreadable  # a misspelt field, or one the class renames or refuses
    kinds = dict(RULE_FIELDS[entry["rule"]])
    if REMOTE_CODE in fields:
        kinds[REMOTE_CODE] = FLAG
    values: dict[str, Any] = {}
    defaults: dict[str, Any] = entry.get("defaults", {})
    for name, kind in kinds.items():
        if name in spec:
            value = spec[name]
            if not _fits(value, kind) or (value is None and name not in entry["nullable"]):
                raise Unreadable
            values[name] = value
        elif name in defaults:
            values[name] = defaults[name]
        elif name in entry.get("required", ()):
            raise Unreadable  # the class refuses it, or its default is more than data
        # else: a default factory the rule applies itself (exposure_manifest.FACTORY_DEFAULTS)
    yield from RULES[entry["rule"]](where, values, entry.get("facts", {}))
    if values.get(REMOTE_CODE) is True:
        yield ForeignCode(where, REMOTE_CODE)
    for name in fields:
        if name in spec:
            yield from _value(spec[name], f"{where}.{name}")


def _plain_alias(key: str, spec: Mapping[str, Any], entry: Mapping[str, Any]) -> bool:
    """A plain setting under distilabel's name (``field_aliases``) that no rule reads; with its
    own name too, the class refuses it."""
    target: str | None = entry.get("aliases", {}).get(key)
    return (
        target is not None
        and key not in entry.get("aliases_of_read", ())
        and not isinstance(spec[key], dict | list)
        and target.split(".")[0] not in spec
    )


def _value(value: Any, where: str) -> Iterator[Exposure]:
    """The models nested in a field's value, named as ``audit._walk_value`` names them."""
    if _is_model_spec(value):
        yield from _spec(value, where)
    elif isinstance(value, list):
        if value and isinstance(value[0], list | dict):
            for i, item in enumerate(value):
                yield from _value(item, f"{where}[{i}]")
    elif isinstance(value, dict):
        for key, item in value.items():
            if _is_model_spec(item):
                yield from _spec(item, f"{where}.{key}")
