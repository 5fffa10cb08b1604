"""Pipelines sharded over a Ray cluster on this machine (the ``cluster`` fixture of
``tests/conftest.py``), against a loopback LLM server."""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from synthflow.errors import PipelineValidationError
from synthflow.models import OpenAILLM
from synthflow.pipeline import Pipeline, RayPipeline
from synthflow.steps import DropDuplicates, LoadDataFromDicts, Step, StepInput, step
from synthflow.steps.tasks import TextGeneration
from tests.servers import Reply, Request, fake_api, prompt_of
from tests.servers.chat import answer_text, completion

ray = pytest.importorskip("ray")
pytestmark = [pytest.mark.ray, pytest.mark.timeout(300)]


class InFlight:
    """An OpenAI-compatible handler that answers after ``delay`` and counts requests in flight."""

    def __init__(self, delay: float = 0.05, fail_above: int | None = None) -> None:
        self.delay = delay
        self.fail_above = fail_above
        self.now = 0
        self.peak = 0
        self.rejected = 0
        self._lock = threading.Lock()

    def __call__(self, request: Request) -> Reply:
        with self._lock:
            self.now += 1
            self.peak = max(self.peak, self.now)
            over = self.fail_above is not None and self.now > self.fail_above
            if over:
                self.rejected += 1
        try:
            if over:
                return Reply(429, {"error": {"message": "too many requests"}})
            time.sleep(self.delay)
            return completion(request)
        finally:
            with self._lock:
                self.now -= 1


@step(inputs=["generation"], outputs=["length"])
def Length(inputs: StepInput):  # type: ignore[no-untyped-def]
    for row in inputs:
        row["length"] = len(row["generation"])
    yield inputs


def build(
    pipeline: Pipeline, url: str, rows: int, *, max_concurrency: int | None = None
) -> Pipeline:
    with pipeline:
        load = LoadDataFromDicts(
            data=[{"instruction": f"question {i}"} for i in range(rows)], batch_size=10
        )
        generate = TextGeneration(
            llm=OpenAILLM(
                model="m", base_url=f"{url}/v1", api_key="k", max_concurrency=max_concurrency
            ),
            input_batch_size=10,
        )
        load >> generate >> Length()
    return pipeline


def rows_of(distiset: Any) -> list[dict[str, Any]]:
    rows = distiset["default"]["train"].to_list()
    for row in rows:
        row.pop("synthflow_metadata", None)
    return rows


def test_a_sharded_run_makes_the_dataset_one_process_makes(cluster: None, tmp_path: Path) -> None:
    handler = InFlight(delay=0.01)
    with fake_api(handler) as api:
        local = build(Pipeline("p", cache_dir=tmp_path / "local"), api.url, 95).run(progress=False)
        api.requests.clear()
        sharded = build(Pipeline("p", cache_dir=tmp_path / "ray"), api.url, 95).run(
            backend="ray", shards=3, progress=False
        )
        counts = api.prompt_counts()
        # A second run, split otherwise, pays nothing: the shards' answers were merged into
        # the run's cache, and a new split starts from it.
        api.requests.clear()
        rerun = build(RayPipeline("p", cache_dir=tmp_path / "ray"), api.url, 95).run(
            shards=2, progress=False
        )
        assert api.requests == []
    assert rows_of(sharded) == rows_of(local)
    assert sorted(counts) == sorted(f"question {i}" for i in range(95))
    assert set(counts.values()) == {1}  # every prompt asked once, by one shard
    assert sharded.stats["text_generation_0"].rows_out == 95
    assert rows_of(rerun) == rows_of(local)


def test_one_concurrency_budget_holds_across_shards(cluster: None, tmp_path: Path) -> None:
    # Each shard's task would send 10 at once; the endpoint's budget is 6 for all three.
    handler = InFlight(delay=0.05, fail_above=6)
    with fake_api(handler) as api:
        pipeline = build(Pipeline("b", cache_dir=tmp_path), api.url, 120, max_concurrency=6)
        distiset = pipeline.ray().run(shards=3, progress=False)
        assert len(api.requests) == 120
    assert handler.peak <= 6
    assert handler.rejected == 0
    assert len(rows_of(distiset)) == 120


