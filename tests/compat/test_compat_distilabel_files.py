"""Pipeline files saved by distilabel 1.5.3 itself (tests/compat/fixtures/distilabel_*.yaml,
written by make_distilabel_fixtures.py with descriptions removed) load, print and run here.

Each file is tried as distilabel saved it and with the text ``distilabel`` replaced by
``synthflow`` throughout, as a user may do. The columns a run must produce are those distilabel's
documentation gives for each step class (its "Output columns"), not synthflow's output.
"""

from __future__ import annotations

import importlib
import inspect
from pathlib import Path
from typing import Any

import orjson
import pytest
from typer.testing import CliRunner

from synthflow.cli import app, apply_parameters
from synthflow.distilabel_files import synthflow_body
from synthflow.errors import SerializationError
from synthflow.pipeline_file import parse_text
from synthflow.pipeline_info import file_info
from synthflow.serialization import load_file
from synthflow.steps.base import METADATA_COLUMN
from tests.compat.test_compat_public_names import DISTILABEL_PUBLIC_NAMES
from tests.servers import Reply, Request, fake_api
from tests.servers.chat import completion
from tests.servers.hub import hub_endpoint
from tests.test_lazy_imports import RUN_CONSOLE, imported_by

# huggingface_hub's LFS upload (PushToHub, on the loopback Hub) passes bytes as httpx's ``data=``.
pytestmark = pytest.mark.filterwarnings("ignore:Use 'content=<...>':DeprecationWarning")

FIXTURES = Path(__file__).parent / "fixtures"
RUNNABLE = ["generate_and_judge", "structured", "routed"]
CLIENTS = [
    "anthropic",
    "cohere",
    "groq",
    "mistral",
    "ollama",
    "litellm",
    "client_vllm",
    "transformers",
    "moa",
]
STEPS = {
    "clients": ["load", *(f"gen_{name}" for name in CLIENTS)],
    "generate_and_judge": ["load", "gen_a", "gen_b", "group", "rate", "judge", "keep"],
    "hub_to_hub": ["load", "gen", "push"],
    "magpie": ["magpie"],
    "routed": ["load", "gen_0", "gen_1", "gen_2", "group", "other", "combine", "push"],
    "structured": ["load", "gen"],
}
# distilabel's documented output columns: TextGeneration adds generation and model_name (and
# distilabel_metadata with the raw output/input); GroupColumns the grouped lists;
# UltraFeedback ratings, rationales and model_name; KeepColumns keeps exactly its list.
EXPECTED_COLUMNS = {
    "generate_and_judge": {"instruction", "generations", "ratings", "rationales", "verdict"},
    "structured": {"instruction", "generation", "model_name", "distilabel_metadata"},
    "routed": {
        "instruction",
        "generations",
        "model_names",
        "other_generation",
        "model_name",
        "distilabel_metadata",
    },
}
# The one column synthflow names its own way: distilabel_metadata (same keys and values).
SYNTHFLOW_NAMES = {"distilabel_metadata": METADATA_COLUMN}
PROMPTS = [{"instruction": "Name a prime number."}, {"instruction": "Say hello in French."}]


def variant(name: str, renamed: bool, tmp_path: Path) -> Path:
    path = FIXTURES / f"distilabel_{name}.yaml"
    if not renamed:
        return path
    copy = tmp_path / path.name
    copy.write_text(path.read_text().replace("distilabel", "synthflow"))
    return copy


@pytest.mark.parametrize("renamed", [False, True], ids=["as-saved", "renamed"])
@pytest.mark.parametrize("name", sorted(STEPS))
def test_each_file_loads_and_prints(name: str, renamed: bool, tmp_path: Path) -> None:
    path = variant(name, renamed, tmp_path)
    pipeline = load_file(path)
    assert list(pipeline.steps) == STEPS[name]
    assert all(type(s).__module__.startswith("synthflow.") for s in pipeline.steps.values())
    text = file_info(str(path))
    assert "[not synthflow]" not in text
    assert all(f"  {step}" in text for step in STEPS[name])


