"""Pipelines from strangers can't steal: a pipeline file or URL may not send the user's keys to
a host the user didn't name, read files outside the working directory, or run a model repo's
code without a flag; `pipeline info` shows all of it; and no secret reaches anything a run
writes, whatever the server echoes back."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest

from synthflow.errors import UntrustedPipelineError
from synthflow.models.callpath.secrets import REDACTED, redact, refresh
from synthflow.models.llms import OpenAILLM
from synthflow.models.llms.local.transformers import TransformersLLM
from synthflow.pipeline import Pipeline
from synthflow.steps import LoadDataFromDicts, LoadDataFromFileSystem
from synthflow.steps.tasks import TextGeneration
from tests.servers import Reply, Request, fake_api
from tests.servers.chat import completion

ROOT = Path(__file__).resolve().parents[1]
CANARY = "sk-canary-7f3a9c1e5b2d4f60a8e7"


def synthflow(
    *args: str, cwd: Path, env: dict[str, str], timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "synthflow", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, "PYTHONPATH": str(ROOT), **env},
        cwd=cwd,
    )


def generation_pipeline(base_url: str, **llm: object) -> Pipeline:
    with Pipeline(name="shared") as pipeline:
        load = LoadDataFromDicts(name="load", data=[{"instruction": "hello"}])
        generate = TextGeneration(
            name="generate", llm=OpenAILLM(model="m", base_url=base_url, **llm)
        )
        load >> generate
    return pipeline


@pytest.fixture
def with_key(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("OPENAI_API_KEY", CANARY)
    yield
    refresh()


# -- a canary key through every error path ------------------------------------------------------


def _echo(request: Request) -> str:
    return request.headers.get("authorization", "")


FAULTS = {
    "401 echoing the key": lambda r: Reply(401, {"error": {"message": f"bad key {_echo(r)}"}}),
    "400 echoing the key": lambda r: Reply(400, {"error": f"invalid request from {_echo(r)}"}),
    "500 echoing the key, retried": lambda r: Reply(500, {"error": f"down; {_echo(r)}"}),
    "a timeout": lambda r: Reply(delay=1.5, body={}),
    "an answer that never fits the schema": lambda r: completion_with(r, f"no json {_echo(r)}"),
    "an answer that quotes the key": lambda r: completion_with(r, f"your key: {_echo(r)}"),
}


def completion_with(request: Request, text: str) -> Reply:
    reply = completion(request)
    reply.body["choices"][0]["message"]["content"] = text
    return reply


@pytest.mark.parametrize("fault", list(FAULTS))
def test_a_key_echoed_back_reaches_no_file_and_no_output(tmp_path: Path, fault: str) -> None:
    work, cache = tmp_path / "work", tmp_path / "cache"
    work.mkdir()
    with fake_api(FAULTS[fault]) as api:
        llm: dict[str, object] = {"timeout": 0.5, "max_retries": 1, "retry_backoff": 0.0}
        if fault == "an answer that never fits the schema":
            llm.update(structured_output={"type": "object"}, structured_retries=1)
        generation_pipeline(api.url, **llm).save(work / "shared.yaml")
        result = synthflow(
            *("pipeline", "run", "--config", "shared.yaml", "--output", "out"),
            *("--trust-endpoint", "127.0.0.1", "--max-failed-rows", "100%"),
            cwd=work,
            env={"OPENAI_API_KEY": CANARY, "SYNTHFLOW_CACHE_DIR": str(cache)},
        )
    assert api.requests, result.stderr
    assert api.requests[0].headers["authorization"] == f"Bearer {CANARY}"  # it was sent
    assert CANARY not in result.stdout + result.stderr
    written = [p for p in tmp_path.rglob("*") if p.is_file()]
    assert any(p.suffix == ".parquet" for p in written) or result.returncode == 1
    for path in written:
        assert CANARY.encode() not in path.read_bytes(), path
        if path.suffix == ".parquet":  # compressed: read the values too
            import pyarrow.parquet as pq

            assert CANARY not in str(pq.read_table(path).to_pylist()), path
    if fault in ("an answer that quotes the key", "400 echoing the key"):
        assert REDACTED in str(_rows(work / "out"))


def _rows(out: Path) -> list[dict[str, object]]:
    import pyarrow.parquet as pq

    return [row for p in out.rglob("*.parquet") for row in pq.read_table(p).to_pylist()]


def test_redact_knows_the_environments_keys_and_the_clients(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("SOME_SERVICE_TOKEN", "tok-0123456789")
    monkeypatch.setenv("EDITOR", "vim-is-not-a-secret")
    refresh()
    text = "a tok-0123456789 and vim-is-not-a-secret"
    assert redact(text) == f"a {REDACTED} and vim-is-not-a-secret"


# -- a hostile pipeline file --------------------------------------------------------------------


@pytest.fixture
def hostile(tmp_path: Path) -> Iterator[tuple[Path, Path, object]]:
    """A file built only from synthflow's classes that names an unknown server for an
    environment key, a local file outside the working directory, and trust_remote_code. The
    "secret" is a FIFO: anything that opened it would block, and the test would time out."""
    secret = tmp_path / "home" / "creds.jsonl"
    secret.parent.mkdir()
    os.mkfifo(secret)
    work = tmp_path / "work"
    work.mkdir()
    with fake_api(completion) as api:
        with Pipeline(name="hostile") as pipeline:
            load = LoadDataFromFileSystem(name="load", data_files=str(secret))
            steal = TextGeneration(name="steal", llm=OpenAILLM(model="m", base_url=api.url))
            local = TextGeneration(
                name="local", llm=TransformersLLM(model="org/model", trust_remote_code=True)
            )
            load >> [steal, local]
        pipeline.save(work / "hostile.yaml")
        yield work, secret, api


def test_a_hostile_file_is_refused_before_anything_is_sent_or_read(
    hostile: tuple[Path, Path, object],
) -> None:
    work, secret, api = hostile
    env = {"OPENAI_API_KEY": CANARY}
    run = ("pipeline", "run", "--config", "hostile.yaml")
    port = api.url.rsplit(":", 1)[1]  # type: ignore[attr-defined]
    endpoint = f"127.0.0.1:{port}"

    result = synthflow(*run, cwd=work, env=env, timeout=30)
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ")
    assert f"--allow-path {secret.parent}" in lines[0] and "(and 2 more" in lines[0]

    allowed = ("--allow-path", str(secret.parent))
    result = synthflow(*run, *allowed, cwd=work, env=env, timeout=30)
    assert result.returncode == 2
    assert f"$OPENAI_API_KEY to {endpoint}" in result.stderr
    assert f"--trust-endpoint {endpoint}" in result.stderr

    allowed += ("--trust-endpoint", endpoint)
    result = synthflow(*run, *allowed, cwd=work, env=env, timeout=30)
    assert result.returncode == 2
    assert "trust_remote_code" in result.stderr and "--trust-remote-code" in result.stderr
    assert "Traceback" not in result.stderr
    assert api.requests == []  # type: ignore[attr-defined]

    info = synthflow("pipeline", "info", "--config", "hostile.yaml", cwd=work, env=env)
    assert info.returncode == 0, info.stderr
    out = info.stdout
    assert f"steal.llm: openai {api.url}  (key from $OPENAI_API_KEY)" in out  # type: ignore[attr-defined]
    assert f"load: reads {secret}" in out
    assert "local.llm: trust_remote_code" in out
    refused = out.split("refused unless you allow it\n", 1)[1]
    for flag in ("--allow-path", "--trust-endpoint", "--trust-remote-code"):
        assert flag in refused
    assert CANARY not in out


def test_info_flags_a_foreign_module_on_a_nested_llm_without_importing_it(
    tmp_path: Path,
) -> None:
    data = generation_pipeline("http://127.0.0.1:1").dump()
    llm = data["pipeline"]["steps"][1]["llm"]
    llm["type_info"] = {"module": "not_installed_pkg.llms", "name": "StealingLLM"}
    (tmp_path / "p.json").write_bytes(orjson.dumps(data))
    result = synthflow("pipeline", "info", "--config", "p.json", cwd=tmp_path, env={})
    assert result.returncode == 0, result.stderr
    assert "llm: StealingLLM (m)  (not_installed_pkg.llms)  [not synthflow]" in result.stdout
    assert "--allow-module not_installed_pkg.llms" in result.stdout
    assert "generate: module not_installed_pkg.llms" in result.stdout
    assert "generate.llm: ? http://127.0.0.1:1  (key: unknown" in result.stdout


# -- what stays allowed -------------------------------------------------------------------------


def _loaded(pipeline: Pipeline) -> Pipeline:
    """``pipeline`` as someone else's file would give it."""
    return Pipeline.from_yaml(_yaml(pipeline))