def test_a_killed_worker_is_replaced_and_nothing_answered_is_paid_twice(
    cluster: None, tmp_path: Path
) -> None:
    handler = InFlight(delay=0.03)
    killed: list[int] = []

    def kill_first_shard() -> None:
        pid_file = next_pid_file(tmp_path)
        if pid_file is None:
            return
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and len(api.requests) < 40:
            time.sleep(0.01)
        pid = int(pid_file.read_text())
        os.kill(pid, signal.SIGKILL)
        killed.append(pid)

    with fake_api(handler) as api:
        pipeline = build(Pipeline("k", cache_dir=tmp_path), api.url, 150, max_concurrency=4)
        killer = threading.Thread(target=kill_first_shard, daemon=True)
        killer.start()
        distiset = pipeline.run(backend="ray", shards=2, progress=False)
        killer.join()
        counts = api.prompt_counts()
        one_process = build(Pipeline("k", cache_dir=tmp_path / "local"), api.url, 150)
        expected = rows_of(one_process.run(progress=False))
    assert killed, "the test never found a worker to kill"
    assert rows_of(distiset) == expected
    assert sorted(counts) == sorted(f"question {i}" for i in range(150))
    # Only what was in flight at the kill (at most the budget) is asked again.
    assert sum(counts.values()) - 150 <= 4


def next_pid_file(root: Path) -> Path | None:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        found = sorted(root.rglob("shard-0000-of-0002/worker.pid"))
        if found:
            return found[0]
        time.sleep(0.02)
    return None


@step(inputs=["generation"], step_type="global")
def KeepFirstOfEachLength(inputs: StepInput):  # type: ignore[no-untyped-def]
    """A global step: it needs every row to know which is the first of its length."""
    seen: set[int] = set()
    kept = []
    for row in inputs:
        if len(row["instruction"]) not in seen:
            seen.add(len(row["instruction"]))
            kept.append(row)
    yield kept + [row for row in inputs if len(row["instruction"]) % 3 == 0 and row not in kept]


def judged(pipeline: Pipeline, url: str) -> Pipeline:
    """Generate, keep some rows in a global step, then judge them (distilabel's judge pattern)."""
    llm = OpenAILLM(model="m", base_url=f"{url}/v1", api_key="k", max_concurrency=5)
    with pipeline:
        load = LoadDataFromDicts(
            data=[{"instruction": "q" * (1 + i % 17) + f" {i}"} for i in range(130)],
            batch_size=10,
        )
        generate = TextGeneration(llm=llm, input_batch_size=10)
        judge = TextGeneration(
            name="judge",
            llm=llm,
            input_mappings={"instruction": "generation"},
            output_mappings={"generation": "verdict"},
        )
        (
            load
            >> generate
            >> KeepFirstOfEachLength()
            >> judge
            >> Length(input_mappings={"generation": "verdict"})
        )
    return pipeline


def test_a_global_step_cuts_the_run_into_stages(cluster: None, tmp_path: Path) -> None:
    with fake_api(InFlight(delay=0.005)) as api:
        local = judged(Pipeline("g", cache_dir=tmp_path / "local"), api.url).run(progress=False)
        api.requests.clear()
        sharded = judged(Pipeline("g", cache_dir=tmp_path / "ray"), api.url).run(
            backend="ray", shards=3, progress=False
        )
        counts = api.prompt_counts()
        # Through files on shared storage, also between the stages: the same rows.
        on_storage = judged(Pipeline("g", cache_dir=tmp_path / "ray"), api.url).run(
            backend="ray", shards=3, storage=str(tmp_path / "shared"), progress=False
        )
    assert rows_of(sharded) == rows_of(local)
    assert rows_of(on_storage) == rows_of(local)
    assert len(list((tmp_path / "shared").glob("stage-*/*/*.parquet"))) > 3
    assert set(counts.values()) == {1}
    assert sharded.stats["judge"].rows_out == local.stats["judge"].rows_out
    assert sharded.stats["load_data_from_dicts_0"].rows_out == 130


