"""Pipelines to YAML/JSON and back: every built-in round-trips and runs, secrets stay out, and
loading imports nothing it wasn't allowed to."""

from __future__ import annotations

import inspect
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from pydantic import Field, SecretStr, ValidationError

import synthflow.models.llms
from synthflow.errors import SerializationError
from synthflow.models.llms import LLM, OfflineLLM
from synthflow.pipeline import Pipeline
from synthflow.serialization import read_source, to_text
from synthflow.steps import (
    CombineColumns,
    DropDuplicates,
    KeepColumns,
    LoadDataFromDicts,
    RuntimeParameter,
    Step,
    StepInput,
    step,
)
from synthflow.steps.base import Row
from synthflow.steps.tasks import ChatGeneration, TextGeneration
from synthflow.testing import FunctionLLM
from tests.conftest import PRIVATE_TOKEN


@step(inputs=["generation"], outputs=["shout"])
def Shout(inputs: StepInput, suffix: RuntimeParameter[str] = "!") -> Iterator[list[Row]]:
    for row in inputs:
        row["shout"] = (row["generation"] or "").upper() + suffix
    yield inputs


class WithSecret(Step):
    token: SecretStr
    label: str = "x"

    def process(self, inputs: StepInput) -> Iterator[list[Row]]:
        yield inputs


class WithObject(Step):
    lock: Any = None

    def process(self, inputs: StepInput) -> Iterator[list[Row]]:
        yield inputs


def one_line(exc: pytest.ExceptionInfo[BaseException]) -> str:
    message = str(exc.value)
    assert "\n" not in message
    return message


def questions() -> list[dict[str, Any]]:
    rows = [
        {"instruction": f"q{i}", "messages": [{"role": "user", "content": f"q{i}"}]}
        for i in range(6)
    ]
    return [*rows, dict(rows[0])]  # one duplicate, for DropDuplicates


def every_builtin() -> Pipeline:
    """One pipeline with every built-in step, task and LLM, and a @step class."""
    with Pipeline(name="all", description="every built-in") as pipeline:
        load = LoadDataFromDicts(name="load", data=questions(), batch_size=3)
        text = TextGeneration(
            name="text",
            llm=OfflineLLM(model="model-a", generation_kwargs={"temperature": 0.3}),
            system_prompt="Be brief.\nBe kind.",
        )
        chat = ChatGeneration(name="chat", llm=OfflineLLM(model="model-b", jitter=0.001))
        combine = CombineColumns(
            name="combine",
            columns=["generation", "model_name"],
            output_columns=["generations", "model_names"],
        )
        dedupe = DropDuplicates(name="dedupe", columns=["instruction"])
        keep = KeepColumns(name="keep", columns=["instruction", "generations", "model_names"])
        shout = Shout(name="shout", suffix="?")
        load >> [text, chat] >> combine >> dedupe >> keep
        text >> shout
    return pipeline


def rows(distiset: Any, subset: str) -> list[dict[str, Any]]:
    return list(distiset[subset]["train"])


@pytest.mark.parametrize("suffix", [".yaml", ".json"])
def test_every_builtin_round_trips_and_runs_the_same(tmp_path: Path, suffix: str) -> None:
    original = every_builtin()
    path = original.save(tmp_path / f"pipeline{suffix}")

    loaded = Pipeline.from_file(path, allowed_modules=[__name__])

    assert loaded.signature == original.signature
    assert loaded.edges == original.edges
    assert [type(s) for s in loaded.steps.values()] == [type(s) for s in original.steps.values()]
    assert loaded.dump() == original.dump()
    expected, got = original.run(progress=False), loaded.run(progress=False)
    assert set(got) == {"keep", "shout"}
    for subset in ("keep", "shout"):
        assert rows(got, subset) == rows(expected, subset)
    assert len(rows(got, "keep")) == 6  # the inline data came back, duplicate dropped
    assert rows(got, "shout")[0]["shout"].endswith("?")


def test_the_file_lists_steps_llms_connections_and_runtime_parameters() -> None:
    data = every_builtin().dump()
    body = data["pipeline"]
    text = next(s for s in body["steps"] if s["name"] == "text")

    assert data["synthflow"]["format"] == 1
    assert text["type_info"] == {
        "module": "synthflow.steps.tasks.text_generation",
        "name": "TextGeneration",
    }
    assert text["llm"]["type_info"] == {
        "module": "synthflow.models.llms.offline",
        "name": "OfflineLLM",
    }
    assert text["llm"]["generation_kwargs"] == {"temperature": 0.3}
    shout = next(s for s in body["steps"] if s["name"] == "shout")
    assert shout["type_info"] == {"module": __name__, "name": "Shout"}  # by reference
    params = {p["name"]: p for p in text["runtime_parameters_info"]}
    assert params["llm.generation_kwargs"]["value"] == {"temperature": 0.3}
    assert params["concurrency"] == {
        "name": "concurrency",
        "description": "Rows in flight at once (LLM calls under way).",
        "optional": True,
        "value": 64,
    }
    assert body["connections"][:2] == [
        {"from": "load", "to": "text"},
        {"from": "load", "to": "chat"},
    ]
    assert body["signature"] == every_builtin().signature