def test_rows_distilabel_never_saves_are_asked_for(tmp_path: Path) -> None:
    path = FIXTURES / "distilabel_evol_instruct.yaml"
    with pytest.raises(SerializationError, match=r"step 'load'.*add it to the step in the file"):
        load_file(path)
    assert "  evol  EvolInstruct" in file_info(str(path))  # info shows what the file holds


def test_a_distilabel_setting_synthflow_cant_honour_is_one_line(tmp_path: Path) -> None:
    text = (FIXTURES / "distilabel_magpie.yaml").read_text()
    assert "cuda_devices: auto" in text
    path = tmp_path / "p.yaml"
    path.write_text(text.replace("cuda_devices: auto", "cuda_devices: [0, 1]"))
    with pytest.raises(SerializationError) as caught:
        load_file(path)
    message = str(caught.value)
    assert "\n" not in message
    assert "step 'magpie': field 'llm.cuda_devices'" in message
    assert "CUDA_VISIBLE_DEVICES" in message


def test_a_class_synthflow_lacks_is_named(tmp_path: Path) -> None:
    text = (FIXTURES / "distilabel_magpie.yaml").read_text()
    path = tmp_path / "p.yaml"
    path.write_text(text.replace("name: MagpieGenerator", "name: NoSuchGenerator"))
    with pytest.raises(SerializationError, match=r"distilabel's .*NoSuchGenerator.* doesn't have"):
        load_file(path)
    text = file_info(str(path))  # info says so too, rather than offer --allow-module
    assert "distilabel classes synthflow doesn't have" in text
    assert "--allow-module" not in text


def answers(request: Request) -> Reply:
    """The chat server's answers; a JSON object of the fixture's schema where the request asks
    for JSON (the structured output fixture)."""
    reply = completion(request)
    if request.json.get("response_format"):
        for choice in reply.body["choices"]:
            choice["message"]["content"] = '{"name": "Ada", "age": 36}'
    return reply


def params_for(name: str, url: str, prompts: Path) -> list[str]:
    steps = STEPS[name]
    llm_steps = [s for s in steps if s.startswith(("gen", "rate", "judge", "other"))]
    return [f"load.data_files={prompts}", *(f"{s}.llm.base_url={url}/v1" for s in llm_steps)]