def test_magpie_generator_shards_make_the_local_rows_once_each(
    cluster: None, tmp_path: Path
) -> None:
    from synthflow.models import ClientvLLM
    from synthflow.steps.tasks import MagpieGenerator
    from tests.servers.completions import openai_server

    def magpie(pipeline: Pipeline, url: str) -> Pipeline:
        with pipeline:
            MagpieGenerator(
                name="magpie",
                llm=ClientvLLM(base_url=f"{url}/v1", magpie_pre_query_template="llama3"),
                num_rows=83,
                batch_size=10,
                # Drawn per row, seeded by its id: a row made at another id would differ.
                system_prompt=[f"You teach subject {i}{'.' * i}" for i in range(7)],
            )
        return pipeline

    def asked(requests: list[Request]) -> Any:
        from collections import Counter

        return Counter(str(r.json) for r in requests if r.path != "/v1/models")

    with fake_api(openai_server()) as api:
        local = magpie(Pipeline("m", cache_dir=tmp_path / "local"), api.url).run(progress=False)
        expected = asked(api.requests)
        runs = {}
        for storage in (None, str(tmp_path / "shared")):
            api.requests.clear()
            pipeline = magpie(Pipeline("m", cache_dir=tmp_path / f"ray-{storage is None}"), api.url)
            runs[storage] = pipeline.run(backend="ray", shards=3, storage=storage, progress=False)
            assert asked(api.requests) == expected  # every request once, by one shard
    assert sum(expected.values()) == 2 * 83  # a user turn and its answer per row
    for sharded in runs.values():
        assert rows_of(sharded) == rows_of(local)
        assert sharded.stats["magpie"].rows_out == 83
    parts = sorted(p.name for p in (tmp_path / "shared").rglob("*.parquet"))
    assert parts == [f"shard-{i:04d}-of-0003.parquet" for i in range(3)]


def test_prompt_of_is_the_instruction() -> None:  # the counters above read prompts this way
    assert prompt_of(Request("POST", "/", {}, {"messages": [{"content": "q"}]})) == "q"