def test_yaml_keeps_multiline_prompts_readable() -> None:
    text = to_text(every_builtin().dump(), "yaml")
    assert "system_prompt: |-\n      Be brief.\n      Be kind.\n" in text


# -- LLMs ---------------------------------------------------------------------------------------

# Arguments for LLM classes that can't be built without some. Add a line per new client.
LLM_ARGUMENTS: dict[str, dict[str, Any]] = {
    "OpenAILLM": {"model": "gpt-4o-mini", "base_url": "http://127.0.0.1:9/v1"},
    "LlamaCppLLM": {"model_path": "/models/tiny.gguf"},
}
NEEDS_NETWORK_TO_RUN = {"OfflineLLM": False}


def exported_llm_classes() -> list[Any]:
    params = []
    for name in synthflow.models.llms.__all__:
        cls = getattr(synthflow.models.llms, name)
        if isinstance(cls, type) and issubclass(cls, LLM) and not inspect.isabstract(cls):
            params.append(pytest.param(cls, id=name))
    return params


def build_llm(cls: type[LLM], **extra: Any) -> LLM:
    attempts = [LLM_ARGUMENTS.get(cls.__name__, {}), {"model": "test-model"}]
    for kwargs in attempts:
        try:
            return cls(**kwargs, **extra)
        except ValidationError:
            continue
        except ImportError as exc:  # a local-model client without its optional dependency
            pytest.skip(f"{cls.__name__}: {exc}")
    pytest.skip(f"don't know how to build {cls.__name__}; add it to LLM_ARGUMENTS")


@pytest.mark.parametrize("fmt", ["yaml", "json"])
@pytest.mark.parametrize("cls", exported_llm_classes())
def test_every_exported_llm_round_trips(cls: type[LLM], fmt: str) -> None:
    secret = "sk-never-written-42"
    extra = {"api_key": secret} if "api_key" in cls.model_fields else {}
    with Pipeline(name="llm") as pipeline:
        load = LoadDataFromDicts(name="load", data=[{"instruction": "hi"}, {"instruction": "yo"}])
        load >> TextGeneration(name="gen", llm=build_llm(cls, **extra))

    text = to_text(pipeline.dump(), "json" if fmt == "json" else "yaml")
    loaded = Pipeline.from_json(text) if fmt == "json" else Pipeline.from_yaml(text)

    assert secret not in text
    llm = loaded.steps["gen"].llm  # type: ignore[attr-defined]
    assert type(llm) is cls
    assert loaded.signature == pipeline.signature
    assert loaded.dump() == pipeline.dump()
    if not NEEDS_NETWORK_TO_RUN.get(cls.__name__, True):
        assert len(loaded.run(progress=False)["default"]["train"]) == 2


def test_secrets_and_excluded_fields_are_never_written() -> None:
    with Pipeline() as pipeline:
        load = LoadDataFromDicts(name="load", data=[{"instruction": "hi"}])
        load >> WithSecret(name="secret", token=SecretStr("hunter2"))
        load >> TextGeneration(name="gen", llm=FunctionLLM(fn=lambda messages: "ok"))

    data = pipeline.dump()
    steps = {s["name"]: s for s in data["pipeline"]["steps"]}
    assert "token" not in steps["secret"]
    assert "fn" not in steps["gen"]["llm"]
    for fmt in ("yaml", "json"):
        assert "hunter2" not in to_text(data, fmt)  # type: ignore[arg-type]


def test_an_excluded_required_field_fails_to_load_with_one_line() -> None:
    with Pipeline() as pipeline:
        load = LoadDataFromDicts(name="load", data=[{"instruction": "hi"}])
        load >> TextGeneration(name="gen", llm=FunctionLLM(fn=lambda messages: "ok"))

    with pytest.raises(SerializationError) as info:
        Pipeline.from_dict(pipeline.dump())
    assert one_line(info) == "step 'gen': field 'llm.fn' (FunctionLLM): Field required"


