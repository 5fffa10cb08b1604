"""Pipelines sharded over a Ray cluster of three nodes on this machine: a head that runs no
shards and two worker nodes, one of which is lost mid-run.

Every Ray process binds to 127.0.0.1, keeps its files (and its sockets: their paths must stay
under 108 bytes) in a short temporary directory of its own, and authenticates with a token of
this module's. Teardown stops only the processes this module started, and checks that none
is left.
"""

from __future__ import annotations

import os
import secrets
import shutil
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from synthflow.models import OpenAILLM
from synthflow.pipeline import Pipeline
from synthflow.steps import LoadDataFromDicts, StepInput, step
from synthflow.steps.tasks import TextGeneration
from tests.servers import fake_api
from tests.test_ray import InFlight, rows_of

ray = pytest.importorskip("ray")
cluster_utils = pytest.importorskip("ray.cluster_utils")
pytestmark = [pytest.mark.ray, pytest.mark.timeout(120)]

ROOT = Path(__file__).resolve().parents[1]
WORKER_CPUS = 2  # two shards at once on each worker node
# A node is declared dead after 5 missed checks 0.2 s apart (Ray's default: 16-18 s).
HEALTH_CHECKS = {
    "health_check_initial_delay_ms": 0,
    "health_check_period_ms": 200,
    "health_check_timeout_ms": 500,
    "health_check_failure_threshold": 5,
}


class ThreeNodes:
    """A head node (the driver's, no CPUs for shards) and two worker nodes."""

    def __init__(self, cluster: Any) -> None:
        self.cluster = cluster
        self.head_id = ray.get_runtime_context().get_node_id()

    def worker_node_of(self, pid: int) -> Any:
        """The worker node whose raylet started the Ray worker process ``pid``."""
        parent = int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
        for node in self.cluster.worker_nodes:
            raylets = node.all_processes[ray._private.ray_constants.PROCESS_TYPE_RAYLET]
            if raylets[0].process.pid == parent:
                return node
        raise AssertionError(f"process {pid} (parent {parent}) is on no worker node")

    def add_worker_node(self) -> Any:
        node = self.cluster.add_node(num_cpus=WORKER_CPUS, node_ip_address="127.0.0.1")
        self.cluster.wait_for_nodes()
        return node


@pytest.fixture(scope="module")
def three_nodes() -> Iterator[ThreeNodes]:
    from ray._private.authentication.authentication_utils import is_token_auth_enabled
    from ray._private.authentication_test_utils import reset_auth_token_state

    temp = tempfile.mkdtemp(prefix="rc-", dir="/tmp")
    os.mkdir(f"{temp}/ray")
    environment = {
        "RAY_TMPDIR": temp,  # where Ray writes the address of "the current cluster"
        # Token authentication, as a new local cluster has by default in Ray 2.60, with a
        # token of this module's (none written to ~/.ray).
        "RAY_AUTH_MODE": "token",
        "RAY_AUTH_TOKEN": secrets.token_hex(16),
    }
    # Read when Ray was imported: tests/conftest.py sets it before that.
    assert os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] == "0"
    saved = {name: os.environ.get(name) for name in environment}
    os.environ.update(environment)
    reset_auth_token_state()  # Ray read RAY_AUTH_MODE when it was imported
    cluster = cluster_utils.Cluster(
        initialize_head=True,
        head_node_args={
            "num_cpus": 0,
            "node_ip_address": "127.0.0.1",
            "temp_dir": f"{temp}/ray",
            "include_dashboard": False,
            "_system_config": HEALTH_CHECKS,
        },
    )
    try:
        ray.init(
            address=cluster.address,
            log_to_driver=False,
            # Steps defined in tests pickle by reference to their modules, imported as pytest did.
            runtime_env={"env_vars": {"PYTHONPATH": f"{ROOT}{os.pathsep}{ROOT / 'tests'}"}},
        )
        # Every process of the cluster started with it (a wrong token is refused: checked by
        # hand, as a second driver takes 5 s to fail).
        assert is_token_auth_enabled()
        nodes = ThreeNodes(cluster)
        for _ in range(2):
            nodes.add_worker_node()
        yield nodes
    finally:
        ray.shutdown()
        cluster.shutdown()
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        reset_auth_token_state()
        left = processes_under(temp)
        shutil.rmtree(temp, ignore_errors=True)
        assert not left, f"Ray processes of this module still running: {left}"