def _yaml(pipeline: Pipeline) -> str:
    from synthflow.serialization import to_text

    return to_text(pipeline.dump(), "yaml")


def _generations(pipeline: Pipeline, **kwargs: object) -> list[object]:
    distiset = pipeline.run(progress=False, use_cache=False, **kwargs)  # type: ignore[arg-type]
    return [row["generation"] for row in distiset["default"]["train"]]


def test_a_loaded_pipeline_without_a_key_from_the_environment_runs_anywhere() -> None:
    with fake_api(completion) as api:
        assert _generations(_loaded(generation_pipeline(api.url))) == ["answer 0.0 to hello"]
        # A key written in the file itself is the file's own to send.
        data = generation_pipeline(api.url).dump()
        data["pipeline"]["steps"][1]["llm"]["api_key"] = "sk-the-files-own-key"
        assert _generations(Pipeline.from_dict(data)) == ["answer 0.0 to hello"]
    assert api.requests[-1].headers["authorization"] == "Bearer sk-the-files-own-key"


@pytest.mark.usefixtures("with_key")
def test_a_key_goes_where_the_user_says(monkeypatch: pytest.MonkeyPatch) -> None:
    with fake_api(completion) as api:
        # Built in Python: the user's own pipeline, not restricted.
        assert _generations(generation_pipeline(api.url)) == ["answer 0.0 to hello"]

        loaded = _loaded(generation_pipeline(api.url))
        with pytest.raises(UntrustedPipelineError, match=re.escape("--trust-endpoint 127.0.0.1:")):
            loaded.run(progress=False)
        sent = len(api.requests)

        # Named by the user after loading (the CLI's --param does the same).
        loaded = _loaded(generation_pipeline("https://elsewhere.example/v1"))
        loaded.steps["generate"].llm.base_url = api.url  # type: ignore[attr-defined]
        assert _generations(loaded) == ["answer 0.0 to hello"]

        # Named by the provider's base-URL variable.
        monkeypatch.setenv("OPENAI_BASE_URL", api.url)
        assert _generations(_loaded(generation_pipeline(api.url))) == ["answer 0.0 to hello"]
        monkeypatch.delenv("OPENAI_BASE_URL")

        # Trusted explicitly.
        trusted = _loaded(generation_pipeline(api.url)).trust(endpoints=["127.0.0.1"])
        assert _generations(trusted) == ["answer 0.0 to hello"]
    assert len(api.requests) == sent + 3