def test_a_field_that_yaml_cant_hold_fails_save_but_not_the_run(tmp_path: Path) -> None:
    with Pipeline() as pipeline:
        load = LoadDataFromDicts(name="load", data=[{"n": 1}])
        load >> WithObject(name="obj", lock=threading.Lock())

    with pytest.raises(SerializationError) as info:
        pipeline.save(tmp_path / "p.yaml")
    assert "can't save step 'obj': field 'lock': it holds a lock," in one_line(info)
    assert "Field(exclude=True)" in one_line(info)
    assert not list(tmp_path.iterdir())  # nothing half-written

    distiset = pipeline.run(progress=False)
    assert distiset.pipeline_config is None
    assert "field 'lock'" in distiset.run_info["pipeline_error"]


# -- signature ----------------------------------------------------------------------------------


def test_signature_ignores_runtime_parameters_but_not_the_definition() -> None:
    base = every_builtin().signature
    tuned = every_builtin()
    tuned.validate({"load": {"batch_size": 1}, "text": {"llm": {"generation_kwargs": {}}}})
    changed = every_builtin()
    changed.steps["text"].system_prompt = "Be loud."  # type: ignore[attr-defined]

    assert tuned.signature == base
    assert changed.signature != base


def test_signature_is_the_same_in_another_process() -> None:
    code = f"import {__name__} as m; print(m.every_builtin().signature)"
    here = Path(__file__).parent
    path = os.pathsep.join([str(here), str(here.parent)])
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
        env={**os.environ, "PYTHONPATH": path},
    )
    assert out.stdout.strip() == every_builtin().signature


def test_signature_of_a_function_llm_does_not_depend_on_memory_addresses() -> None:
    def build() -> str:
        with Pipeline() as pipeline:
            load = LoadDataFromDicts(name="load", data=[{"instruction": "hi"}])
            load >> TextGeneration(name="gen", llm=FunctionLLM(fn=lambda messages: "ok"))
        return pipeline.signature

    assert build() == build()


# -- safe loading -------------------------------------------------------------------------------


def spec(module_name: str, class_name: str, **fields: Any) -> dict[str, Any]:
    return {"type_info": {"module": module_name, "name": class_name}, **fields}


def config(*steps: dict[str, Any], connections: list[dict[str, str]] | None = None) -> Any:
    load = spec("synthflow.steps.generators", "LoadDataFromDicts", name="load", data=[{"n": 1}])
    return {"pipeline": {"name": "p", "steps": [load, *steps], "connections": connections or []}}