@pytest.fixture
def prompts(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("OPENAI_API_KEY", "test-key")
    monkeypatch.setenv("HF_TOKEN", "test-key")
    path = tmp_path / "prompts.jsonl"
    path.write_bytes(b"".join(orjson.dumps(row) + b"\n" for row in PROMPTS))
    return path


@pytest.mark.parametrize("renamed", [False, True], ids=["as-saved", "renamed"])
@pytest.mark.parametrize("name", RUNNABLE)
def test_each_file_runs_with_distilabels_columns(
    name: str,
    renamed: bool,
    prompts: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    pipeline = load_file(variant(name, renamed, tmp_path))
    with fake_api(answers) as api, hub_endpoint(monkeypatch) as hub:
        apply_parameters(pipeline, None, params_for(name, api.url, prompts))
        distiset = pipeline.run(use_cache=False)
    rows = distiset["default"]["train"]
    sent = [r.json for r in api.requests if r.path.endswith("/chat/completions")]
    if name == "generate_and_judge":  # the file's runtime parameters reach the server
        assert {b.get("temperature") for b in sent if b["model"] == "gpt-4o-mini"} == {0.7}
        assert {b.get("max_tokens") for b in sent if b["model"] == "tgi"} == {64}
    if "push" in pipeline.steps:  # the global step pushed what the pipeline outputs
        assert any(f.startswith("data/train-") for f in hub.files["someone/routed"])
    expected = {SYNTHFLOW_NAMES.get(c, c) for c in EXPECTED_COLUMNS[name]}
    assert set(rows.column_names) == expected
    assert sorted(rows["instruction"]) == sorted(r["instruction"] for r in PROMPTS)


def test_the_cli_runs_a_distilabel_file(prompts: Path, tmp_path: Path) -> None:
    path = FIXTURES / "distilabel_structured.yaml"
    with fake_api(answers) as api:
        args: list[Any] = ["pipeline", "run", "--config", str(path)]
        for param in params_for("structured", api.url, prompts):
            args += ["--param", param]
        args += ["--param", "gen.llm.generation_kwargs.temperature=0.25"]
        result = CliRunner().invoke(app, [*args, "--output", str(tmp_path / "out")])
    assert result.exit_code == 0, result.stderr
    sent = [r.json for r in api.requests]  # the file's OpenAI endpoint was replaced by --param
    assert len(sent) == len(PROMPTS)
    assert all(body["temperature"] == 0.25 and body["n"] == 2 for body in sent)
    assert (tmp_path / "out").is_dir()


def test_info_on_a_distilabel_file_imports_no_class_nor_pydantic() -> None:
    # Its classes map to synthflow's, whose facts info reads from exposure_classes.json.
    path = FIXTURES / "distilabel_generate_and_judge.yaml"
    modules = imported_by(RUN_CONSOLE, "pipeline", "info", "--config", str(path))
    assert "synthflow.distilabel_files" in modules
    assert [m for m in modules if m.startswith(("synthflow.steps", "synthflow.models"))] == []
    assert [m for m in modules if m.split(".")[0] in ("pydantic", "distilabel")] == []


MODEL_PACKAGES = ("steps", "steps.tasks", "llms", "models", "pipeline")


@pytest.mark.parametrize(
    "package", [p for p in DISTILABEL_PUBLIC_NAMES if p.split(".")[0] in MODEL_PACKAGES]
)
def test_every_public_class_of_distilabel_resolves_to_synthflows(package: str) -> None:
    # A file names a class by its defining module (distilabel.steps.columns.keep), which
    # synthflow doesn't mirror: any module under the package resolves the package's names.
    ours = importlib.import_module(
        "synthflow." + ("models" if package.startswith("llms") else package)
    )
    for name in DISTILABEL_PUBLIC_NAMES[package]:
        public = getattr(ours, name)
        if not isinstance(public, type) and not inspect.isfunction(public):
            continue  # a type alias: never a file's type_info
        if not public.__module__.startswith("synthflow."):
            continue  # another library's type (HiddenState is numpy's array): not a step's part
        info = {"module": f"distilabel.{package}.some_module", "name": name}
        body = {"steps": [{"step": {"type_info": info}, "name": "s"}]}
        mapped = synthflow_body(body, strict=False)["steps"][0]["type_info"]
        found = importlib.import_module(mapped["module"])
        for part in mapped["name"].split("."):
            found = getattr(found, part)
        assert found is public, (package, name)


def test_info_shows_the_values_of_a_list_of_models() -> None:
    # distilabel writes MixtureOfAgentsLLM's proposers as {'0': ..., '1': ...}: a list here.
    text = file_info(str(FIXTURES / "distilabel_clients.yaml"))
    assert "gen_moa.llm.proposers_llms.1.max_retries = 6" in text


def test_a_yaml_tuple_reads_as_a_list_and_python_objects_stay_refused() -> None:
    # distilabel dumps with PyYAML's unsafe dumper: a tuple (LoadDataFromDisk's description of
    # ``config`` is one) comes tagged !!python/tuple.
    assert parse_text("a: !!python/tuple [x, y]\n", "yaml") == {"a": ["x", "y"]}
    with pytest.raises(SerializationError, match="never builds"):
        parse_text("a: !!python/name:os.system\n", "yaml")


def test_a_step_that_turns_its_cache_off_is_told_how_to_here(tmp_path: Path) -> None:
    text = (FIXTURES / "distilabel_structured.yaml").read_text()
    path = tmp_path / "p.yaml"
    path.write_text(text.replace("use_cache: true", "use_cache: false", 1))
    with pytest.raises(
        SerializationError, match=r"step 'load': field 'use_cache' = False .*--ignore-cache"
    ):
        load_file(path)
