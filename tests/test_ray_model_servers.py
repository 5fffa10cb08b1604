"""A local-model step on Ray: served by model-server actors on CPU bundles, with a stand-in
OpenAI-compatible server (``tests.servers.openai_server``) in place of vLLM's.

vLLM is not installed here: a shard that loaded the model itself would fail, so a run that
succeeds asked the servers for every answer. What needs a GPU (vLLM's server itself, GPU
bundles, tensor parallelism over NCCL) is not tested here.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import orjson
import pytest

from synthflow.distributed.model_servers import ModelServer, start_model_servers
from synthflow.distributed.serving import ModelServerSettings, served_steps
from synthflow.errors import ModelServerError
from synthflow.models import ClientvLLM
from synthflow.models.llms.local.vllm import vLLM
from synthflow.pipeline import Pipeline
from synthflow.steps import LoadDataFromDicts, StepResources
from synthflow.steps.tasks import MagpieGenerator, TextGeneration
from tests.test_model_servers import STAND_IN, gone, served
from tests.test_ray import Length, rows_of

ray = pytest.importorskip("ray")
pytestmark = [pytest.mark.ray, pytest.mark.timeout(300)]

ROWS = 90


def build(pipeline: Pipeline, llm: Any, replicas: int = 1) -> Pipeline:
    with pipeline:
        load = LoadDataFromDicts(
            data=[{"instruction": f"question {i}"} for i in range(ROWS)], batch_size=10
        )
        generate = TextGeneration(
            name="generate",
            llm=llm,
            input_batch_size=10,
            resources=StepResources(replicas=replicas),
        )
        load >> generate >> Length()
    return pipeline


def events(record: Path, kind: str) -> list[dict[str, Any]]:
    if not record.exists():
        return []
    lines = [orjson.loads(line) for line in record.read_bytes().splitlines()]
    return [e for e in lines if e["event"] == kind]


def stand_in(record: Path, delay: float = 0.0) -> ModelServerSettings:
    command = (*STAND_IN, "--record", str(record), "--delay", str(delay))
    return ModelServerSettings(command=command, bundle={"CPU": 1}, startup_timeout=60)


def test_a_served_vllm_step_makes_the_dataset_its_client_makes(
    cluster: None, tests_on_path: None, tmp_path: Path
) -> None:
    # The same stand-in server, started once for a one-process run through the client class.
    kwargs: dict[str, Any] = {"temperature": 0.7, "top_k": 5}
    local_record = tmp_path / "local.jsonl"
    fleet = start_model_servers(
        ray,
        "local",
        served_steps({"g": TextGeneration(llm=vLLM(model="m"))}),
        stand_in(local_record),
    )
    try:
        url = fleet.endpoints["g"][0]
        client = ClientvLLM(
            model="m",
            base_url=f"{url}/v1",
            generation_kwargs={"temperature": 0.7, "extra_body": {"top_k": 5}},
        )
        local = build(Pipeline("s", cache_dir=tmp_path / "local"), client).run(progress=False)
    finally:
        fleet.stop(ray)

    record = tmp_path / "served.jsonl"
    # 3 shards on 2 replicas: replica 0 serves shards 0 and 2, under one budget of 4.
    llm = vLLM(model="m", generation_kwargs=kwargs, max_batch_size=4, dtype="float16")
    pipeline = build(Pipeline("s", cache_dir=tmp_path / "ray"), llm, replicas=2)
    served = pipeline.ray(model_servers=stand_in(record, delay=0.1)).run(shards=3, progress=False)

    assert rows_of(served) == rows_of(local)
    assert {row["model_name"] for row in rows_of(served)} == {"m"}
    starts, requests = events(record, "start"), events(record, "request")
    assert len(starts) == 2 and all("--dtype" in s["argv"] for s in starts)
    prompts = Counter(r["body"]["messages"][-1]["content"] for r in requests)
    assert prompts == Counter(f"question {i}" for i in range(ROWS))  # each once, all served
    by_port = Counter(r["port"] for r in requests)
    assert len(by_port) == 2 and min(by_port.values()) >= ROWS // 3  # both replicas worked
    # The local class's sampling settings, in the request: its default max_tokens too.
    body = requests[0]["body"]
    assert (body["max_tokens"], body["temperature"], body["top_k"]) == (512, 0.7, 5)
    # One budget per replica: max_batch_size in flight at most, and reached.
    peaks = {port: max(r["in_flight"] for r in requests if r["port"] == port) for port in by_port}
    assert set(peaks.values()) == {4}, peaks
    for start in starts:  # no server outlives the run
        assert gone(start["pid"])
    assert served.stats["generate"].rows_out == ROWS

    # Run again, split otherwise, on new servers (new ports): every answer is in the cache.
    record.unlink()
    again = build(Pipeline("s", cache_dir=tmp_path / "ray"), llm, replicas=1)
    rerun = again.ray(model_servers=stand_in(record)).run(shards=2, progress=False)
    assert len(events(record, "start")) == 1 and events(record, "request") == []
    assert rows_of(rerun) == rows_of(local)


def test_magpie_is_served_through_raw_completions(
    cluster: None, tests_on_path: None, tmp_path: Path
) -> None:
    def magpie(pipeline: Pipeline, llm: Any) -> Pipeline:
        with pipeline:
            MagpieGenerator(name="magpie", llm=llm, num_rows=12, n_turns=1, batch_size=4)
        return pipeline

    record = tmp_path / "served.jsonl"
    llm = vLLM(model="m", magpie_pre_query_template="llama3")
    served = magpie(Pipeline("mp", cache_dir=tmp_path / "ray"), llm)
    rows = rows_of(served.ray(model_servers=stand_in(record)).run(shards=2, progress=False))
    fleet = start_model_servers(
        ray, "local", served_steps({"g": TextGeneration(llm=llm)}), stand_in(tmp_path / "l")
    )
    try:
        client = ClientvLLM(
            model="m", base_url=f"{fleet.endpoints['g'][0]}/v1", magpie_pre_query_template="llama3"
        )
        local = rows_of(magpie(Pipeline("mp", cache_dir=tmp_path / "local"), client).run())
    finally:
        fleet.stop(ray)
    assert rows == local and len(rows) == 12
    assert rows[0]["instruction"].startswith("a question after a prompt of")
    paths = Counter(r["path"] for r in events(record, "request"))
    assert paths == {"/v1/completions": 12, "/v1/chat/completions": 12}


def test_a_server_that_fails_to_start_stops_the_run_before_any_shard(
    cluster: None, tests_on_path: None, tmp_path: Path
) -> None:
    crash = (
        "{python}",
        "-c",
        "import sys; print('RuntimeError: CUDA out of memory', file=sys.stderr); sys.exit(1)",
    )
    settings = ModelServerSettings(command=crash, bundle={"CPU": 1}, startup_timeout=60)
    pipeline = build(Pipeline("f", cache_dir=tmp_path), vLLM(model="m"), replicas=2)
    with pytest.raises(ModelServerError) as failed:
        pipeline.ray(model_servers=settings).run(shards=2, progress=False)
    message = str(failed.value)
    assert "\n" not in message
    assert "step 'generate' exited with code 1" in message
    assert "RuntimeError: CUDA out of memory" in message
    assert not list(tmp_path.rglob("shards"))  # no shard started
    groups = ray.util.placement_group_table().values()
    assert all(g["state"] == "REMOVED" for g in groups)  # the bundles were given back


def test_a_cluster_without_room_for_the_bundles_says_what_was_asked(
    cluster: None, tmp_path: Path
) -> None:
    settings = ModelServerSettings(placement_timeout=1)  # GPU bundles, on a CPU-only cluster
    llm = vLLM(model="m", tensor_parallel_size=2)
    pipeline = build(Pipeline("room", cache_dir=tmp_path), llm, replicas=2)
    with pytest.raises(ModelServerError, match=r"no room .*'generate': 2 x 2 x \{'GPU': 1\}"):
        pipeline.ray(model_servers=settings).run(shards=2, progress=False)
    groups = ray.util.placement_group_table().values()
    assert all(g["state"] == "REMOVED" for g in groups)


def test_a_killed_server_actor_takes_its_server_process_with_it(
    cluster: None, tests_on_path: None, tmp_path: Path
) -> None:
    served = served_steps({"g": TextGeneration(llm=vLLM(model="m"))})
    fleet = start_model_servers(ray, "kill", served, stand_in(tmp_path / "r.jsonl"))
    try:
        pid = ray.get(fleet.servers[0].pid.remote())
        ray.kill(fleet.servers[0])
        assert gone(pid)
    finally:
        fleet.stop(ray)


def dying_once(
    record: Path, at: int, restarts: int = 3, *, with_actor: bool = False
) -> ModelServerSettings:
    """The stand-in server, which kills itself (or its actor: ``with_actor``) on its
    ``at``-th request the first time."""
    marker = str(record.with_suffix(".died"))
    dying = ["--die-at", str(at), "--die-once", marker] + ["--kill-parent"] * with_actor
    command = (*stand_in(record, delay=0.05).command, *dying)
    return ModelServerSettings(
        command=command, bundle={"CPU": 1}, startup_timeout=60, restarts=restarts
    )


@pytest.mark.parametrize("with_actor", [False, True], ids=["server", "server-and-actor"])
def test_a_server_that_dies_mid_run_is_started_again_and_no_row_fails(
    with_actor: bool, cluster: None, tests_on_path: None, tmp_path: Path
) -> None:
    here = ModelServer("g")  # the one-process run, through the client class
    try:
        url, _ = here.start(served(vLLM(model="m")), STAND_IN, 30)
        client = ClientvLLM(model="m", base_url=f"{url}/v1")
        local = build(Pipeline("k", cache_dir=tmp_path / "local"), client).run(progress=False)
    finally:
        here.stop()

    record = tmp_path / "served.jsonl"
    pipeline = build(Pipeline("k", cache_dir=tmp_path / "ray"), vLLM(model="m", max_batch_size=4))
    settings = dying_once(record, at=ROWS // 3, with_actor=with_actor)
    served_run = pipeline.ray(model_servers=settings).run(shards=2, progress=False)

    # It died on its 30th request, with 4 in flight (its actor too: Ray made that again) ...
    starts = events(record, "start")
    assert len(starts) == 2 and starts[1]["argv"] == starts[0]["argv"]  # ... and came back
    assert (starts[1]["ppid"] != starts[0]["ppid"]) == with_actor  # started by a new actor
    assert served_run.failed_rows == {}
    assert rows_of(served_run) == rows_of(local)
    answered = Counter(r["body"]["messages"][-1]["content"] for r in events(record, "request"))
    assert set(answered) == {f"question {i}" for i in range(ROWS)}


def test_a_server_that_cant_come_back_stops_the_run_in_one_line(
    cluster: None, tests_on_path: None, tmp_path: Path
) -> None:
    record = tmp_path / "served.jsonl"
    pipeline = build(Pipeline("k", cache_dir=tmp_path), vLLM(model="m", max_batch_size=4))
    with pytest.raises(ModelServerError) as lost:
        pipeline.ray(model_servers=dying_once(record, at=10, restarts=0)).run(
            shards=2, progress=False
        )
    message = str(lost.value)
    assert "\n" not in message
    assert "step 'generate'" in message and "no restarts left" in message
    assert len(events(record, "start")) == 1
    groups = ray.util.placement_group_table().values()
    assert all(g["state"] == "REMOVED" for g in groups)  # the bundles were given back
