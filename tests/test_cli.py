"""The ``synthflow`` command line, end to end in subprocesses (as users run it) and in-process
where a fake must be injected (the Hub)."""

from __future__ import annotations

import os
import shlex
import signal
import subprocess
import sys
import tempfile
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from typer.testing import CliRunner

from synthflow.cli import app, apply_parameters, draw_dag, parse_value
from synthflow.distiset import Distiset
from synthflow.errors import RuntimeParameterError
from synthflow.models.llms import OfflineLLM
from synthflow.pipeline import Pipeline
from synthflow.steps import KeepColumns, LoadDataFromDicts, RuntimeParameter, StepInput, step
from synthflow.steps.base import Row
from synthflow.steps.tasks import TextGeneration

ROOT = Path(__file__).resolve().parents[1]


@step(inputs=["generation"], outputs=["shout"])
def Shout(inputs: StepInput, suffix: RuntimeParameter[str] = "!") -> Iterator[list[Row]]:
    for row in inputs:
        row["shout"] = (row["generation"] or "").upper() + suffix
    yield inputs


def synthflow(
    *args: str, cwd: Path | None = None, timeout: float = 60, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT), **(env or {})}
    return subprocess.run(
        [sys.executable, "-m", "synthflow", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
        cwd=cwd or ROOT,
    )


def assert_one_line_error(result: Any, code: int, contains: str) -> None:
    assert result.returncode == code if hasattr(result, "returncode") else result.exit_code == code
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: ")
    assert contains in lines[0]
    assert "Traceback" not in result.stderr


def offline_pipeline(**task: Any) -> Pipeline:
    with Pipeline(name="cli") as pipeline:
        load = LoadDataFromDicts(name="load", data=[{"instruction": f"q{i}"} for i in range(4)])
        llm = OfflineLLM(generation_kwargs={"max_new_tokens": 16})
        generate = TextGeneration(name="generate", llm=llm, **task)
        keep = KeepColumns(name="keep", columns=["instruction", "generation", "model_name"])
        load >> generate >> keep
    return pipeline


@pytest.fixture
def config(tmp_path: Path) -> Path:
    return offline_pipeline().save(tmp_path / "pipeline.yaml")


def test_run_with_params_file_params_and_output(config: Path, tmp_path: Path) -> None:
    params = tmp_path / "params.yaml"
    params.write_text("generate:\n  num_generations: 2\nload.batch_size: 3\n")
    out = tmp_path / "out"

    result = synthflow(
        "pipeline", "run", "--config", str(config), "--params-file", str(params),
        "--param", "generate.llm.generation_kwargs.temperature=0.5",
        "--output", str(out),
    )  # fmt: skip

    assert result.returncode == 0, result.stderr
    assert f"saved to {out}" in result.stdout
    distiset = Distiset.load_from_disk(out)
    assert len(distiset["default"]["train"]) == 8  # 4 rows x 2 generations
    saved = Pipeline.from_file(out / "pipeline.yaml")
    generate = saved.steps["generate"]
    assert generate.num_generations == 2  # type: ignore[attr-defined]
    assert generate.llm.generation_kwargs == {"max_new_tokens": 16, "temperature": 0.5}  # type: ignore[attr-defined]
    assert saved.steps["load"].batch_size == 3  # type: ignore[attr-defined]
    assert saved.signature == offline_pipeline().signature
    command = orjson.loads((out / "run.json").read_bytes())["run"]["command"]
    assert command == (
        f"synthflow pipeline run --config {config} --params-file {params} "
        "--param generate.llm.generation_kwargs.temperature=0.5"
    )


def test_dry_run_sends_one_row_through_every_step_and_leaves_real_output_alone(
    config: Path, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    cache, scratch_root = tmp_path / "cache", tmp_path / "tmp"
    scratch_root.mkdir()
    env = {"SYNTHFLOW_CACHE_DIR": str(cache), "TMPDIR": str(scratch_root)}
    real = synthflow("pipeline", "run", "--config", str(config), "-o", str(out), env=env)
    assert real.returncode == 0, real.stderr
    before = {p: p.read_bytes() for p in sorted(out.rglob("*")) if p.is_file()}
    cached = sorted(cache.rglob("*"))

    result = synthflow(
        "pipeline", "run", "--config", str(config), "--dry-run", "-o", str(out), env=env
    )

    assert result.returncode == 0, result.stderr
    notice = result.stderr.splitlines()[0]
    assert notice.startswith(
        "dry run: each source yields its first row only; it writes only under "
    )
    assert notice.endswith(f"; --output {out} is left as it is")
    scratch = Path(notice.split(" under ")[1].split(";")[0])
    assert scratch.parent == scratch_root
    assert 'default: {"instruction":"q0","generation":"[synthflow-offline #' in result.stdout
    assert f"saved to {scratch / 'result'}" in result.stdout
    rows = list(Distiset.load_from_disk(scratch / "result")["default"]["train"])
    assert [r["instruction"] for r in rows] == ["q0"]
    # The real result and the real run directory are as they were.
    assert {p: p.read_bytes() for p in sorted(out.rglob("*")) if p.is_file()} == before
    assert sorted(cache.rglob("*")) == cached


def test_pipeline_dry_run_writes_nothing_under_the_cache_dir(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "tmp"))  # documented: the default dir
    (tmp_path / "tmp").mkdir()
    pipeline = offline_pipeline()
    pipeline.cache_dir = tmp_path / "cache"

    distiset = pipeline.dry_run()

    assert [r["instruction"] for r in distiset["default"]["train"]] == ["q0"]
    assert not pipeline.cache_dir.exists()
    assert pipeline.cache_dir == tmp_path / "cache"  # the pipeline is left as it was
    assert list((tmp_path / "tmp").glob("synthflow-dry-run-*"))


def test_saved_results_get_the_users_umask(tmp_path: Path) -> None:
    script = tmp_path / "make.py"
    script.write_text(
        "from tests.test_cli import offline_pipeline\n"
        f"offline_pipeline().save({str(tmp_path / 'pipeline.yaml')!r})\n"
    )
    for umask, dirs, files in ((0o022, 0o755, 0o644), (0o027, 0o750, 0o640)):
        out = tmp_path / f"out-{umask:o}"
        made = subprocess.run(
            [sys.executable, str(script)],
            env={**os.environ, "PYTHONPATH": str(ROOT)},
            cwd=ROOT,
            umask=umask,
            check=True,
        )
        assert made.returncode == 0
        config = tmp_path / "pipeline.yaml"
        assert config.stat().st_mode & 0o777 == files
        result = subprocess.run(
            [sys.executable, "-m", "synthflow", "pipeline", "run", "-c", str(config), "-o",
             str(out), "--progress", "off"],
            env={**os.environ, "PYTHONPATH": str(ROOT)},
            capture_output=True,
            text=True,
            umask=umask,
        )  # fmt: skip
        assert result.returncode == 0, result.stderr
        assert out.stat().st_mode & 0o777 == dirs
        for path in out.rglob("*"):
            assert path.stat().st_mode & 0o777 == (dirs if path.is_dir() else files), path


def test_info_shows_steps_dag_and_parameters(config: Path) -> None:
    result = synthflow("pipeline", "info", "--config", str(config))

    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert f"signature  {offline_pipeline().signature}\n" in out
    assert "  generate  TextGeneration  (synthflow.steps.tasks.text_generation)\n" in out
    assert "llm: OfflineLLM (synthflow-offline)" in out
    assert "dag\n  load\n  `-> generate\n      `-> keep\n" in out
    assert '  generate.llm.generation_kwargs = {"max_new_tokens":16}\n' in out
    assert "      Rows in flight at once (LLM calls under way).\n" in out


def test_script_runs_and_its_saved_pipeline_reruns_from_config(tmp_path: Path) -> None:
    script = tmp_path / "make_shouts.py"
    script.write_text(
        textwrap.dedent(
            """
            from synthflow.models.llms import OfflineLLM
            from synthflow.pipeline import Pipeline
            from synthflow.steps import LoadDataFromDicts, step
            from synthflow.steps.tasks import TextGeneration

            @step(inputs=["generation"], outputs=["shout"])
            def Shout(inputs):
                for row in inputs:
                    row["shout"] = row["generation"].upper()
                yield inputs

            with Pipeline(name="shouts") as shouts:
                load = LoadDataFromDicts(name="load", data=[{"instruction": "hi"}])
                load >> TextGeneration(name="gen", llm=OfflineLLM()) >> Shout(name="shout")

            if __name__ == "__main__":
                raise SystemExit("the CLI must not run the main block")
            """
        )
    )
    first = synthflow("pipeline", "run", "--script", f"{script}:shouts", "-o", "one", cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    again = synthflow(
        "pipeline", "run", "--config", "one/pipeline.yaml", "--allow-module", "make_shouts",
        "-o", "two", cwd=tmp_path,
    )  # fmt: skip
    assert again.returncode == 0, again.stderr

    one = list(Distiset.load_from_disk(tmp_path / "one")["default"]["train"])
    two = list(Distiset.load_from_disk(tmp_path / "two")["default"]["train"])
    assert one == two
    assert one[0]["shout"].startswith("[SYNTHFLOW-OFFLINE")
    refused = synthflow("pipeline", "run", "--config", "one/pipeline.yaml", cwd=tmp_path)
    assert_one_line_error(refused, 2, "--allow-module make_shouts")


QUICKSTART = """
from synthflow.models.llms import OfflineLLM
from synthflow.pipeline import Pipeline
from synthflow.steps import LoadDataFromDicts, step
from synthflow.steps.tasks import TextGeneration

@step(inputs=["generation"], outputs=["shout"])
def Shout(inputs):
    for row in inputs:
        row["shout"] = row["generation"].upper()
    yield inputs

with Pipeline(name="quickstart") as pipeline:
    load = LoadDataFromDicts(name="load", data=[{"instruction": "hi"}])
    load >> TextGeneration(name="gen", llm=OfflineLLM()) >> Shout(name="shout")

if __name__ == "__main__":
    pipeline.save("pipeline.yaml")
"""


def test_the_cards_reproduce_command_works_for_a_script_run(tmp_path: Path) -> None:
    (tmp_path / "quickstart.py").write_text(QUICKSTART)
    first = synthflow("pipeline", "run", "--script", "quickstart.py", "-o", "out", cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    out = tmp_path / "out"
    card = (out / "README.md").read_text()
    command = card.split("## Reproduce\n\n```bash\n")[1].split("\n```")[0]
    assert command == "synthflow pipeline run --config pipeline.yaml --allow-module quickstart"
    assert "`quickstart.py`, the script that defines the pipeline's own classes, is saved" in card
    assert (out / "quickstart.py").read_text() == QUICKSTART

    again = synthflow(*shlex.split(command)[1:], "-o", str(tmp_path / "again"), cwd=out)

    assert again.returncode == 0, again.stderr
    rows = list(Distiset.load_from_disk(tmp_path / "again")["default"]["train"])
    assert rows == list(Distiset.load_from_disk(out)["default"]["train"])
    # Elsewhere, the one-line error says where the module must be.
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    lost = synthflow(
        "pipeline", "run", "-c", str(out / "pipeline.yaml"), "--allow-module", "quickstart",
        cwd=elsewhere,
    )  # fmt: skip
    assert_one_line_error(lost, 2, "No module named 'quickstart' (it is neither installed nor in")
    assert (
        "run where quickstart.py or the package is, or add its folder to PYTHONPATH" in lost.stderr
    )


def test_saving_from_a_script_warns_that_its_classes_load_nowhere_else(tmp_path: Path) -> None:
    (tmp_path / "quickstart.py").write_text(QUICKSTART)
    result = subprocess.run(
        [sys.executable, "quickstart.py"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert (
        "UserWarning: pipeline.yaml names classes defined in the script being run (Shout, "
        "module __main__), which won't load in another program" in result.stderr
    )
    assert "run the script with 'synthflow pipeline run --script quickstart.py'" in result.stderr
    assert "pipeline.save(" in result.stderr  # the warning points at the user's line


def test_against_a_loopback_openai_compatible_server(tmp_path: Path) -> None:
    try:
        from synthflow.models.llms.openai import OpenAILLM
    except ImportError:
        pytest.skip("OpenAILLM is not available yet")
    sys.path.insert(0, str(ROOT))
    try:
        from benchmarks.mock_llm_server import running_server
    finally:
        sys.path.remove(str(ROOT))

    with running_server(latency=0.01) as base_url:
        with Pipeline(name="mock") as pipeline:
            data = [{"instruction": f"tell me about topic {i} in detail"} for i in range(5)]
            load = LoadDataFromDicts(name="load", data=data)
            llm = OpenAILLM(model="mock-model", base_url=base_url)
            load >> TextGeneration(name="generate", llm=llm)
        config = pipeline.save(tmp_path / "pipeline.yaml")
        result = synthflow(
            "pipeline", "run", "--config", str(config), "-o", str(tmp_path / "out"),
            "--param", "generate.llm.generation_kwargs.max_new_tokens=3",
        )  # fmt: skip

    assert result.returncode == 0, result.stderr
    rows = list(Distiset.load_from_disk(tmp_path / "out")["default"]["train"])
    assert len(rows) == 5
    # The mock answers with the prompt's words, cut to max_tokens words.
    assert [r["generation"].split()[1:] for r in rows] == [["tell", "me"]] * 5
    assert {r["model_name"] for r in rows} == {"mock-model"}


def test_a_budget_from_the_cli_ends_the_run_early(tmp_path: Path) -> None:
    sys.path.insert(0, str(ROOT))
    try:
        from benchmarks.mock_llm_server import running_server
    finally:
        sys.path.remove(str(ROOT))
    from synthflow.models.llms.openai import OpenAILLM

    with running_server(latency=0.01) as base_url:
        with Pipeline(name="budgeted") as pipeline:
            data = [{"instruction": f"topic {i}"} for i in range(200)]
            load = LoadDataFromDicts(name="load", data=data, batch_size=5)
            llm = OpenAILLM(model="mock-model", base_url=base_url)
            load >> TextGeneration(name="generate", llm=llm, concurrency=2)
        config = pipeline.save(tmp_path / "pipeline.yaml")
        out = tmp_path / "out"
        result = synthflow(
            "pipeline", "run", "--config", str(config), "--max-tokens", "200", "-o", str(out)
        )
        unpriced = synthflow("pipeline", "run", "--config", str(config), "--max-cost", "1")

    assert result.returncode == 0, result.stderr
    assert "run stopped early: budget reached" in result.stderr
    assert 0 < len(Distiset.load_from_disk(out)["default"]["train"]) < 200
    assert "--max-tokens 200" in (out / "run.json").read_text()
    # A cost budget that can't price the model refuses to start rather than let calls through.
    assert_one_line_error(unpriced, 2, "no price is known for model 'mock-model' (step 'generate')")


# -- bad input ----------------------------------------------------------------------------------


def edit_config(config: Path, old: str, new: str) -> Path:
    text = config.read_text()
    assert old in text
    config.write_text(text.replace(old, new, 1))
    return config


@pytest.mark.parametrize(
    ("case", "contains"),
    [
        ("malformed-yaml", "is not valid YAML: line 1, column 11: mapping values are not"),
        ("unknown-step-type", "has unknown type 'synthflow.steps.columns.KeepColums'"),
        ("outside-allowed-modules", "allow it with allowed_modules=['os']"),
        ("unknown-param", "unknown runtime parameter 'generate.concurency': did you mean"),
        ("wrong-value-type", "runtime parameter 'load.batch_size' expects int, got 'lots'"),
        ("url-404", "HTTP 404"),
        ("unwritable-output", "is a file, not a directory"),
    ],
)
def test_bad_input_gets_one_line_and_exit_code_2(
    case: str, contains: str, config: Path, tmp_path: Path, http_root: tuple[str, Path]
) -> None:
    args = ["pipeline", "run", "--config", str(config)]
    if case == "malformed-yaml":
        config.write_text("pipeline: : [\n")
    elif case == "unknown-step-type":
        edit_config(config, "name: KeepColumns", "name: KeepColums")
    elif case == "outside-allowed-modules":
        edit_config(config, "module: synthflow.steps.columns", "module: os")
    elif case == "unknown-param":
        args += ["--param", "generate.concurency=3"]
    elif case == "wrong-value-type":
        args += ["--param", "load.batch_size=lots"]
    elif case == "url-404":
        args[-1] = f"{http_root[0]}/nowhere/pipeline.yaml"
    elif case == "unwritable-output":
        (tmp_path / "file").write_text("")
        args += ["--output", str(tmp_path / "file" / "out")]

    result = synthflow(*args)

    assert_one_line_error(result, 2, contains)
    assert not list(tmp_path.glob("**/*.parquet"))


def test_a_failing_run_exits_1_and_writes_no_output(tmp_path: Path) -> None:
    with Pipeline(name="fails") as pipeline:
        load = LoadDataFromDicts(name="load", data=[{"instruction": 5}])
        load >> TextGeneration(name="generate", llm=OfflineLLM(), on_error="fail")
    config = pipeline.save(tmp_path / "pipeline.json")

    result = synthflow("pipeline", "run", "--config", str(config), "-o", str(tmp_path / "out"))

    assert_one_line_error(result, 1, "step 'generate' failed on row 0: TypeError: 'instruction'")
    assert not (tmp_path / "out").exists()


def test_ctrl_c_exits_130(tmp_path: Path) -> None:
    script = tmp_path / "slow.py"
    script.write_text(
        textwrap.dedent(
            """
            import sys
            from synthflow.models.llms import OfflineLLM
            from synthflow.pipeline import Pipeline
            from synthflow.steps import LoadDataFromDicts
            from synthflow.steps.tasks import TextGeneration

            class Announce(TextGeneration):
                def load(self):
                    super().load()
                    print("READY", file=sys.stderr, flush=True)

            with Pipeline(name="slow") as pipeline:
                load = LoadDataFromDicts(name="load", data=[{"instruction": "x"}])
                load >> Announce(name="gen", llm=OfflineLLM(latency=60))
            """
        )
    )
    process = subprocess.Popen(
        [sys.executable, "-m", "synthflow", "pipeline", "run", "--script", str(script)],
        stderr=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        cwd=tmp_path,
    )
    try:
        assert process.stderr is not None
        assert process.stderr.readline().strip() == "READY"
        process.send_signal(signal.SIGINT)
        _, err = process.communicate(timeout=30)
    finally:
        process.kill()
        process.wait()
    assert process.returncode == 130
    assert err.strip().splitlines()[-1] == "error: interrupted"
    assert "Traceback" not in err


# -- in process ---------------------------------------------------------------------------------


runner = CliRunner()


@pytest.mark.parametrize(
    ("args", "contains"),
    [
        (["pipeline", "run"], "give one of --config PATH|URL or --script FILE.py[:NAME]"),
        (["pipeline", "run", "-c", "x.yaml", "-p", "load"], "expected STEP.NAME=VALUE"),
        (["pipeline", "run", "-c", "x.yaml", "-p", "load=3"], "name a step and a parameter"),
        (["pipeline", "run", "-c", "x.yaml", "--dry-run", "--repo-id", "o/n"], "can't be pushed"),
        (["pipeline", "run", "-c", "x.yaml", "--repo-id", "o/n/x"], "must look like ORG/NAME"),
        (["pipeline", "run", "--script", "missing.py"], "--script: no such file: missing.py"),
        (["pipeline", "info", "-c", "missing.yaml"], "no such file: missing.yaml"),
    ],
)
def test_usage_errors(
    args: list[str], contains: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    offline_pipeline().save(tmp_path / "x.yaml")
    monkeypatch.chdir(tmp_path)
    result = runner.invoke(app, args)
    assert_one_line_error(result, 2, contains)


def test_a_script_that_fails_names_its_line(tmp_path: Path) -> None:
    script = tmp_path / "broken.py"
    script.write_text("x = 1\nraise ValueError('no pipeline today')\n")
    result = runner.invoke(app, ["pipeline", "run", "--script", str(script)])
    assert_one_line_error(
        result, 2, f"running {script} failed (line 2): ValueError: no pipeline today"
    )


def test_push_from_the_cli(config: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    uploaded: dict[str, bytes] = {}
    made: list[dict[str, Any]] = []

    class FakeHfApi:
        endpoint = "https://hub.example"

        def __init__(self, **kwargs: Any) -> None:
            made.append(kwargs)

        def create_repo(self, repo_id: str, **kwargs: Any) -> None:
            made.append({"repo_id": repo_id, **kwargs})

        def upload_folder(self, *, folder_path: Path, **kwargs: Any) -> None:
            for path in Path(folder_path).rglob("*"):
                if path.is_file():
                    uploaded[path.relative_to(folder_path).as_posix()] = path.read_bytes()

    monkeypatch.setattr("huggingface_hub.HfApi", FakeHfApi)
    result = runner.invoke(
        app,
        ["pipeline", "run", "-c", str(config), "--repo-id", "org/data", "--private",
         "--token", "hf_do_not_leak"],
    )  # fmt: skip

    assert result.exit_code == 0, result.stderr
    assert "pushed to https://hub.example/datasets/org/data" in result.stdout
    assert made[0] == {"token": "hf_do_not_leak"}
    assert made[1]["private"] is True
    assert all(b"hf_do_not_leak" not in data for data in uploaded.values())
    card = uploaded["README.md"].decode()
    assert f"It was made with:\n\n```bash\nsynthflow pipeline run --config {config}\n```" in card


def test_ignore_cache_turns_the_response_cache_off(
    config: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: list[bool] = []
    real_run = Pipeline.run

    def run(self: Pipeline, *args: Any, **kwargs: Any) -> Distiset:
        seen.append(kwargs["use_cache"])
        return real_run(self, *args, **kwargs)

    monkeypatch.setattr(Pipeline, "run", run)
    for flags in ([], ["--ignore-cache"]):
        result = runner.invoke(app, ["pipeline", "run", "-c", str(config), *flags])
        assert result.exit_code == 0, result.stderr
    assert seen == [True, False]


def test_version() -> None:
    result = runner.invoke(app, ["--version"])
    assert result.exit_code == 0
    assert result.stdout.startswith("synthflow ")


# -- pieces -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "value"),
    [
        ("3", 3),
        ("0.5", 0.5),
        ("true", True),
        ("True", True),
        ("None", None),
        ('["a", "b"]', ["a", "b"]),
        ('{"k": 1}', {"k": 1}),
        ("plain text", "plain text"),
        ("", ""),
    ],
)
def test_param_values_are_json_when_they_parse(raw: str, value: Any) -> None:
    assert parse_value(raw) == value


def test_params_reach_into_dicts_and_fall_back_to_text() -> None:
    pipeline = offline_pipeline()
    with pipeline:
        Shout(name="shout")
    pipeline.connect(pipeline.steps["generate"], pipeline.steps["shout"])

    apply_parameters(
        pipeline,
        None,
        ['generate.llm.generation_kwargs.stop=["\\n"]', "shout.suffix=123", "load.batch_size=2"],
    )

    generate = pipeline.steps["generate"]
    assert generate.llm.generation_kwargs == {"max_new_tokens": 16, "stop": ["\n"]}  # type: ignore[attr-defined]
    assert pipeline.steps["shout"].suffix == "123"  # type: ignore[attr-defined]
    with pytest.raises(RuntimeParameterError, match=r"'load\.batch_size' expects int, got 1\.5"):
        apply_parameters(pipeline, None, ["load.batch_size=1.5"])


def test_dag_drawing_marks_joins() -> None:
    edges = [("load", "a"), ("load", "b"), ("a", "join"), ("b", "join"), ("a", "leaf")]
    assert draw_dag(["load", "a", "b", "join", "leaf"], edges) == [
        "load",
        "|-> a",
        "|   |-> join  (joins a, b)",
        "|   `-> leaf",
        "`-> b",
        "    `-> join  (see above)",
    ]


# -- how a run ends: failed rows, a full disk -----------------------------------------------------

FLAKY = """
import os
from synthflow.pipeline import Pipeline
from synthflow.steps import LoadDataFromDicts
from synthflow.steps.tasks import TextGeneration
from synthflow.testing import FunctionLLM

FAILING = set(os.environ.get("FAIL", "").split(","))

def answer(messages):
    prompt = messages[-1]["content"]
    if prompt in FAILING:
        raise RuntimeError("refused")
    return "ok " + prompt

with Pipeline(name="flaky") as pipeline:
    load = LoadDataFromDicts(name="load", data=[{"instruction": f"q{i}"} for i in range(4)])
    load >> TextGeneration(name="gen", llm=FunctionLLM(fn=answer))
"""


def run_flaky(tmp_path: Path, failing: str, *flags: str) -> Any:
    script = tmp_path / "flaky.py"
    script.write_text(FLAKY)
    args = ["pipeline", "run", "--script", str(script), "--progress", "off", *flags]
    return runner.invoke(app, args, env={"FAIL": failing})


def test_rows_failed_beyond_the_tolerance_exit_3_and_the_data_is_saved(tmp_path: Path) -> None:
    out = tmp_path / "out"
    result = run_flaky(tmp_path, "q1", "-o", str(out))

    assert result.exit_code == 3, result.stderr
    lines = result.stderr.strip().splitlines()
    assert lines[-1] == (
        "error: 1 of 4 rows failed (gen 1); their errors are in the synthflow_error column; "
        "more than --max-failed-rows 0 allows; the data is saved to "
        f"{out}; to accept failed rows, set --max-failed-rows N or P%"
    )
    assert "Traceback" not in result.stderr
    saved = Distiset.load_from_disk(out)
    assert saved["default"]["train"]["generation"] == ["ok q0", None, "ok q2", "ok q3"]
    assert saved.failed_rows == {"gen": 1}
    assert orjson.loads((out / "run.json").read_bytes())["failed_rows"] == {"gen": 1}


@pytest.mark.parametrize(
    ("failing", "tolerance", "code"),
    [
        ("", "0", 0),
        ("q1", "1", 0),
        ("q1,q2", "1", 3),
        ("q1", "25%", 0),
        ("q1", "24.9%", 3),
        ("q0,q1,q2,q3", "100%", 3),  # every row failed: never a success
        ("q0,q1,q2,q3", "10", 3),
    ],
)
def test_the_failed_row_tolerance(tmp_path: Path, failing: str, tolerance: str, code: int) -> None:
    result = run_flaky(tmp_path, failing, "--max-failed-rows", tolerance)
    assert result.exit_code == code, result.stderr
    if failing == "q0,q1,q2,q3":
        assert (
            result.stderr.strip()
            .splitlines()[-1]
            .startswith("error: every row failed: 4 of 4 rows failed (gen 4)")
        )


def test_rows_failed_beyond_the_tolerance_are_not_pushed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    made: list[Any] = []
    monkeypatch.setattr("huggingface_hub.HfApi", lambda **kwargs: made.append(kwargs))
    result = run_flaky(tmp_path, "q1", "--repo-id", "org/data")
    assert result.exit_code == 3
    assert "not pushed to org/data" in result.stderr.strip().splitlines()[-1]
    assert made == []


@pytest.mark.parametrize("tolerance", ["-1", "ten", "101%", "5%%", ""])
def test_a_bad_tolerance_is_a_usage_error(tmp_path: Path, tolerance: str) -> None:
    result = run_flaky(tmp_path, "", "--max-failed-rows", tolerance)
    assert_one_line_error(result, 2, f"--max-failed-rows {tolerance!r}: give a number of rows")


def test_a_full_disk_exits_4_with_one_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from synthflow.pipeline import _disk

    def no_space(path: Path) -> Any:
        raise OSError(28, "No space left on device", str(path))

    monkeypatch.setattr(_disk, "open_for_writing", no_space)
    result = run_flaky(tmp_path, "")
    assert_one_line_error(result, 4, "disk full: writing ")
    assert "parameters.sha256 failed (No space left on device); free space there" in result.stderr


def test_boolean_options_show_as_flags_in_help() -> None:
    result = runner.invoke(app, ["pipeline", "run", "--help"])
    assert result.exit_code == 0
    flags = {"--dry-run", "--ignore-cache", "--private"}
    shown = {line.split()[0] for line in result.stdout.splitlines() if line.strip()[:2] == "--"}
    assert flags <= shown
    assert "<bool>" not in result.stdout
    for line in result.stdout.splitlines():
        if line.split()[:1] and line.split()[0] in flags:
            assert line.split()[1][0].isupper(), line  # the help text follows, not a metavar


def test_help_documents_the_exit_codes() -> None:
    result = runner.invoke(app, ["pipeline", "run", "--help"])
    text = " ".join(result.stdout.replace("│", " ").split())
    assert "--max-failed-rows" in text
    for code in ("0 done", "1 the run failed", "2 bad input", "3 more rows failed than"):
        assert code in text
    assert "4 a disk is full" in text and "130 interrupted" in text


def test_step_names_distilabel_accepts_run_from_yaml_with_params(tmp_path: Path) -> None:
    """distilabel's name rule (letters, digits, '_', '-', in any order): names that start with
    a digit or a dash survive YAML, the run directory and --param paths."""
    with Pipeline(name="names") as pipeline:
        load = LoadDataFromDicts(name="1load", data=[{"instruction": f"q{i}"} for i in range(5)])
        generate = TextGeneration(name="-generate", llm=OfflineLLM())
        load >> generate
    config = pipeline.save(tmp_path / "pipeline.yaml")
    out = tmp_path / "out"

    result = synthflow(
        "pipeline", "run", "--config", str(config), "--output", str(out),
        "--param", "1load.batch_size=2", "--param", "-generate.num_generations=2",
    )  # fmt: skip

    assert result.returncode == 0, result.stderr
    assert len(Distiset.load_from_disk(out)["default"]["train"]) == 10
    saved = Pipeline.from_file(out / "pipeline.yaml")
    assert list(saved.steps) == ["1load", "-generate"]
    assert saved.steps["1load"].batch_size == 2  # type: ignore[attr-defined]