def processes_under(temp: str) -> list[str]:
    """The command lines of running processes that name ``temp`` (this module's Ray's)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            command = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        if temp in command:
            found.append(f"{entry.name}: {command[:120]}")
    return found


@step(inputs=["generation"], outputs=["node"])
def RecordNode(inputs: StepInput):  # type: ignore[no-untyped-def]
    """Tags each row with the Ray node that ran it (the driver's in a one-process run)."""
    node = ray.get_runtime_context().get_node_id() if ray.is_initialized() else "local"
    for row in inputs:
        row["node"] = node
    yield inputs


def build(pipeline: Pipeline, url: str, rows: int, max_concurrency: int) -> Pipeline:
    with pipeline:
        load = LoadDataFromDicts(
            data=[{"instruction": f"question {i}"} for i in range(rows)], batch_size=10
        )
        llm = OpenAILLM(
            model="m", base_url=f"{url}/v1", api_key="k", max_concurrency=max_concurrency
        )
        load >> TextGeneration(llm=llm, input_batch_size=10) >> RecordNode()
    return pipeline


def without_nodes(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{k: v for k, v in row.items() if k != "node"} for row in rows]


def one_process_rows(root: Path, rows: int) -> list[dict[str, Any]]:
    """What one process makes of ``rows`` prompts (answers depend on the prompt alone)."""
    with fake_api(InFlight(delay=0.0)) as api:
        pipeline = build(Pipeline("one", cache_dir=root / "one-process"), api.url, rows, 8)
        return without_nodes(rows_of(pipeline.run(progress=False)))


def test_shards_run_on_several_nodes_and_make_the_one_process_dataset(
    three_nodes: ThreeNodes, tmp_path: Path
) -> None:
    with fake_api(InFlight(delay=0.01)) as api:
        sharded = build(Pipeline("spread", cache_dir=tmp_path), api.url, 120, 8).run(
            backend="ray", shards=4, progress=False
        )
        counts = api.prompt_counts()
    rows = rows_of(sharded)
    assert without_nodes(rows) == one_process_rows(tmp_path, 120)
    assert sorted(counts) == sorted(f"question {i}" for i in range(120))
    assert set(counts.values()) == {1}
    nodes = {row["node"] for row in rows}
    assert len(nodes) == 2, "the four shards did not run on both worker nodes"
    assert three_nodes.head_id not in nodes


def test_the_budget_holds_while_its_actor_is_killed_and_restarted(
    three_nodes: ThreeNodes, tmp_path: Path
) -> None:
    budget = 6
    restarted: dict[str, Any] = {}

    def kill_the_budget_actor() -> None:
        name = wait_for(lambda: next(iter(budget_actors()), None))
        wait_for(lambda: len(api.requests) >= 12 or None)
        keeper = ray.get_actor(name)
        ray.kill(keeper, no_restart=False)
        # Ray starts it again; the workers renew with it, and the run goes on.
        restarted["report"] = wait_for(lambda: report_of(keeper))
        restarted["requests by then"] = len(api.requests)

    # More than the budget is asked for at once (4 shards x 10 rows a batch); the server
    # refuses what goes over it.
    handler = InFlight(delay=0.1, fail_above=budget)
    with fake_api(handler) as api:
        pipeline = build(Pipeline("keeper", cache_dir=tmp_path), api.url, 300, budget)
        killer = threading.Thread(target=kill_the_budget_actor, daemon=True)
        killer.start()
        try:
            distiset = pipeline.run(backend="ray", shards=4, progress=False)
        finally:
            killer.join()
        counts = api.prompt_counts()
    assert restarted, "the test never killed the budget actor"
    assert restarted["report"]["limit"] == budget
    assert restarted["requests by then"] < 250, "the run was nearly over before the restart"
    assert handler.peak <= budget
    assert handler.rejected == 0
    assert without_nodes(rows_of(distiset)) == one_process_rows(tmp_path, 300)
    assert set(counts.values()) == {1}
    assert budget_actors() == []  # the driver stops them at the end of the stage


def report_of(keeper: Any) -> dict[str, Any] | None:
    """The budget actor's report once it answers again (Ray refuses calls while restarting)."""
    try:
        report: dict[str, Any] = ray.get(keeper.report.remote())
    except ray.exceptions.RayActorError:
        return None
    return report if report["peak_granted"] else None  # a worker had a share from it


def budget_actors() -> list[str]:
    from synthflow.distributed.ray_backend import KEEPER_PREFIX

    return [n for n in ray.util.list_named_actors() if n.startswith(KEEPER_PREFIX)]


def test_a_node_lost_mid_run_costs_only_what_was_in_flight(
    three_nodes: ThreeNodes, tmp_path: Path
) -> None:
    budget = 4
    lost: list[str] = []

    def remove_the_node_of_shard_0() -> None:
        pid_file = wait_for(lambda: next(tmp_path.rglob("shard-0000-of-0004/worker.pid"), None))
        wait_for(lambda: len(api.requests) >= 60 or None)
        node = three_nodes.worker_node_of(int(pid_file.read_text()))
        lost.append(node.node_id)
        three_nodes.cluster.remove_node(node, allow_graceful=False)

    with fake_api(InFlight(delay=0.03)) as api:
        pipeline = build(Pipeline("lost", cache_dir=tmp_path), api.url, 200, budget)
        remover = threading.Thread(target=remove_the_node_of_shard_0, daemon=True)
        remover.start()
        try:
            distiset = pipeline.run(backend="ray", shards=4, progress=False)
        finally:
            remover.join()
            three_nodes.add_worker_node()  # the next test has two worker nodes again
        counts = api.prompt_counts()
    assert lost, "the test never found the node to remove"
    rows = rows_of(distiset)
    assert without_nodes(rows) == one_process_rows(tmp_path, 200)
    assert sorted(counts) == sorted(f"question {i}" for i in range(200))
    # The lost node's shards resumed from their directories (this machine's disk, which the
    # nodes share): only what was in flight at the loss (at most the budget) is asked again.
    assert sum(counts.values()) - 200 <= budget


def wait_for(found: Any, seconds: float = 60) -> Any:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        value = found()
        if value is not None:
            return value
        time.sleep(0.01)
    raise AssertionError("timed out waiting")


WITHOUT_STORAGE = pytest.mark.xfail(
    strict=True,
    raises=AssertionError,
    reason="without storage, a shard's directory is on its node's own disk only: re-run on "
    "another node, it starts afresh (docs/scaling-on-ray.md, 'Cache and resume across nodes')",
)


@pytest.mark.parametrize(
    "with_storage", [True, pytest.param(False, marks=WITHOUT_STORAGE)], ids=["storage", "none"]
)
def test_a_shard_rerun_on_another_node_resumes_without_the_lost_disk(
    three_nodes: ThreeNodes, tmp_path: Path, with_storage: bool
) -> None:
    """As above, but the lost node's disk goes with it, as on a cluster of machines."""
    budget = 4
    storage = tmp_path / "shared"
    moved: list[Path] = []
    checkpointed: set[str] = set()  # the keys the lost attempts had checkpointed

    def remove_the_node_of_shard_0_and_its_disk() -> None:
        pid_files = wait_for(lambda: pid_files_of(tmp_path, 4))
        wait_for(lambda: len(api.requests) >= 60 or None)
        pids = {file: int(file.read_text()) for file in pid_files}
        node = three_nodes.worker_node_of(pids[min(pid_files)])
        lost = {f: pid for f, pid in pids.items() if three_nodes.worker_node_of(pid) is node}
        three_nodes.cluster.remove_node(node, allow_graceful=False)
        wait_for(lambda: all(not Path(f"/proc/{pid}").exists() for pid in lost.values()) or None)
        for file in lost:  # read before the re-runs start (checked next), so theirs only
            checkpointed.update(stored_keys(storage / "stage-0", file.parent.name))
        for file, pid in lost.items():
            if int(file.read_text()) != pid:
                pytest.fail(f"{file.parent.name} ran again before its directory could go")
            moved.append(file.parent.rename(file.parent.with_name(file.parent.name + ".lost")))

    with fake_api(InFlight(delay=0.03)) as api:
        pipeline = build(Pipeline("moved", cache_dir=tmp_path), api.url, 200, budget)
        if with_storage:  # checkpoints every 50 ms: several before the node goes
            pipeline.ray(checkpoint_every=0.05)
        remover = threading.Thread(target=remove_the_node_of_shard_0_and_its_disk, daemon=True)
        remover.start()
        try:
            distiset = pipeline.run(
                backend="ray",
                shards=4,
                storage=str(storage) if with_storage else None,
                progress=False,
            )
        finally:
            remover.join()
            three_nodes.add_worker_node()
        counts = api.prompt_counts()
    if not moved:
        pytest.fail("the test never removed a node")
    if without_nodes(rows_of(distiset)) != one_process_rows(tmp_path, 200):
        pytest.fail("the dataset differs from a one-process run's")  # not the expected failure
    again = sum(counts.values()) - 200
    if not with_storage:
        # What the lost attempts had been answered is asked again (43-46 of 200 here).
        assert again <= budget, f"{again} prompts asked again, {budget} in flight at most"
        return
    # Asked again: what was in flight at the loss (at most the budget), and what the lost
    # attempts had been answered (their caches, left on the lost disk) since their last
    # checkpoint; never what they had checkpointed.
    answered = set().union(*(keys_in(d / "llm-cache.sqlite") for d in moved))
    assert checkpointed, "the lost attempts checkpointed nothing: the test proves nothing"
    assert checkpointed <= answered
    since_checkpoint = len(answered - checkpointed)
    assert again <= budget + since_checkpoint, (again, budget, since_checkpoint)
    # The run's cache has every answer, whichever node's shard paid for it.
    assert len(keys_in(next(tmp_path.rglob("ray/stage-0/llm-cache.sqlite")))) == 200


def stored_keys(storage: Path, shard: str) -> set[str]:
    from synthflow.distributed.checkpoints import read_segment, segments, shard_state

    urls = segments(shard_state(str(storage), shard))
    return {entry[0] for url in urls for entry in read_segment(url)}


def keys_in(cache_file: Path) -> set[str]:
    from synthflow.models.callpath.cache import ResponseCache

    with ResponseCache(cache_file) as cache:
        return {entry[0] for _, entry in cache.entries()}


def pid_files_of(root: Path, shards: int) -> list[Path] | None:
    found = sorted(root.rglob(f"shard-*-of-{shards:04d}/worker.pid"))
    return found if len(found) == shards else None
