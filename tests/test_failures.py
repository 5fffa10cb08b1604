"""Failed rows are recorded, visible and re-runnable (issue 13): the failure record, ``pipeline
status``, ``--retry-failed`` / ``run(retry_failed=True)``, and a worker process killed mid-batch.

The LLM is a loopback OpenAI-compatible server with faults injected per prompt: 500s on every
attempt, answers that never fit the output schema, and a step that raises on some rows."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import threading
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest

from synthflow.distiset import Distiset
from synthflow.errors import PipelineValidationError, StepError
from synthflow.models.callpath.secrets import redact, refresh
from synthflow.models.llms.openai import OpenAILLM
from synthflow.pipeline import Pipeline
from synthflow.steps import LoadDataFromDicts, Step, StepInput
from synthflow.steps.base import Row
from synthflow.steps.tasks import ERROR_COLUMN, TextGeneration
from tests.helpers import KillsItsWorker
from tests.servers import Reply, Request, fake_api

ROOT = Path(__file__).resolve().parents[1]
CANARY = "sk-canary-7f3a9c1e5b2d4086"

ROWS = 30
FAIL_500 = {1, 5, 12}  # every attempt answers 500 (echoing the Authorization header)
BAD_SCHEMA = {2, 8, 20}  # every answer is text that is not the schema's JSON
FILTERED = {n for n in range(ROWS) if n % 7 == 3}  # dropped by the `keep` step
STEP_RAISES = {n for n in range(ROWS) if n % 10 == 4} - FILTERED  # `check` raises on them

SCRIPT = textwrap.dedent(
    """
    import os

    from synthflow.models.llms.openai import OpenAILLM
    from synthflow.pipeline import Pipeline
    from synthflow.steps import LoadDataFromDicts, step
    from synthflow.steps.tasks import TextGeneration

    SCHEMA = {
        "type": "object",
        "properties": {"answer": {"type": "string"}},
        "required": ["answer"],
    }

    @step(inputs=["n"], outputs=[])
    def KeepSome(inputs):
        yield [row for row in inputs if row["n"] % 7 != 3]

    @step(inputs=["generation", "n"], outputs=["checked"])
    def Check(inputs):
        for row in inputs:
            if row["n"] % 10 == 4 and os.environ.get("FLAKY_STEP") != "off":
                raise ValueError(f"check failed on row {row['n']}")
            row["checked"] = len(row["generation"])
        yield inputs

    with Pipeline(name="faults") as pipeline:
        load = LoadDataFromDicts(
            name="load", data=[{"instruction": f"q{i}", "n": i} for i in range(30)], batch_size=8
        )
        llm = OpenAILLM(
            model="m", max_retries=1, retry_backoff=0.01, structured_output=SCHEMA,
            structured_retries=1,
        )
        gen = TextGeneration(name="gen", llm=llm)
        check = Check(name="check", on_error="null", input_batch_size=8)
        load >> KeepSome(name="keep") >> gen >> check
    """
)


class FaultyServer:
    """Answers ``{"answer": "a<n>"}`` to the prompt ``q<n>``, with the faults above while
    ``faulty``. ``answered`` counts, per prompt, the answers that fit the schema: the ones
    that are paid for and usable."""

    def __init__(self, faulty: bool = True) -> None:
        self.faulty = faulty
        self.answered: Counter[str] = Counter()
        self._lock = threading.Lock()

    def __call__(self, request: Request) -> Reply:
        messages = request.json["messages"]
        prompt = str(messages[0]["content"])  # a re-ask keeps the original question first
        n = int(prompt[1:])
        if self.faulty and n in FAIL_500:
            auth = request.headers.get("authorization", "")
            return Reply(status=500, body={"error": {"message": f"upstream down (got {auth})"}})
        if self.faulty and n in BAD_SCHEMA:
            text = f"Sure! The answer is a{n}."
        else:
            text = orjson.dumps({"answer": f"a{n}"}).decode()
            with self._lock:
                self.answered[prompt] += 1
        return Reply(
            body={
                "id": "c",
                "object": "chat.completion",
                "model": "m",
                "choices": [
                    {
                        "index": 0,
                        "message": {"role": "assistant", "content": text},
                        "finish_reason": "stop",
                    }
                ],
                "usage": {"prompt_tokens": 7, "completion_tokens": 5, "total_tokens": 12},
            }
        )


def synthflow(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "synthflow", *args],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "PYTHONPATH": str(ROOT), **(env or {})},
        cwd=ROOT,
    )


def status_of(script: Path) -> dict[str, Any]:
    result = synthflow("pipeline", "status", "--script", str(script), "--json")
    assert result.returncode == 0, result.stderr
    found: dict[str, Any] = orjson.loads(result.stdout)
    return found


def assert_counts_add_up(status: dict[str, Any]) -> None:
    for name, s in status["steps"].items():
        assert s["in"] + s["added"] == s["out"] + s["filtered"] + s["failed"], name


@pytest.mark.timeout(240)  # five runs and three status calls, each a fresh process
def test_failures_are_recorded_shown_and_retried_until_the_data_equals_a_clean_run(
    tmp_path: Path,
) -> None:
    script = tmp_path / "faults.py"
    script.write_text(SCRIPT)
    server = FaultyServer()
    with fake_api(server) as api:
        env = {"OPENAI_BASE_URL": f"{api.url}/v1", "OPENAI_API_KEY": CANARY}
        first = synthflow("pipeline", "run", "--script", str(script), "--progress", "off", env=env)
        # 8 of 30 rows failed, beyond the default tolerance: exit 3, the data kept
        assert first.returncode == 3, first.stderr
        assert "failed rows are recorded in" in first.stderr
        asked_first = api.prompt_counts()

        # -- the status adds up, per step and cause
        status = status_of(script)
        assert status["state"] == "finished" and status["resumable"] is False
        assert_counts_add_up(status)
        steps = status["steps"]
        kept = ROWS - len(FILTERED)
        assert (steps["load"]["in"], steps["load"]["out"]) == (ROWS, ROWS)
        assert (steps["keep"]["in"], steps["keep"]["out"]) == (ROWS, kept)
        assert steps["keep"]["filtered"] == len(FILTERED)
        assert steps["gen"]["in"] == kept
        assert steps["gen"]["failed"] == len(FAIL_500) + len(BAD_SCHEMA)
        assert steps["gen"]["failed_by_cause"] == {
            "LLMStatusError": len(FAIL_500),
            "LLMSchemaError": len(BAD_SCHEMA),
        }
        assert steps["gen"]["requests"] == kept and steps["gen"]["cache_hits"] == 0
        assert steps["gen"]["input_tokens"] > 0
        assert steps["check"]["in"] == kept  # rows failed upstream pass through, not counted
        assert steps["check"]["failed_by_cause"] == {"ValueError": len(STEP_RAISES)}
        assert status["failures_recorded"] == 8

        text = synthflow("pipeline", "status", "--script", str(script))
        assert text.returncode == 0
        assert "failed in gen: 6 (LLMSchemaError 3, LLMStatusError 3)" in text.stdout
        assert "--retry-failed" in text.stdout

        # -- the failure record, read with datasets; no secret in it
        record = Path(status["failures_path"])
        assert CANARY not in record.read_text()
        from datasets import load_dataset

        failures = load_dataset("json", data_files=str(record), split="train").to_list()
        by_row = {f["row_id"]: f for f in failures}
        assert set(by_row) == FAIL_500 | BAD_SCHEMA | STEP_RAISES
        down = by_row[1]
        assert down["step"] == "gen" and down["lineage"] == ["load", "keep", "gen"]
        assert (down["cause"], down["error_class"]) == ("llm", "LLMStatusError")
        assert down["attempts"] == 2
        assert "q1" in down["request"] and "upstream down" in down["response"]
        assert "[REDACTED]" in down["response"]
        bad = by_row[2]
        assert (bad["cause"], bad["error_class"]) == ("schema", "LLMSchemaError")
        assert bad["attempts"] == 2  # the answer, and one re-ask
        assert bad["response"] == "Sure! The answer is a2."
        raised = by_row[4]
        assert (raised["step"], raised["cause"], raised["error_class"]) == (
            "check",
            "step",
            "ValueError",
        )
        # alone in its batch, or found by running the batch again in halves
        assert raised["error"] == "check failed on row 4" and raised["attempts"] >= 1

        # -- the faults go away; retry only the failed rows
        server.faulty = False
        out = tmp_path / "retried"
        second = synthflow(
            "pipeline",
            "run",
            "--script",
            str(script),
            "--retry-failed",
            "--progress",
            "off",
            "--output",
            str(out),
            env={**env, "FLAKY_STEP": "off"},
        )
        assert second.returncode == 0, second.stderr
        asked = api.prompt_counts() - asked_first
        # only the rows whose call failed were asked again; those that failed after it were not
        assert asked == Counter({f"q{n}": 1 for n in FAIL_500 | BAD_SCHEMA})
    assert set(server.answered.values()) == {1}  # no answered request was sent twice

    status = status_of(script)
    assert status["state"] == "finished" and status["retrying_failed_rows"] == 8
    assert_counts_add_up(status)
    assert status["failures_recorded"] == 0 and status["totals"]["failed"] == 0
    assert not record.exists()  # every row that now succeeded left the record

    # -- the data equals a run that met no fault
    clean_server = FaultyServer(faulty=False)
    with fake_api(clean_server) as api:
        env = {"OPENAI_BASE_URL": f"{api.url}/v1", "OPENAI_API_KEY": CANARY}
        env |= {"SYNTHFLOW_CACHE_DIR": str(tmp_path / "clean-cache"), "FLAKY_STEP": "off"}
        reference = tmp_path / "reference"
        clean = synthflow(
            *("pipeline", "run", "--script", str(script), "--output", str(reference)), env=env
        )
        assert clean.returncode == 0, clean.stderr
    rows = Distiset.load_from_disk(out)["default"]["train"].to_list()
    expected = Distiset.load_from_disk(reference)["default"]["train"].to_list()
    assert rows == expected
    assert [r["n"] for r in rows] == [n for n in range(ROWS) if n not in FILTERED]


# -- through the Python API ----------------------------------------------------------------------

BROKEN: set[int] = set()  # rows the `flaky` step raises on: an outside fault, not a parameter


class Flaky(Step):
    @property
    def inputs(self) -> list[str]:
        return ["n"]

    @property
    def outputs(self) -> list[str]:
        return ["double"]

    def process(self, inputs: StepInput) -> Iterator[list[Row]]:
        for row in inputs:
            if row["n"] in BROKEN:
                raise RuntimeError(f"flaky on {row['n']}")
            row["double"] = 2 * row["n"]
        yield inputs


def echo(request: Request) -> Reply:
    prompt = request.json["messages"][-1]["content"]
    return Reply(
        body={
            "id": "c",
            "object": "chat.completion",
            "model": "m",
            "choices": [{"index": 0, "message": {"role": "assistant", "content": f"re: {prompt}"}}],
            "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
        }
    )


@pytest.mark.parametrize("policy", ["drop", "null"])
def test_retry_failed_puts_the_rows_back_at_their_source_positions(policy: str) -> None:
    with fake_api(echo) as api:
        with Pipeline(name="retry-api") as pipeline:
            load = LoadDataFromDicts(
                data=[{"instruction": f"q{n}", "n": n} for n in range(40)], batch_size=7
            )
            llm = OpenAILLM(model="m", base_url=f"{api.url}/v1", api_key="k")
            gen = TextGeneration(name="gen", llm=llm)
            load >> gen >> Flaky(name="flaky", on_error=policy, input_batch_size=6)
        BROKEN.update({0, 9, 10, 39})
        try:
            first = pipeline.run(progress=False)
        finally:
            BROKEN.clear()
        assert first.failed_rows == {"flaky": 4}
        assert first.failures is not None and first.failures.name == "failures.jsonl"
        rows = first["default"]["train"].to_list()
        assert len(rows) == (36 if policy == "drop" else 40)

        again = pipeline.run(progress=False, retry_failed=True)
        assert api.prompt_counts() == Counter({f"q{n}": 1 for n in range(40)})
    assert again.failed_rows == {} and again.failures is None
    rows = again["default"]["train"].to_list()
    assert [r["n"] for r in rows] == list(range(40))
    assert all(r["double"] == 2 * r["n"] and r["generation"] == f"re: q{r['n']}" for r in rows)
    assert ERROR_COLUMN not in rows[0]
    # a second retry has nothing left to do, and changes nothing
    assert again.stats[load.name].rows_out == 4
    third = pipeline.run(progress=False, retry_failed=True)
    assert third["default"]["train"].to_list() == rows


def test_rows_that_fail_again_stay_in_the_record() -> None:
    with Pipeline(name="retry-again") as pipeline:
        load = LoadDataFromDicts(data=[{"n": n} for n in range(12)], batch_size=5)
        load >> Flaky(name="flaky", on_error="null", input_batch_size=4)
    BROKEN.update({2, 7})
    try:
        first = pipeline.run(progress=False)
        BROKEN.discard(2)
        again = pipeline.run(progress=False, retry_failed=True)
    finally:
        BROKEN.clear()
    assert first.failed_rows == {"flaky": 2} and again.failed_rows == {"flaky": 1}
    assert not again.all_rows_failed  # its other rows are fine
    assert again.failure_summary() == (
        "1 of 2 retried rows failed (flaky 1); their errors are in the synthflow_error column"
    )
    assert again.failures is not None
    lines = [orjson.loads(line) for line in again.failures.read_bytes().splitlines()]
    assert [(f["row_id"], f["step"], f["error"]) for f in lines] == [(7, "flaky", "flaky on 7")]
    rows = again["default"]["train"].to_list()
    assert [r["double"] for r in rows] == [2 * n if n != 7 else None for n in range(12)]
    assert rows[7][ERROR_COLUMN] == "flaky: RuntimeError: flaky on 7"


def test_retry_failed_needs_a_finished_run() -> None:
    with Pipeline(name="never-ran") as pipeline:
        LoadDataFromDicts(data=[{"n": 1}]) >> Flaky(name="flaky")
    with pytest.raises(PipelineValidationError, match="did not finish: run it again without"):
        pipeline.run(progress=False, retry_failed=True)


def test_a_failed_run_records_the_row_that_stopped_it() -> None:
    with Pipeline(name="stops") as pipeline:
        load = LoadDataFromDicts(data=[{"n": n} for n in range(10)], batch_size=5)
        load >> Flaky(name="flaky", input_batch_size=5)  # on_error="fail"
    BROKEN.add(3)
    try:
        with pytest.raises(StepError, match="flaky on 3"):
            pipeline.run(progress=False)
    finally:
        BROKEN.clear()
    lines = (pipeline.run_dir / "failures.jsonl").read_bytes().splitlines()
    assert [orjson.loads(line)["row_id"] for line in lines] == [0, 1, 2, 3, 4]  # its batch
    from synthflow.pipeline._status import read_status

    status = read_status(pipeline.run_dir)
    assert status is not None
    assert status["state"] == "failed" and status["resumable"] is True
    assert "flaky on 3" in status["reason"]


def test_redact_removes_keys_from_the_environment_and_bearer_tokens(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("MY_SERVICE_API_KEY", "abcdefgh12345678")
    monkeypatch.setenv("HF_TOKEN", "hf_zzzzzzzzzzzz")
    text = "key abcdefgh12345678, hf_zzzzzzzzzzzz; Authorization: Bearer sk-xyz123456 done"
    refresh()  # a run reads the environment's secrets when it starts
    assert redact(text) == "key [REDACTED], [REDACTED]; Authorization: Bearer [REDACTED] done"


# -- a run in progress, then killed ---------------------------------------------------------------

SLOW_SCRIPT = textwrap.dedent(
    """
    from synthflow.models.llms.openai import OpenAILLM
    from synthflow.pipeline import Pipeline
    from synthflow.steps import LoadDataFromDicts
    from synthflow.steps.tasks import TextGeneration

    with Pipeline(name="slow") as pipeline:
        load = LoadDataFromDicts(
            name="load", data=[{"instruction": f"q{i}"} for i in range(20)], batch_size=4
        )
        gen = TextGeneration(name="gen", llm=OpenAILLM(model="m"), concurrency=2)
        load >> gen
    """
)


@pytest.mark.timeout(180)  # two runs and four status calls, each a fresh process
def test_status_of_a_running_then_killed_run_then_resumed(tmp_path: Path) -> None:
    script = tmp_path / "slow.py"
    script.write_text(SLOW_SCRIPT)
    arrived = threading.Event()
    release = threading.Event()

    def handler(request: Request) -> Reply:
        prompt = request.json["messages"][-1]["content"]
        if prompt == "q5":  # holds the run here until the test has looked at it
            arrived.set()
            release.wait(timeout=30)
        return echo(request)

    with fake_api(handler) as api:
        env = {**os.environ, "PYTHONPATH": str(ROOT), "OPENAI_BASE_URL": f"{api.url}/v1"}
        env["OPENAI_API_KEY"] = "k"
        command = [sys.executable, "-m", "synthflow", "pipeline", "run", "--script", str(script)]
        proc = subprocess.Popen([*command, "--progress", "off"], env=env, cwd=ROOT)
        try:
            assert arrived.wait(timeout=60)
            running = status_of(script)
            assert running["state"] == "running"
            assert running["steps"]["load"]["source"] is True
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait(timeout=30)
        finally:
            release.set()
            if proc.poll() is None:
                proc.kill()
        killed = status_of(script)
        assert killed["state"] == "interrupted" and killed["resumable"] is True
        assert_counts_add_up(killed)
        text = synthflow("pipeline", "status", "--script", str(script))
        assert "resumable: yes" in text.stdout

        resumed = subprocess.run([*command, "--progress", "off"], env=env, cwd=ROOT, timeout=120)
        assert resumed.returncode == 0
    done = status_of(script)
    assert done["state"] == "finished" and done["resumable"] is False
    assert_counts_add_up(done)
    # the run directory works as well as the script
    by_dir = synthflow("pipeline", "status", done["run_dir"], "--json")
    assert orjson.loads(by_dir.stdout)["state"] == "finished"


def test_status_of_a_directory_without_a_run_is_a_usage_error(tmp_path: Path) -> None:
    result = synthflow("pipeline", "status", str(tmp_path))
    assert result.returncode == 2
    assert result.stderr.startswith("error: no run found in")


# -- a worker process killed mid-batch -----------------------------------------------------------


@pytest.mark.timeout(180)
def test_a_worker_killed_mid_batch_is_replaced_and_its_rows_retried(tmp_path: Path) -> None:
    with Pipeline(name="oom-once") as pipeline:
        load = LoadDataFromDicts(data=[{"n": n} for n in range(12)], batch_size=4)
        load >> KillsItsWorker(
            name="work", marker_dir=str(tmp_path), executor="process", input_batch_size=4
        )
    distiset = pipeline.run(progress=False)
    assert (tmp_path / "killed").exists()  # it did die
    assert [r["square"] for r in distiset["default"]["train"]] == [n * n for n in range(12)]
    assert distiset.failed_rows == {}


@pytest.mark.timeout(180)  # each death starts new worker processes
def test_a_worker_that_dies_again_fails_its_rows_with_the_cause(tmp_path: Path) -> None:
    with Pipeline(name="oom-always") as pipeline:
        load = LoadDataFromDicts(data=[{"n": n} for n in range(12)], batch_size=4)
        load >> KillsItsWorker(
            name="work",
            marker_dir=str(tmp_path),
            once=False,
            executor="process",
            input_batch_size=4,
            on_error="null",
        )
    distiset = pipeline.run(progress=False)
    rows = distiset["default"]["train"].to_list()
    assert [r["square"] for r in rows] == [None if n < 4 else n * n for n in range(12)]
    error = rows[0][ERROR_COLUMN]
    assert error.startswith("work: WorkerDiedError: a worker process died while it held the batch")
    assert error.endswith("and again on a new worker")
    assert distiset.failures is not None
    lines = [orjson.loads(line) for line in distiset.failures.read_bytes().splitlines()]
    assert [(f["row_id"], f["cause"], f["attempts"]) for f in lines] == [
        (n, "worker", 2) for n in range(4)
    ]


POWER_CUT: set[int] = set()


class PowerCut(Step):
    @property
    def inputs(self) -> list[str]:
        return ["n"]

    def process(self, inputs: StepInput) -> Iterator[list[Row]]:
        for row in inputs:
            if row["n"] in POWER_CUT:
                raise RuntimeError("power cut")
        yield inputs


def test_a_resumed_run_records_each_failed_row_once() -> None:
    with Pipeline(name="resume-record") as pipeline:
        load = LoadDataFromDicts(data=[{"n": n} for n in range(60)], batch_size=5)
        flaky = Flaky(name="flaky", on_error="null", input_batch_size=5)
        load >> flaky >> PowerCut(name="cut", input_batch_size=5)
    BROKEN.update({2, 48})
    POWER_CUT.add(45)
    try:
        with pytest.raises(StepError, match="power cut"):
            pipeline.run(progress=False)
        POWER_CUT.clear()
        distiset = pipeline.run(progress=False)  # resumes after the rows saved
    finally:
        BROKEN.clear()
        POWER_CUT.clear()
    assert distiset.failures is not None
    lines = [orjson.loads(line) for line in distiset.failures.read_bytes().splitlines()]
    assert sorted((f["row_id"], f["step"]) for f in lines) == [(2, "flaky"), (48, "flaky")]


# -- generated cases: a retry's merge against a run that met no fault ---------------------------

FAULTS: dict[str, set[tuple[int, int]]] = {}  # step name -> (n, copy) it raises on


class Copies(Step):
    """Makes two copies (``copy`` 0 and 1, sharing the row's lineage id) of the rows listed."""

    twice: list[int] = []

    @property
    def inputs(self) -> list[str]:
        return ["n"]

    @property
    def outputs(self) -> list[str]:
        return ["copy"]

    def process(self, inputs: StepInput) -> Iterator[list[Row]]:
        out = []
        for row in inputs:
            for copy in range(2 if row["n"] in self.twice else 1):
                out.append({**row, "copy": copy})
        yield out


class DropEvery(Step):
    modulo: int = 5

    @property
    def inputs(self) -> list[str]:
        return ["n"]

    def process(self, inputs: StepInput) -> Iterator[list[Row]]:
        yield [row for row in inputs if row["n"] % self.modulo]


class Faulty(Step):
    @property
    def inputs(self) -> list[str]:
        return ["n", "copy"]

    @property
    def outputs(self) -> list[str]:
        return [f"v_{self.name}"]

    def process(self, inputs: StepInput) -> Iterator[list[Row]]:
        for row in inputs:
            if (row["n"], row["copy"]) in FAULTS.get(self.name, set()):
                raise ValueError(f"fault on {row['n']}.{row['copy']}")
            row[f"v_{self.name}"] = 10 * row["n"] + row["copy"]
        yield inputs


def generated_pipeline(seed: int, cache_dir: Path) -> tuple[Pipeline, dict[str, set[Any]]]:
    """A small random DAG (a fan-out into one or two faulty leaves, rows copied and filtered
    on the way), and the faults it meets on its first run."""
    import random

    rng = random.Random(seed)
    n = rng.randint(5, 40)
    with Pipeline(name=f"generated-{seed}", cache_dir=cache_dir) as pipeline:
        load = LoadDataFromDicts(data=[{"n": i} for i in range(n)], batch_size=rng.randint(1, 9))
        copies = Copies(
            name="copies", twice=rng.sample(range(n), k=rng.randint(0, n // 2)), input_batch_size=4
        )
        drop = DropEvery(name="drop", modulo=rng.randint(2, 7), input_batch_size=rng.randint(1, 8))
        load >> copies >> drop
        leaves = ["a"] if rng.random() < 0.5 else ["a", "b"]
        for leaf in leaves:
            policy = rng.choice(["null", "drop"])
            size = rng.randint(1, 8)
            drop >> Faulty(name=leaf, on_error=policy, input_batch_size=size)
    faults = {
        leaf: {(rng.randrange(n), rng.randint(0, 1)) for _ in range(rng.randint(0, 5))}
        for leaf in leaves
    }
    return pipeline, faults


@pytest.mark.parametrize("seed", range(12))
def test_generated_retries_end_with_the_data_of_a_run_without_faults(
    seed: int, tmp_path: Path
) -> None:
    pipeline, faults = generated_pipeline(seed, tmp_path / "faulty")
    FAULTS.update(faults)
    try:
        first = pipeline.run(progress=False)
    finally:
        FAULTS.clear()
    record = first.failures
    failed = {f["row_id"] for f in read_lines(record)} if record is not None else set()
    assert sum(first.failed_rows.values()) == len(read_lines(record))
    retried = pipeline.run(progress=False, retry_failed=True)
    assert retried.failed_rows == {} and retried.failures is None
    assert retried.stats["load_data_from_dicts_0"].rows_out == len(failed)

    clean, _ = generated_pipeline(seed, tmp_path / "clean")
    expected = clean.run(progress=False)
    assert set(retried) == set(expected)
    for subset in expected:
        rows = retried[subset]["train"].to_list()
        assert rows == expected[subset]["train"].to_list(), subset


def read_lines(path: Path | None) -> list[dict[str, Any]]:
    if path is None:
        return []
    return [orjson.loads(line) for line in path.read_bytes().splitlines()]


def test_a_row_failing_in_two_branches_is_not_more_rows_than_were_made() -> None:
    from synthflow.steps import CombineOutputs
    from synthflow.testing import FunctionLLM

    def refuse(messages: list[dict[str, Any]]) -> str:
        raise RuntimeError("down")

    with Pipeline(name="two-branches") as pipeline:
        load = LoadDataFromDicts(data=[{"instruction": f"q{i}"} for i in range(3)])
        a = TextGeneration(name="a", llm=FunctionLLM(fn=refuse), on_error="null")
        b = TextGeneration(
            name="b",
            llm=FunctionLLM(fn=refuse),
            on_error="null",
            output_mappings={"generation": "other", "model_name": "other_model"},
        )
        load >> [a, b] >> CombineOutputs(name="both")
    distiset = pipeline.run(progress=False)
    assert distiset.failed_rows == {"a": 3, "b": 3}
    # not "6 of 3 rows failed"
    assert distiset.failure_summary() == (
        "6 rows failed (a 3, b 3); their errors are in the synthflow_error column"
    )