def test_a_class_outside_the_allowed_modules_is_refused_without_importing_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    marker = tmp_path / "imported"
    (tmp_path / "sf_untrusted_steps.py").write_text(
        f"open({str(marker)!r}, 'w').close()\nclass Evil: pass\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    data = config(spec("sf_untrusted_steps", "Evil", name="evil"))

    with pytest.raises(SerializationError) as info:
        Pipeline.from_dict(data)

    assert one_line(info) == (
        "step 'evil' uses a class from module 'sf_untrusted_steps', which is not allowed: "
        "loading imports only synthflow and modules you trust; allow it with "
        "allowed_modules=['sf_untrusted_steps'] (CLI: --allow-module sf_untrusted_steps)"
    )
    assert not marker.exists()
    assert "sf_untrusted_steps" not in sys.modules


def test_one_refused_module_means_nothing_is_imported(tmp_path: Path) -> None:
    marker = tmp_path / "imported"
    (tmp_path / "sf_allowed_steps.py").write_text(f"open({str(marker)!r}, 'w').close()\n")
    data = config(
        spec("sf_allowed_steps", "Anything", name="a"),
        spec("os", "system", name="b"),
    )
    with pytest.raises(SerializationError, match="module 'os', which is not allowed"):
        Pipeline.from_dict(data, allowed_modules=["sf_allowed_steps"])
    assert not marker.exists()


def test_allowed_modules_cover_their_submodules() -> None:
    data = config(
        spec(__name__, "Shout", name="shout"),
        connections=[{"from": "load", "to": "shout"}],
    )
    data["pipeline"]["steps"][0]["data"] = [{"generation": "hi"}]
    with pytest.raises(SerializationError, match=f"allowed_modules=\\[{__name__!r}"):
        Pipeline.from_dict(data)
    loaded = Pipeline.from_dict(data, allowed_modules=[__name__.partition(".")[0]])
    assert rows(loaded.run(progress=False), "default")[0]["shout"] == "HI!"


@pytest.mark.parametrize(
    ("type_info", "message"),
    [
        (
            {"module": "synthflow.steps.columns", "name": "KeepColums"},
            "step 'x' has unknown type 'synthflow.steps.columns.KeepColums': "
            "synthflow.steps.columns has no class 'KeepColums' (did you mean 'KeepColumns'?)",
        ),
        (
            {"module": "synthflow.no_such_module", "name": "Step"},
            "step 'x': can't import module 'synthflow.no_such_module': "
            "No module named 'synthflow.no_such_module'",
        ),
        (
            {"module": "synthflow.pipeline.pipeline", "name": "Pipeline"},
            "step 'x' has type 'synthflow.pipeline.pipeline.Pipeline', which is not a synthflow "
            "step",
        ),
        (
            {"module": "synthflow.serialization", "name": "os.system"},
            "step 'x' has type 'synthflow.serialization.os.system', which is not a synthflow step",
        ),
        (
            {"module": "synthflow.steps", "name": "__class__"},
            "step 'x' has unknown type 'synthflow.steps.__class__'",
        ),
        (
            {"module": "__main__", "name": "Shout"},
            "step 'x' uses a class defined in __main__ (a script run directly), which can't be "
            "imported; move it into a module, or run the script with 'synthflow pipeline run "
            "--script FILE.py'",
        ),
        (
            {"module": "synthflow.steps", "name": "test.<locals>.Shout"},
            "step 'x' uses synthflow.steps.test.<locals>.Shout, a class defined inside "
            "a function, which can't be imported; define it at module level",
        ),
        ({"module": "synthflow"}, "step 'x' has no valid type_info"),
        ({"module": "..synthflow", "name": "X"}, "step 'x' names an invalid module '..synthflow'"),
    ],
)
def test_bad_type_info_gets_one_line(type_info: dict[str, str], message: str) -> None:
    data = config({"name": "x", "type_info": type_info})
    with pytest.raises(SerializationError) as info:
        Pipeline.from_dict(data, allowed_modules=[__name__])
    assert one_line(info).startswith(message)


def test_bad_fields_and_connections_get_one_line() -> None:
    keep = spec("synthflow.steps.columns", "KeepColumns", name="keep", colums=["n"])
    with pytest.raises(SerializationError) as info:
        Pipeline.from_dict(config(keep))
    assert one_line(info) == (
        "step 'keep': field 'colums' (KeepColumns): Extra inputs are not permitted "
        "(did you mean 'columns'?) (and 1 more)"
    )

    keep = spec("synthflow.steps.columns", "KeepColumns", name="keep", columns=["n"])
    with pytest.raises(SerializationError) as info:
        Pipeline.from_dict(config(keep, connections=[{"from": "load", "to": "kep"}]))
    assert one_line(info) == "connection load -> kep names unknown step 'kep': did you mean 'keep'?"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("pipeline: [unclosed", "the config is not valid YAML: line 2, column 1: did not find"),
        ("- a list", "the config is not a synthflow pipeline: expected a mapping"),
        ("name: x", "not a synthflow pipeline: expected a top-level 'pipeline' mapping"),
        ("pipeline: {steps: []}", "the pipeline has no steps"),
        (
            "synthflow: {version: 9.0, format: 7}\npipeline: {steps: []}",
            "the file was written by synthflow 9.0 (format 7); this synthflow reads format 1",
        ),
    ],
)
def test_malformed_files_get_one_line(text: str, message: str) -> None:
    with pytest.raises(SerializationError) as info:
        Pipeline.from_yaml(text)
    assert one_line(info).startswith(message)


def test_malformed_json_and_bad_file_names(tmp_path: Path) -> None:
    with pytest.raises(SerializationError, match=r"^the config is not valid JSON: "):
        Pipeline.from_json('{"pipeline": ')
    with pytest.raises(SerializationError, match=r"^no such file: "):
        Pipeline.from_file(tmp_path / "missing.yaml")
    with pytest.raises(SerializationError, match=r"use a \.yaml, \.yml or \.json file name"):
        every_builtin().save(tmp_path / "pipeline.txt")


def test_hand_written_files_may_omit_the_header_and_list_targets() -> None:
    text = """
pipeline:
  name: hand
  steps:
    - name: load
      type_info: {module: synthflow.steps.generators, name: LoadDataFromDicts}
      data: [{instruction: a}, {instruction: b}]
    - name: gen
      type_info: {module: synthflow.steps.tasks, name: TextGeneration}
      llm: {type_info: {module: synthflow.models.llms, name: OfflineLLM}}
    - name: keep
      type_info: {module: synthflow.steps, name: KeepColumns}
      columns: [instruction]
  connections:
    - {from: load, to: [gen, keep]}
"""
    pipeline = Pipeline.from_yaml(text)
    assert pipeline.edges == [("load", "gen"), ("load", "keep")]
    assert len(pipeline.run(progress=False)["gen"]["train"]) == 2


