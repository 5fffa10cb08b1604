"""``pipeline info --config`` reads what a file reaches from its data (synthflow.exposure_rules),
without building the classes it names. Checked against the reference, what the classes built
from the same data say (the step ``Pipeline.from_file`` builds), for every class a rule covers,
under every combination of the settings and variables that rule reads."""

from __future__ import annotations

import inspect
import itertools
from collections.abc import Iterator
from typing import Any

import pytest
from pydantic import BaseModel

from synthflow.audit import ForeignCode, exposures_of, file_exposures
from synthflow.exposure_manifest import classes, text
from synthflow.exposure_rules import MANIFEST, RULES, manifest, spec_exposures
from synthflow.models.embeddings.base import Embeddings
from synthflow.models.image_generation.base import ImageGenerationModel
from synthflow.models.llms import MistralLLM
from synthflow.models.llms.base import LLM
from synthflow.models.llms.local.transformers import TransformersLLM
from synthflow.pipeline import Pipeline
from synthflow.serialization import dump_step, load_step
from synthflow.steps import EmbeddingGeneration, LoadDataFromDicts
from synthflow.steps.base import _Step
from synthflow.steps.tasks import ImageGeneration, TextGeneration


def test_the_manifest_is_up_to_date() -> None:
    assert MANIFEST.read_bytes() == text(), (
        "synthflow/exposure_classes.json is stale: run `python -m synthflow.exposure_manifest`"
    )


# -- the generated cases ------------------------------------------------------------------------

SETTINGS: dict[str, list[Any]] = {
    "base_url": [None, "http://127.0.0.1:9/v1", "http://127.0.0.1:9", "localhost"],
    "api_key": [None, "sk-given"],
    "api_base": [None, "http://127.0.0.1:9"],
    "api_url": [None, "https://argilla.example"],
    "model": ["m", "anthropic/claude"],
    "repo_id": ["org/data", "./local-data"],
    "data_files": ["data/*.jsonl", ["a.jsonl", "/elsewhere/b.csv"]],
    "dataset_path": ["saved", "/elsewhere/saved"],
    "model_path": ["/models/m.gguf"],
    "trust_remote_code": [False, True],
}
"""Values of the fields the rules read (the first: a plain one)."""

REQUIRED: dict[str, Any] = {
    "model": "m",
    "dataset_name": "ds",
    "dataset_path": "saved",
    "model_path": "/models/m.gguf",
    "num_generations": 2,
}


def _rule_classes() -> Iterator[type[BaseModel]]:
    for cls in classes():
        rule = manifest()[f"{cls.__module__}:{cls.__qualname__}"]["rule"]
        if rule in RULES and (rule != "none" or "trust_remote_code" in cls.model_fields):
            yield cls


def _variables(cls: type[BaseModel]) -> list[str]:
    entry = manifest()[f"{cls.__module__}:{cls.__qualname__}"]
    facts = entry.get("facts", {})
    names = [*facts.get("key_envs", [])[:1], facts.get("base_url_env")]
    if entry["rule"] == "argilla":
        names += ["ARGILLA_API_KEY", "ARGILLA_API_URL", "HF_TOKEN"]
    if entry["rule"] == "litellm":
        names += ["ANTHROPIC_API_KEY", "OPENAI_API_KEY"]
    return [n for n in names if n]


def _cases(cls: type[BaseModel]) -> Iterator[dict[str, Any]]:
    read = [name for name in SETTINGS if name in cls.model_fields]
    for values in itertools.product(*(SETTINGS[name] for name in read)):
        given = dict(zip(read, values, strict=True))
        yield {**{k: v for k, v in REQUIRED.items() if k in cls.model_fields}, **given}


def _in_a_step(model: BaseModel) -> _Step:
    if isinstance(model, _Step):
        return model
    if isinstance(model, Embeddings):
        return EmbeddingGeneration(name="s", embeddings=model)
    if isinstance(model, ImageGenerationModel):
        return ImageGeneration(name="s", llm=model)
    assert isinstance(model, LLM)
    return TextGeneration(name="s", llm=model)