@pytest.mark.usefixtures("with_key")
def test_the_providers_own_host_needs_no_permission() -> None:
    loaded = _loaded(generation_pipeline("https://api.openai.com/v1"))
    loaded.check_trust()  # nothing to refuse (and nothing sent: it only checks)


def test_paths_inside_the_working_directory_and_allowed_ones_are_read(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = tmp_path / "data" / "rows.jsonl"
    data.parent.mkdir()
    data.write_text('{"instruction": "hi"}\n')
    with Pipeline(name="files") as pipeline:
        LoadDataFromFileSystem(name="load", data_files=str(data))
    monkeypatch.chdir(tmp_path / "data")
    assert Pipeline.from_yaml(_yaml(pipeline)).check_trust() is None  # inside the cwd
    monkeypatch.chdir(ROOT)
    loaded = Pipeline.from_yaml(_yaml(pipeline))
    with pytest.raises(UntrustedPipelineError, match=re.escape(f"--allow-path {data.parent}")):
        loaded.check_trust()
    loaded.trust(paths=[tmp_path])
    loaded.check_trust()
    escape = tmp_path / "data" / "link"
    escape.symlink_to("/etc")
    with Pipeline(name="files") as sneaky:
        LoadDataFromFileSystem(name="load", data_files=f"{escape}/passwd")
    monkeypatch.chdir(tmp_path / "data")
    with pytest.raises(UntrustedPipelineError, match="--allow-path /etc"):
        Pipeline.from_yaml(_yaml(sneaky)).check_trust()


def test_param_names_the_endpoint_on_the_command_line(tmp_path: Path) -> None:
    with fake_api(completion) as api:
        generation_pipeline("https://elsewhere.example/v1").save(tmp_path / "shared.yaml")
        result = synthflow(
            *("pipeline", "run", "--config", "shared.yaml"),
            *("--param", f"generate.llm.base_url={api.url}"),
            cwd=tmp_path,
            env={"OPENAI_API_KEY": CANARY},
        )
    assert result.returncode == 0, result.stderr
    assert [r.headers["authorization"] for r in api.requests] == [f"Bearer {CANARY}"]


def test_a_hub_loader_naming_a_local_directory_is_a_local_read(tmp_path: Path) -> None:
    from synthflow.steps import LoadDataFromHub

    secret_dir = tmp_path / "private"
    secret_dir.mkdir()
    with Pipeline(name="hub") as pipeline:
        LoadDataFromHub(name="load", repo_id=str(secret_dir))
    loaded = _loaded(pipeline)
    with pytest.raises(UntrustedPipelineError, match=re.escape(f"--allow-path {secret_dir}")):
        loaded.check_trust()
