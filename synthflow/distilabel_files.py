"""Pipeline files that distilabel wrote (every dataset it pushes to the Hub carries one), read as
synthflow's own: ``synthflow pipeline run --config https://huggingface.co/.../pipeline.yaml``.

distilabel's layout differs from synthflow's in four ways, each undone here on the file's plain
data, before anything else reads it (so ``pipeline info``, the trust checks and loading all see
one layout):

- each step is wrapped: ``{step: {...fields..., type_info}, name}``;
- a class is named by distilabel's module (``distilabel.steps.columns.keep``, ``KeepColumns``):
  it resolves to synthflow's class of the same public name, found through one table
  (``public_names`` in ``exposure_classes.json``, generated from synthflow's public packages).
  The same holds when a user replaced the text ``distilabel`` by ``synthflow`` throughout. Only
  synthflow's classes are ever imported, never distilabel's; every other module is left as it
  is, for the usual trust rules;
- every field of every class is written, some that synthflow doesn't have: one whose value is
  distilabel's default (or asks for nothing) is dropped; any other is a one-line error;
- ``runtime_parameters_info`` nests the parameters of nested models; here it is flattened to
  synthflow's dotted names.

Like ``synthflow.pipeline_file``, this imports neither pydantic nor any class a file names.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from synthflow.errors import SerializationError
from synthflow.pipeline_file import is_type_info

FOREIGN_ROOTS = ("distilabel", "synthflow")
"""Module roots that name distilabel's classes in a file in distilabel's layout: ``synthflow``
where a user replaced the text ``distilabel`` throughout."""

_NAMESPACES = (
    ("steps.tasks", "steps.tasks"),
    ("steps", "steps"),
    ("models", "models"),
    ("llms", "models"),  # distilabel < 1.5 kept its LLMs here
    ("embeddings", "models"),
    ("pipeline", "pipeline"),
)
"""distilabel's packages (by module prefix, most specific first), and synthflow's public package
whose names they resolve in."""

_NO_BATCH_API = (
    "this client has no offline batch API in synthflow (OpenAILLM, GroqLLM and AnthropicLLM "
    "have); remove it"
)
_NO_PLACEMENT = "synthflow doesn't place models on GPUs; remove it and set CUDA_VISIBLE_DEVICES"
_NO_CACHE_SWITCH = (
    "synthflow's cache is the run's, not a step's: remove it and run with --ignore-cache "
    "(run(use_cache=False)) to recompute"
)

ANY_VALUE: tuple[Any, ...] = ()
"""A field whose value, whatever it is, changes nothing here."""

DISTILABEL_ONLY: dict[str, tuple[tuple[Any, ...], str]] = {
    "use_cache": ((True,), _NO_CACHE_SWITCH),
    "use_offline_batch_generation": ((False, None), _NO_BATCH_API),
    "offline_batch_generation_block_until_done": ((None,), _NO_BATCH_API),
    "jobs_ids": ((None,), "synthflow keeps batch ids in the run directory; remove it"),
    "cuda_devices": (("auto", None), _NO_PLACEMENT),
    "disable_cuda_device_placement": ((False, True, None), _NO_PLACEMENT),
    "seed": ((0, None), "synthflow's local models take no engine seed; remove it"),
    "extra_kwargs": (({}, None), "pass engine arguments through synthflow's model settings"),
    "tokenizer_mode": (("auto", None), "synthflow uses the model's own tokenizer; remove it"),
    "skip_tokenizer_init": ((False, None), "synthflow initialises the tokenizer; remove it"),
    "tokenizer_revision": ((None,), "pin the model revision instead; remove it"),
    "structured_output": (
        (None,),
        "this client has no structured output here; use a client "
        "that has (OpenAILLM, InferenceEndpointsLLM...)",
    ),
    "client_name": (ANY_VALUE, "the name Cohere's client sends; it changes no answer"),
    "verbose": ((False, None), "synthflow logs through the logging module; remove it"),
    "follow_redirects": ((True, None), "synthflow's HTTP client follows redirects; remove it"),
    "config": ((None,), "a Hub dataset's config applies to LoadDataFromHub only; remove it"),
    "revision": ((None,), "a Hub dataset's revision applies to LoadDataFromHub only; remove it"),
}
"""Fields distilabel writes that synthflow's class of the same name lacks: the values that ask
for nothing (dropped without a word; ``ANY_VALUE``: every value), and what to do about any
other."""

NONE_IS_UNSET = frozenset({"default_headers", "model_kwargs"})
"""Fields distilabel writes as ``null`` when unset, where synthflow's default is no value."""

NOT_SAVED = {"LoadDataFromDicts": "data", "DataSampler": "data"}
"""Fields distilabel never writes (``exclude=True``) that synthflow's class needs."""


def is_distilabel_layout(body: Mapping[str, Any]) -> bool:
    """Whether the pipeline section wraps its steps as distilabel does."""
    steps = body.get("steps")
    if not isinstance(steps, list) or not steps:
        return False
    first = steps[0]
    return isinstance(first, dict) and isinstance(first.get("step"), dict)


def synthflow_body(body: Mapping[str, Any], *, strict: bool = True) -> dict[str, Any]:
    """distilabel's pipeline section in synthflow's layout (see the module's docstring).

    ``strict``: raise on what synthflow can't run (a class it lacks, a setting it can't honour,
    rows distilabel didn't save); else leave those as they are, for ``pipeline info`` to show."""
    reading = _Reading(strict)
    out = {k: v for k, v in body.items() if k != "type_info"}  # distilabel's Pipeline class
    out["steps"] = [reading.step(entry, i) for i, entry in enumerate(body["steps"])]
    routes = body.get("routing_batch_functions") or []
    if isinstance(routes, list):
        out["routing_batch_functions"] = [reading.route(e, i) for i, e in enumerate(routes)]
    return out