def _dumped_steps(cls: type[BaseModel]) -> Iterator[dict[str, Any]]:
    """The step specs ``pipeline.dump()`` writes for ``cls`` with each case's arguments."""
    for kwargs in _cases(cls):
        if issubclass(cls, _Step):
            kwargs = {"name": "s", **kwargs}
        with Pipeline(name="p") as pipeline:
            try:
                model = cls(**kwargs)
            except (TypeError, ValueError):
                continue  # abstract, or a combination the class refuses
            _in_a_step(model)
        yield pipeline.dump()["pipeline"]["steps"][0]


RULE_CLASSES = sorted(_rule_classes(), key=lambda c: f"{c.__module__}.{c.__qualname__}")


@pytest.mark.parametrize("cls", RULE_CLASSES, ids=lambda c: c.__qualname__)
def test_the_data_says_what_the_built_step_says(
    cls: type[BaseModel], monkeypatch: pytest.MonkeyPatch
) -> None:
    if inspect.isabstract(cls):
        pytest.skip(f"{cls.__qualname__} is abstract")
    variables = _variables(cls)
    specs = list(_dumped_steps(cls))
    assert specs, f"no case of {cls.__qualname__} builds: give its required fields in REQUIRED"
    read = 0
    for spec in specs:
        for values in itertools.product(["", "set"], repeat=len(variables)):
            for name, value in zip(variables, values, strict=True):
                if name.endswith("_URL") or name.endswith("_BASE_URL"):
                    value = "http://127.0.0.1:7/v1" if value else ""
                else:
                    value = f"{name.lower()}-value" if value else ""
                if value:
                    monkeypatch.setenv(name, value)
                else:
                    monkeypatch.delenv(name, raising=False)
            expected = list(exposures_of(load_step(spec), "s"))
            found = spec_exposures(spec, "s")
            if found is not None:
                read += 1
                assert found == expected, (spec, found, expected)
    assert read, f"no case of {cls.__qualname__} was read from its data"


def test_a_file_the_rules_cant_read_is_built_as_before() -> None:
    with Pipeline(name="p") as pipeline:
        llm = TextGeneration(name="s", llm=_openai(base_url="http://127.0.0.1:9/v1"))
        LoadDataFromDicts(name="load", data=[{"instruction": "x"}]) >> llm
    data = pipeline.dump()
    spec = next(s for s in data["pipeline"]["steps"] if s["name"] == "s")
    assert spec_exposures(spec, "s") is not None
    spec["llm"]["base_ur1"] = "http://elsewhere"  # misspelt: the class refuses it
    assert spec_exposures(spec, "s") is None
    spec["llm"].pop("base_ur1")
    spec["llm"]["base_url"] = 123  # pydantic refuses it
    assert spec_exposures(spec, "s") is None
    _found, judged = file_exposures(data)
    assert judged == []  # as before: only a step that builds is judged

    mistral = dump_step(TextGeneration(name="m", llm=MistralLLM(model="m")))
    del mistral["llm"]["max_concurrency"]
    mistral["llm"]["max_concurrent_requests"] = 3  # distilabel's name of max_concurrency
    assert spec_exposures(mistral, "m") is not None
    mistral["llm"]["max_concurrency"] = 3  # and its own: the class refuses both
    assert spec_exposures(mistral, "m") is None

    spec = dump_step(TextGeneration(name="t", llm=TransformersLLM(model="org/m")))
    spec["llm"]["trust_remote_code"] = "yes"  # pydantic reads it as True: only building tells
    assert spec_exposures(spec, "t") is None
    assert ForeignCode("t.llm", "trust_remote_code") in file_exposures(_file(spec))[1]


def _openai(**kwargs: Any) -> LLM:
    from synthflow.models.llms import OpenAILLM

    return OpenAILLM(model="m", **kwargs)


def _file(*steps: dict[str, Any]) -> dict[str, Any]:
    return {"pipeline": {"name": "p", "steps": list(steps), "connections": []}}