def test_the_cli_runs_a_saved_pipeline_on_ray(
    cluster: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from typer.testing import CliRunner

    from synthflow.cli import app

    config = tmp_path / "pipeline.yaml"
    with Pipeline("cli", cache_dir=tmp_path / "cache") as pipeline:
        LoadDataFromDicts(data=[{"instruction": f"q{i}"} for i in range(40)], batch_size=5) >> (
            TextGeneration(name="generate", llm=OpenAILLM(model="m"))
        )
    pipeline.save(config)
    with fake_api(InFlight(delay=0.0)) as api:
        # The endpoint and key come from the environment, as a user's would: the workers get
        # them from the driver's.
        monkeypatch.setenv("OPENAI_API_KEY", "test-key")
        monkeypatch.setenv("OPENAI_BASE_URL", f"{api.url}/v1")
        monkeypatch.setenv("SYNTHFLOW_CACHE_DIR", str(tmp_path / "cache"))
        args = ["pipeline", "run", "--config", str(config), "--ray", "--shards", "2"]
        shared = ["--ray-storage", str(tmp_path / "shared"), "--ray-checkpoint-every", "0.5"]
        result = CliRunner().invoke(app, [*args, *shared, "--output", str(tmp_path / "out")])
        assert result.exit_code == 0, result.output
        assert len(api.requests) == 40
    assert "shard-0001-of-0002 done" in result.output
    assert len(list((tmp_path / "shared").rglob("shard-*.parquet"))) == 2
    saved = CliRunner().invoke(app, ["pipeline", "run", "--config", str(config), "--shards", "2"])
    assert saved.exit_code == 2
    assert "--ray-address, --shards and --ray-storage go with --ray" in saved.output
    ray_args = ["pipeline", "run", "--config", str(config), "--ray"]
    for extra, message in [
        (["--ray-checkpoint-every", "2"], "--ray-checkpoint-every goes with --ray-storage"),
        (
            [*shared[:2], "--ray-checkpoint-every", "0"],
            "--ray-checkpoint-every: checkpoint_every must be a number of seconds above 0",
        ),
    ]:
        refused = CliRunner().invoke(app, [*ray_args, *extra])
        assert refused.exit_code == 2 and message in refused.output, refused.output


def test_a_loaded_pipeline_is_held_to_the_same_trust_rules_on_ray(
    cluster: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from synthflow.errors import UntrustedPipelineError

    with fake_api(InFlight()) as api:
        with Pipeline("hostile", cache_dir=tmp_path) as written:
            LoadDataFromDicts(data=[{"instruction": "q"}]) >> TextGeneration(
                llm=OpenAILLM(model="m", base_url=f"{api.url}/v1")
            )
        written.save(tmp_path / "p.yaml")
        monkeypatch.setenv("OPENAI_API_KEY", "sk-canary-0123456789")  # not for that host
        loaded = Pipeline.from_yaml(tmp_path / "p.yaml")
        with pytest.raises(UntrustedPipelineError, match="--trust-endpoint"):
            loaded.run(backend="ray", shards=2, progress=False)
        assert api.requests == []


class Flaky:
    """An OpenAI-compatible handler that fails the prompts in ``failing`` (a 500) and answers
    the others."""

    def __init__(self, *failing: int) -> None:
        self.failing = {f"question {i}" for i in failing}

    def fail(self, *numbers: int) -> None:
        self.failing = {f"question {i}" for i in numbers}

    def __call__(self, request: Request) -> Reply:
        if prompt_of(request) in self.failing:
            return Reply(500, {"error": {"message": "try later"}})
        return completion(request)


def flaky_pipeline(cache: Path, url: str) -> Pipeline:
    built = build(Pipeline("p", cache_dir=cache), url, 95)
    built.steps["text_generation_0"].llm.max_retries = 0  # type: ignore[attr-defined]
    return built


def failed_ids(distiset: Any) -> list[int]:
    import orjson

    if distiset.failures is None:
        return []
    lines = distiset.failures.read_bytes().splitlines()
    return sorted(orjson.loads(line)["row_id"] for line in lines)


def test_retry_failed_on_ray_asks_only_the_failed_rows_and_makes_a_local_retrys_dataset(
    cluster: None, tmp_path: Path
) -> None:
    # The same three runs, locally and on Ray: rows 3, 40 and 77 (three shards' blocks) fail;
    # the retry answers 3 and 40 but 77 fails again; a second retry answers it.
    handler = Flaky(3, 40, 77)
    with fake_api(handler) as api:
        local = tmp_path / "local"
        first = flaky_pipeline(local, api.url).run(progress=False)
        handler.fail(77)
        retried = flaky_pipeline(local, api.url).run(retry_failed=True, progress=False)
        assert failed_ids(retried) == [77]  # (the record is replaced by the next run's)
        handler.fail()
        healthy = flaky_pipeline(local, api.url).run(retry_failed=True, progress=False)
        assert failed_ids(healthy) == []

        handler.fail(3, 40, 77)
        on_ray = tmp_path / "ray"
        ray_first = flaky_pipeline(on_ray, api.url).run(backend="ray", shards=3, progress=False)
        assert failed_ids(ray_first) == [3, 40, 77]
        handler.fail(77)
        api.requests.clear()
        ray_retried = flaky_pipeline(on_ray, api.url).run(
            backend="ray", shards=3, retry_failed=True, progress=False
        )
        # Only the failed rows were asked again, each once, by the shard that owns it.
        assert api.prompt_counts() == {"question 3": 1, "question 40": 1, "question 77": 1}
        assert failed_ids(ray_retried) == [77]  # the rows that now succeed left the record
        assert ray_retried.failed_rows == {"text_generation_0": 1}
        assert ray_retried.retried_rows == 3
        assert ray_retried.stats["text_generation_0"].rows_in == 3
        # The last finished run on Ray is the one a local retry starts from.
        handler.fail()
        api.requests.clear()
        again_here = flaky_pipeline(on_ray, api.url).run(retry_failed=True, progress=False)
        assert api.prompt_counts() == {"question 77": 1}
        # A run on Ray that doesn't finish (its budget spent) is the last run: nothing to retry.
        stopped = flaky_pipeline(on_ray, api.url).run(
            backend="ray", shards=3, use_cache=False, max_tokens=1, progress=False
        )
        assert stopped.stop_reason
        with pytest.raises(PipelineValidationError, match="did not finish"):
            flaky_pipeline(on_ray, api.url).run(
                backend="ray", shards=3, retry_failed=True, progress=False
            )
    assert rows_of(ray_first) == rows_of(first)
    assert rows_of(ray_retried) == rows_of(retried)
    assert list(ray_retried["default"]["train"].features) == list(
        retried["default"]["train"].features
    )
    assert rows_of(again_here) == rows_of(healthy)
    assert again_here.failures is None


def test_the_cli_retries_on_ray_the_rows_a_local_run_failed(
    cluster: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from typer.testing import CliRunner

    from synthflow.cli import app

    handler = Flaky(3, 40, 77)
    config = tmp_path / "pipeline.yaml"
    with fake_api(handler) as api:
        pipeline = flaky_pipeline(tmp_path / "cache", api.url)
        with pytest.raises(PipelineValidationError, match="did not finish"):
            pipeline.run(backend="ray", shards=2, retry_failed=True, progress=False)
        first = pipeline.run(progress=False)
        assert failed_ids(first) == [3, 40, 77]
        pipeline.save(config)
        handler.fail()
        api.requests.clear()
        monkeypatch.setenv("SYNTHFLOW_CACHE_DIR", str(tmp_path / "cache"))
        monkeypatch.setenv("OPENAI_API_KEY", "k")  # a saved pipeline keeps no key
        args = ["pipeline", "run", "--config", str(config), "--ray", "--shards", "2"]
        trusted = ["--trust-endpoint", "127.0.0.1", "--allow-module", Length.__module__]
        result = CliRunner().invoke(app, [*args, *trusted, "--retry-failed"])
        assert result.exit_code == 0, result.output
        assert api.prompt_counts() == {"question 3": 1, "question 40": 1, "question 77": 1}
        # Nothing failed is left: a retry now asks nothing and returns the dataset as it is.
        api.requests.clear()
        now = flaky_pipeline(tmp_path / "cache", api.url).run(retry_failed=True, progress=False)
        assert api.requests == []
    with fake_api(completion) as healthy:
        expected = build(Pipeline("p", cache_dir=tmp_path / "ok"), healthy.url, 95).run(
            progress=False
        )
    assert rows_of(now) == rows_of(expected)
    assert now.failures is None


def judged_twice(cache: Path, url: str) -> Pipeline:
    """Two LLM steps: the second (``judge``, no retries) asks about the first's answer."""
    with Pipeline("two", cache_dir=cache) as pipeline:
        load = LoadDataFromDicts(
            data=[{"instruction": f"question {i}"} for i in range(60)], batch_size=10
        )
        llm = OpenAILLM(model="m", base_url=f"{url}/v1", api_key="k")
        judge = TextGeneration(
            name="judge",
            llm=OpenAILLM(model="m", base_url=f"{url}/v1", api_key="k", max_retries=0),
            input_mappings={"instruction": "generation"},
            output_mappings={"generation": "verdict", "model_name": "judge_model"},
        )
        load >> TextGeneration(name="generate", llm=llm) >> judge
    return pipeline


@pytest.mark.parametrize("first", ["local", "ray"])
def test_a_retry_on_the_other_backend_asks_only_the_step_that_failed(
    first: str, cluster: None, tmp_path: Path
) -> None:
    judged = [answer_text(f"question {i}", 0) for i in (3, 25, 41)]  # the judge's prompts
    handler = Flaky()
    handler.failing = set(judged)
    on_ray = {"backend": "ray", "shards": 3}
    with fake_api(handler) as api:
        failed = judged_twice(tmp_path, api.url).run(
            progress=False, **(on_ray if first == "ray" else {})
        )
        assert failed.failed_rows == {"judge": 3}
        handler.fail()
        api.requests.clear()
        retried = judged_twice(tmp_path, api.url).run(
            progress=False, retry_failed=True, **({} if first == "ray" else on_ray)
        )
        # The answers of the step before come from the other backend's run: not asked again.
        assert api.prompt_counts() == dict.fromkeys(judged, 1)
    with fake_api(completion) as healthy:
        expected = judged_twice(tmp_path / "ok", healthy.url).run(progress=False)
    assert rows_of(retried) == rows_of(expected)


class Logged(Step):
    """Writes its name into a column of its name; logs its loads and unloads, with the process
    they happened in, to the file ``log``."""

    log: str

    @property
    def inputs(self) -> list[str]:
        return ["instruction"]

    @property
    def outputs(self) -> list[str]:
        return [self.name]

    def _note(self, what: str) -> None:
        with open(self.log, "a") as file:
            file.write(f"{os.getpid()} {what} {self.name}\n")

    def load(self) -> None:
        self._note("load")

    def unload(self) -> None:
        self._note("unload")

    def process(self, inputs: StepInput) -> Iterator[list[dict[str, Any]]]:
        yield [{**row, self.name: self.name} for row in inputs]


def test_load_groups_load_each_shards_steps_stage_by_stage(cluster: None, tmp_path: Path) -> None:
    log = tmp_path / "loads.log"

    def pipeline(cache: Path) -> Pipeline:
        with Pipeline("staged", cache_dir=cache) as built:
            load = LoadDataFromDicts(
                data=[{"instruction": f"q{i}"} for i in range(60)], batch_size=10
            )
            load >> Logged(name="a", log=str(log)) >> Logged(name="b", log=str(log))
        return built

    local = pipeline(tmp_path / "local").run(progress=False)
    log.unlink()
    sharded = pipeline(tmp_path / "ray").run(
        backend="ray", shards=3, load_groups=[["a"], ["b"]], progress=False
    )
    assert rows_of(sharded) == rows_of(local)
    loaded: dict[str, set[str]] = {}
    loads = 0
    for line in log.read_text().splitlines():
        pid, what, name = line.split()
        held = loaded.setdefault(pid, set())
        if what == "load":
            loads += 1
            assert name != "b" or "a" not in held, log.read_text()  # b never beside a
            held.add(name)
        else:
            held.discard(name)
    assert loads == 6  # each shard loaded each step once


def test_load_groups_with_a_global_step_on_ray(cluster: None, tmp_path: Path) -> None:
    # The global step cuts the Ray run into parts; each keeps the load stages of its own steps,
    # and the source standing for the part before loads with the step it feeds.
    log = tmp_path / "loads.log"

    def pipeline(cache: Path) -> Pipeline:
        with Pipeline("staged-global", cache_dir=cache) as built:
            load = LoadDataFromDicts(data=[{"instruction": f"q{i % 40}"} for i in range(60)])
            dedup = DropDuplicates(name="dedup", columns=["instruction"])
            load >> Logged(name="a", log=str(log)) >> dedup >> Logged(name="b", log=str(log))
        return built

    groups = [["a"], ["dedup"], ["b"]]
    local = pipeline(tmp_path / "local").run(progress=False, load_groups=groups)
    sharded = pipeline(tmp_path / "ray").run(
        backend="ray", shards=2, load_groups=groups, progress=False
    )
    assert rows_of(sharded) == rows_of(local)
    assert len(rows_of(sharded)) == 40