# -- from a URL ---------------------------------------------------------------------------------


def test_from_file_reads_a_url(http_root: tuple[str, Path]) -> None:
    url, root = http_root
    original = every_builtin()
    original.save(root / "pipeline.yaml")
    original.save(root / "pipeline.json")

    for name in ("pipeline.yaml", "pipeline.json"):
        loaded = Pipeline.from_file(f"{url}/{name}", allowed_modules=[__name__])
        assert loaded.signature == original.signature


def test_a_url_that_answers_404_gets_one_line(http_root: tuple[str, Path]) -> None:
    url, _ = http_root
    with pytest.raises(SerializationError) as info:
        Pipeline.from_file(f"{url}/missing.yaml")
    assert one_line(info).startswith(f"can't fetch {url}/missing.yaml: HTTP 404 ")


def test_a_hub_url_gets_the_users_token_and_no_other_host_does(
    http_root: tuple[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    url, root = http_root
    (root / "private").mkdir()
    every_builtin().save(root / "private" / "pipeline.yaml")
    monkeypatch.setattr("huggingface_hub.constants.HF_TOKEN_PATH", str(tmp_path / "no-login"))
    monkeypatch.setenv("HF_ENDPOINT", url)  # this server plays the Hub
    monkeypatch.setenv("HF_TOKEN", PRIVATE_TOKEN)

    loaded = Pipeline.from_file(f"{url}/private/pipeline.yaml", allowed_modules=[__name__])
    assert loaded.name == "all"

    monkeypatch.setenv("HF_ENDPOINT", "https://huggingface.co")  # now the server is elsewhere
    assert read_source(f"{url}/echo-authorization")[0] == "none"


def test_a_private_hub_url_without_a_token_says_how_to_give_one(
    http_root: tuple[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    url, root = http_root
    (root / "private").mkdir()
    every_builtin().save(root / "private" / "pipeline.yaml")
    monkeypatch.setattr("huggingface_hub.constants.HF_TOKEN_PATH", str(tmp_path / "no-login"))
    monkeypatch.setenv("HF_ENDPOINT", url)
    monkeypatch.delenv("HF_TOKEN", raising=False)

    with pytest.raises(SerializationError) as info:
        Pipeline.from_file(f"{url}/private/pipeline.yaml")
    assert one_line(info).endswith(
        "HTTP 401 Unauthorized (a private or gated repo: set HF_TOKEN or run `hf auth login`)"
    )


# -- display ------------------------------------------------------------------------------------


def test_notebook_summary_of_a_pipeline() -> None:
    html = every_builtin()._repr_html_()
    assert "Pipeline <b>all</b>: 7 steps" in html
    assert "<td><code>text</code></td><td>TextGeneration</td><td>OfflineLLM (model-a)</td>" in html
    assert "<td>combine, shout</td>" in html


def test_importing_synthflow_imports_no_heavy_or_cli_modules() -> None:
    code = (
        "import sys, synthflow, synthflow.pipeline, synthflow.serialization, synthflow.distiset\n"
        "heavy = ['yaml', 'datasets', 'rich', 'typer', 'huggingface_hub', 'pyarrow']\n"
        "print([m for m in heavy if m in sys.modules])"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert out.stdout.strip() == "[]"


def test_field_descriptions_reach_the_file() -> None:
    class Described(Step):
        knob: RuntimeParameter[int] = Field(default=3, description="How far to turn it.")

        def process(self, inputs: StepInput) -> Iterator[list[Row]]:
            yield inputs

    with Pipeline() as pipeline:
        LoadDataFromDicts(name="load", data=[{"n": 1}]) >> Described(name="d")
    step_spec = pipeline.dump()["pipeline"]["steps"][1]
    assert {"name": "knob", "description": "How far to turn it.", "optional": True, "value": 3} in (
        step_spec["runtime_parameters_info"]
    )
    assert step_spec["type_info"]["name"].endswith("<locals>.Described")


def answer_yes(messages: Any) -> str:
    return "yes"


def answer_no(messages: Any) -> str:
    return "no"


def test_signature_names_excluded_code_by_reference() -> None:
    def build(fn: Any) -> str:
        with Pipeline() as pipeline:
            load = LoadDataFromDicts(name="load", data=[{"instruction": "hi"}])
            load >> TextGeneration(name="gen", llm=FunctionLLM(fn=fn))
        return pipeline.signature

    assert build(answer_yes) == build(answer_yes)
    assert build(answer_yes) != build(answer_no)