class _Reading:
    def __init__(self, strict: bool) -> None:
        self.strict = strict
        self.dropped: set[str] = set()  # dotted paths of the fields dropped from this step

    def problem(self, message: str) -> None:
        if self.strict:
            raise SerializationError(message)

    def step(self, entry: Any, index: int) -> Any:
        if not isinstance(entry, dict) or not isinstance(entry.get("step"), dict):
            return entry  # the loader says what is wrong with it
        spec = dict(entry["step"])
        name = entry.get("name") or spec.get("name")
        where = f"step {name!r}" if name else f"step #{index + 1}"
        params = spec.pop("runtime_parameters_info", None) or []
        self.dropped = set()
        spec = self.model(spec, where, "")
        flat = [p for p in _flat_parameters(params, "") if p["name"] not in self.dropped]
        spec["runtime_parameters_info"] = flat
        return {"name": name, **{k: v for k, v in spec.items() if k != "name"}}

    def route(self, entry: Any, index: int) -> Any:
        if not isinstance(entry, dict) or not is_type_info(entry.get("type_info")):
            return entry
        where = f"routing batch function #{index + 1}"
        return {**entry, "type_info": self.type_info(entry["type_info"], where)}

    def model(self, spec: Mapping[str, Any], where: str, path: str) -> dict[str, Any]:
        """A class's fields, its type_info synthflow's and distilabel's extra fields dropped."""
        info: Any = spec.get("type_info")
        out: dict[str, Any] = {}
        known = None
        if is_type_info(info):
            info = self.type_info(info, where)
            out["type_info"] = info
            known = _known_fields(info)
            missing = NOT_SAVED.get(info["name"])
            if missing is not None and missing not in spec:
                self.problem(
                    f"{where}: distilabel doesn't save {info['name']}'s {missing!r}, so the file "
                    f"has none: add it to the step in the file ({missing}: [{{...}}, ...])"
                )
        for key, value in spec.items():
            if key == "type_info" or (key in NONE_IS_UNSET and value is None):
                continue
            if known is not None and key not in known and key in DISTILABEL_ONLY:
                off, advice = DISTILABEL_ONLY[key]
                if not off or any(value == v and type(value) is type(v) for v in off):
                    self.dropped.add(path + key)
                    continue
                self.problem(
                    f"{where}: field {path + key!r} = {value!r} is distilabel's, and synthflow's "
                    f"{info['name']} can't honour it: {advice}"
                )
            out[key] = self.value(value, where, f"{path}{key}.")
        return out

    def value(self, value: Any, where: str, path: str) -> Any:
        if isinstance(value, dict):
            if is_type_info(value.get("type_info")):
                return self.model(value, where, path)
            if _is_indexed(value):  # distilabel writes a list of models as {'0': ..., '1': ...}
                return [self.value(v, where, f"{path}{i}.") for i, v in enumerate(value.values())]
            return {k: self.value(v, where, path) for k, v in value.items()}
        if isinstance(value, list):
            return [self.value(v, where, path) for v in value]
        return value

    def type_info(self, info: Mapping[str, Any], where: str) -> dict[str, Any]:
        """The type_info of synthflow's class for distilabel's ``info``; any other module's is
        returned as it is."""
        module, name = str(info["module"]), str(info["name"])
        root, _, rest = module.partition(".")
        home = _home(rest, name) if root in FOREIGN_ROOTS else None
        if home is None:
            if root == "distilabel":
                self.problem(
                    f"{where} uses distilabel's {module}.{name}, which synthflow doesn't have: "
                    "replace it by a synthflow class in the file, or run it with distilabel"
                )
            return dict(info)  # another module's (synthflow's own, when renamed)
        module, _, qualname = home.partition(":")
        return {**info, "module": module, "name": qualname}


def _home(distilabel_module: str, name: str) -> str | None:
    """``module:qualname`` of synthflow's class for the public ``name`` of distilabel's module."""
    from synthflow.exposure_rules import public_names

    tables = public_names()
    for prefix, namespace in _NAMESPACES:
        if distilabel_module == prefix or distilabel_module.startswith(prefix + "."):
            home = tables.get(namespace, {}).get(name)
            if home is not None:
                return home
    for table in tables.values():  # a name distilabel exports from another package than ours
        if name in table:
            return table[name]
    return None


def _known_fields(info: Mapping[str, Any]) -> set[str] | None:
    from synthflow.exposure_rules import manifest

    entry = manifest().get(f"{info['module']}:{info['name']}")
    if entry is None:
        return None
    return {*entry["fields"], *entry.get("aliases", {})}


def _is_indexed(value: Mapping[str, Any]) -> bool:
    return bool(value) and list(value) == [str(i) for i in range(len(value))]


def _flat_parameters(params: Any, prefix: str) -> Iterator[dict[str, Any]]:
    """distilabel's nested ``runtime_parameters_info`` as synthflow's dotted entries."""
    if not isinstance(params, list):
        return
    for param in params:
        if not isinstance(param, dict) or "name" not in param:
            continue
        path = f"{prefix}{param['name']}"
        nested = param.get("runtime_parameters_info")
        if isinstance(nested, dict):  # a list of models, by index
            for index, params_of_one in nested.items():
                yield from _flat_parameters(params_of_one, f"{path}.{index}.")
            continue
        if isinstance(nested, list):
            yield from _flat_parameters(nested, path + ".")
            continue
        entry = {k: v for k, v in param.items() if k != "keys"}
        if isinstance(entry.get("description"), list):  # a tuple in distilabel's code
            entry["description"] = ",".join(map(str, entry["description"]))
        entry["name"] = path
        entry.setdefault("optional", True)
        yield entry
