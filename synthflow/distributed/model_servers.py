"""Model-server replicas for a Ray run: their placement groups, processes and URLs.

Each replica of a served step (``synthflow.distributed.serving``) gets a placement group of
``tensor_parallel_size`` bundles (``{"GPU": 1}`` each by default) packed on one node. A
``ModelServer`` actor in bundle 0 starts the server process (vLLM's OpenAI-compatible server by
default) on a free port of its node, with ``CUDA_VISIBLE_DEVICES`` naming the GPUs of every
bundle: ``BundleHolder`` actors hold bundles 1..N-1 and say which GPUs Ray gave them. The
actor returns the server's URL once ``GET /v1/models`` answers.

The process never outlives its actor: it is stopped (its whole process group: vLLM's
tensor-parallel workers too) when the run ends, and it is started with the parent-death signal
set, so an actor killed outright (``ray.kill``, its worker lost) takes its server with it.

A server that exits mid-run (killed, out of memory) is started again by its actor, on the same
port, up to ``ModelServerSettings.restarts`` times; an actor whose worker dies (its server with
it) is made again by Ray, and starts the server as its predecessor did, from a file it left on
the node. The shards' clients keep the URL and retry their calls with backoff while it comes
back (``ServedClient.replica_wait``), so no row fails for it. One that can't come back (its
restarts spent, a restart that fails) ends the run with a one-line ``ModelServerError``: the
driver waits on each actor's ``lost()`` alongside the shards.

``ModelServer`` is a plain class: Ray makes it an actor in ``start_model_servers``; tests run
it in-process too.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any

import orjson

from synthflow.distributed.serving import ModelServerSettings, ServedStep, served_plan
from synthflow.errors import ModelServerError

if TYPE_CHECKING:
    from synthflow.pipeline._validate import Plan

__all__ = ["BundleHolder", "ModelServer", "ModelServers", "start_model_servers"]

_TAIL_LINES = 15
_STOP_GRACE_SECONDS = 30.0  # vLLM frees its GPUs and workers on SIGTERM


class ModelServer:
    """One server process for one replica of a served step."""

    def __init__(self, step: str, restarts: int = 0) -> None:
        self.step = step
        self._process: subprocess.Popen[bytes] | None = None
        self._files: Path | None = None  # its output, its chat template
        self._url = ""
        self._argv: list[str] = []
        self._env: dict[str, str] = {}
        self._restarts_left = restarts
        self._stopping = threading.Event()
        self._lost = threading.Event()
        self._why_lost = ""
        atexit.register(self.stop)  # an actor ended gracefully (``__ray_terminate__``)
        recipe = _recipe_file()
        if recipe is not None and recipe.exists():  # Ray made this actor again: serve again
            self._come_back(recipe)

    def _come_back(self, recipe: Path) -> None:
        """Start the server of the actor this one replaces (its worker died, and the server
        with it), as it was started: the same argv, port, GPUs and files; the shards' calls
        wait for it. If it can't start, ``lost()`` says why."""
        saved = orjson.loads(recipe.read_bytes())
        self._argv, self._url, self._files = saved["argv"], saved["url"], Path(saved["files"])
        self._env = _server_environment(saved["gpus"])
        timeout = float(saved["startup_timeout"])
        if self._start_again("was lost with its actor", timeout):
            self._supervise(timeout)

    def start(
        self,
        served: ServedStep,
        command: Sequence[str],
        startup_timeout: float,
        other_gpus: Sequence[str] = (),
    ) -> tuple[str, bool]:
        """Start the server; once it answers, return its URL (``http://host:port``) and
        whether it serves ``PLAIN_CHAT_TEMPLATE`` (the tokenizer has no chat template, and the
        local class would fall back to the plain one)."""
        plain = served.tokenizer is not None and not served.tokenizer.has_chat_template()
        if plain:
            served = served.with_plain_template()
        host = _node_host()
        port = _free_port(host)
        self._files = Path(tempfile.mkdtemp(prefix="synthflow-server-"))
        template_file = None
        if served.chat_template is not None:
            written = self._files / "chat_template.jinja"
            written.write_text(served.chat_template, encoding="utf-8")
            template_file = str(written)
        self._argv = served.command(tuple(command), host, port, template_file)
        gpus = [*_own_gpus(), *other_gpus]
        self._env = _server_environment(gpus)
        self._url = f"http://{host}:{port}"
        self._launch(startup_timeout)
        recipe = _recipe_file()
        if recipe is not None:  # for the actor Ray makes again if this one's worker dies
            saved = {"argv": self._argv, "url": self._url, "files": str(self._files)}
            recipe.write_bytes(
                orjson.dumps({**saved, "gpus": gpus, "startup_timeout": startup_timeout})
            )
        self._supervise(startup_timeout)
        return self._url, plain

    def _supervise(self, startup_timeout: float) -> None:
        threading.Thread(
            target=self._keep_serving,
            args=(startup_timeout,),
            name=f"synthflow-server-{self.step}",
            daemon=True,
        ).start()

    def _launch(self, startup_timeout: float) -> None:
        """Start the process and wait until it answers (``ModelServerError`` if it doesn't)."""
        assert self._files is not None
        with (self._files / "output.log").open("ab") as output:
            try:
                self._process = subprocess.Popen(
                    self._argv,
                    stdin=subprocess.DEVNULL,
                    stdout=output,
                    stderr=subprocess.STDOUT,  # vLLM logs to stdout, tracebacks to stderr
                    env=self._env,
                    start_new_session=True,  # its own process group: stopped as a whole
                    preexec_fn=_die_with_parent(),
                )
            except OSError as exc:
                self.stop()
                raise ModelServerError(
                    f"the model server of step {self.step!r} can't start ({exc}); check "
                    "ModelServerSettings.command"
                ) from None
        if self._stopping.is_set():  # stopped while starting again: ``stop`` may have missed it
            _stop_group(self._process)
            return
        self._wait_until_ready(startup_timeout)

    def _keep_serving(self, startup_timeout: float) -> None:
        """Start the server again, on its port, each time it exits before the run stops it,
        while restarts are left; else mark the replica lost. Runs in its own thread, which
        stays alive as long as the process it started (the parent-death signal is tied to
        the thread that started the process)."""
        while True:
            process = self._process
            assert process is not None
            code = process.wait()
            if self._stopping.is_set():
                return
            if self._restarts_left <= 0:
                self._give_up(f"exited with code {code} and has no restarts left")
                return
            self._restarts_left -= 1
            if not self._start_again(f"exited with code {code}", startup_timeout):
                return

    def _start_again(self, what: str, startup_timeout: float) -> bool:
        """Start the server again after it ``what``; False (and lost) if it can't be."""
        print(
            f"[synthflow] the model server of step {self.step!r} {what}; starting it again "
            f"at {self._url}",
            file=sys.stderr,
        )
        try:
            self._launch(startup_timeout)
        except ModelServerError as exc:
            self._give_up(f"{what} and could not be started again: {exc}")
            return False
        return True

    def _give_up(self, why: str) -> None:
        self._why_lost = f"the model server of step {self.step!r} at {self._url} {why}"
        self._lost.set()

    def lost(self) -> str:
        """Wait until the server is lost for good (it exited and can't be started again) and
        say why; never returns while it serves. The driver waits on it beside the shards."""
        self._lost.wait()
        return self._why_lost

    def pid(self) -> int | None:
        return self._process.pid if self._process is not None else None

    def stop(self) -> None:
        """Stop the server and every process it started; idempotent."""
        self._stopping.set()
        process = self._process
        if process is not None:
            _stop_group(process)
        if self._files is not None:
            shutil.rmtree(self._files, ignore_errors=True)
            self._files = None
        recipe = _recipe_file()
        if recipe is not None:
            recipe.unlink(missing_ok=True)

    def _wait_until_ready(self, timeout: float) -> None:
        # A server loading a model has no event to wait on but its port: ask it, waiting on the
        # process in between (so a crash is seen at once), at growing intervals.
        assert self._process is not None
        deadline = time.monotonic() + timeout
        pause = 0.05
        while not _answers(f"{self._url}/v1/models"):
            code = self._process.poll()
            if code is not None:
                self._fail(f"exited with code {code} before it answered")
            left = deadline - time.monotonic()
            if left <= 0:
                self._fail(
                    f"did not answer {self._url}/v1/models within {timeout:g}s (a large model "
                    "may need a longer ModelServerSettings.startup_timeout)"
                )
            with contextlib.suppress(subprocess.TimeoutExpired):
                self._process.wait(timeout=min(pause, left))
            pause = min(pause * 2, 2.0)

    def _fail(self, what: str) -> None:
        tail = self._tail()
        assert self._process is not None
        argv = " ".join(str(a) for a in self._process.args)  # type: ignore[union-attr]
        self.stop()
        raise ModelServerError(
            f"the model server of step {self.step!r} {what}; command: {argv[:300]}; "
            f"its last output: {tail or '(none)'}"
        )

    def _tail(self) -> str:
        log_file = self._files / "output.log" if self._files is not None else None
        if log_file is None or not log_file.exists():
            return ""
        with log_file.open("rb") as log:
            log.seek(0, os.SEEK_END)
            log.seek(max(0, log.tell() - 16_384))
            text = log.read().decode("utf-8", "replace")
        lines = [line.strip() for line in text.splitlines() if line.strip()]
        return " | ".join(lines[-_TAIL_LINES:])[-2000:]


class BundleHolder:
    """Holds one bundle of a replica's placement group; says which GPUs Ray gave it."""

    def gpu_ids(self) -> list[str]:
        return _own_gpus()


# -- the run's fleet (driver side) ----------------------------------------------------------------


@dataclass
class ModelServers:
    """The running replicas of a run's served steps."""

    served: dict[str, ServedStep]
    endpoints: dict[str, list[str]] = field(default_factory=dict)
    """The replicas' URLs, by step."""
    servers: list[Any] = field(default_factory=list)
    holders: list[Any] = field(default_factory=list)
    groups: list[Any] = field(default_factory=list)
    replica_wait: float = 0.0
    """Seconds a shard's call waits for a replica being started again."""
    lost: list[Any] = field(default_factory=list)
    """The replicas' ``lost()`` calls: one resolves (or fails, its actor dead) when a replica
    can't serve again; the driver waits on them beside the shards."""
    names: list[str] = field(default_factory=list)
    """Each server's step and replica, in the order of ``servers``."""

    def plans(self, plan: Plan, count: int) -> list[Plan]:
        """The plan of each of ``count`` shards: served steps call a replica of their server,
        shards spread round-robin over the replicas. Shards calling the same replicas share one
        plan object."""
        sizes = [len(self.endpoints[name]) for name in self.served]
        made: dict[tuple[int, ...], Plan] = {}
        result = []
        for shard in range(count):
            key = tuple(shard % size for size in sizes)
            if key not in made:
                made[key] = served_plan(plan, self.served, self.endpoints, shard, self.replica_wait)
            result.append(made[key])
        return result

    def lost_error(self, ray: ModuleType, ref: Any) -> ModelServerError:
        """The one-line error of the replica whose ``lost()`` call ``ref`` has ended."""
        try:
            why = str(ray.get(ref))
        except ray.exceptions.RayError as exc:
            name = self.names[self.lost.index(ref)]
            lost = type(exc).__name__
            why = f"the model server actor of {name} was lost, its restarts spent ({lost})"
        return ModelServerError(
            f"{why}; the run stopped: run it again to resume (answers received are cached)"
        )

    def stop(self, ray: ModuleType) -> None:
        """Stop every server, then free the actors and their bundles."""
        with contextlib.suppress(Exception):  # an actor already dead has nothing to stop
            ray.get([server.stop.remote() for server in self.servers], timeout=60)
        for actor in [*self.servers, *self.holders]:
            ray.kill(actor)
        from ray.util.placement_group import remove_placement_group

        for group in self.groups:
            remove_placement_group(group)


def start_model_servers(
    ray: ModuleType, run: str, served: Mapping[str, ServedStep], settings: ModelServerSettings
) -> ModelServers:
    """Start every replica of every served step; return once all of them answer. On a failure
    the replicas started so far are stopped and ``ModelServerError`` says why."""
    from ray.util.placement_group import placement_group
    from ray.util.scheduling_strategies import PlacementGroupSchedulingStrategy

    fleet = ModelServers(dict(served), replica_wait=settings.startup_timeout)
    try:
        replicas: list[tuple[ServedStep, Any, list[str]]] = []  # (step, server, holders' GPUs)
        for entry in served.values():
            for _ in range(entry.replicas):
                bundles = [dict(settings.bundle)] * entry.tensor_parallel_size
                fleet.groups.append(placement_group(bundles, strategy="STRICT_PACK"))
        _wait_for_room(ray, fleet.groups, served, settings)
        groups = iter(fleet.groups)
        for entry in served.values():
            for replica in range(entry.replicas):
                group = next(groups)

                def in_bundle(index: int, group: Any = group) -> dict[str, Any]:
                    strategy = PlacementGroupSchedulingStrategy(
                        group, placement_group_bundle_index=index
                    )
                    return {"scheduling_strategy": strategy, **_actor_resources(settings.bundle)}

                # Threaded: ``lost()`` waits in one thread while the others answer. Made
                # again if its worker dies (its server dies with it), with the calls to it.
                server = (
                    ray.remote(ModelServer)
                    .options(
                        name=f"synthflow:{run}:{entry.step}:{replica}",
                        max_concurrency=4,
                        max_restarts=settings.restarts,
                        max_task_retries=-1,
                        **in_bundle(0),
                    )
                    .remote(entry.step, settings.restarts)
                )
                holders = [
                    ray.remote(BundleHolder).options(**in_bundle(i)).remote()
                    for i in range(1, entry.tensor_parallel_size)
                ]
                fleet.servers.append(server)
                fleet.names.append(f"step {entry.step!r} (replica {replica})")
                fleet.holders += holders
                gpus = [g for ids in ray.get([h.gpu_ids.remote() for h in holders]) for g in ids]
                replicas.append((entry, server, gpus))
        starts = [
            (entry, server.start.remote(entry, settings.command, settings.startup_timeout, gpus))
            for entry, server, gpus in replicas
        ]
        for entry, ref in starts:  # all start at once; the first failure is the one told
            url, plain = _server_result(ray, ref)
            fleet.endpoints.setdefault(entry.step, []).append(url)
            if plain:  # the shards' client stops where the plain template's answers end
                fleet.served[entry.step] = entry.with_plain_template()
    except BaseException:
        fleet.stop(ray)
        raise
    fleet.lost = [server.lost.remote() for server in fleet.servers]
    for name, urls in fleet.endpoints.items():
        print(f"[synthflow] step {name!r} served at {', '.join(urls)}", file=sys.stderr)
    return fleet


def _wait_for_room(
    ray: ModuleType,
    groups: list[Any],
    served: Mapping[str, ServedStep],
    settings: ModelServerSettings,
) -> None:
    ready, _ = ray.wait(
        [g.ready() for g in groups], num_returns=len(groups), timeout=settings.placement_timeout
    )
    if len(ready) == len(groups):
        return
    wanted = ", ".join(
        f"{s.step!r}: {s.replicas} x {s.tensor_parallel_size} x {dict(settings.bundle)}"
        for s in served.values()
    )
    raise ModelServerError(
        f"the cluster had no room for the model servers within {settings.placement_timeout:g}s "
        f"(replicas x tensor-parallel bundles: {wanted}; the cluster has "
        f"{ray.cluster_resources()}): add nodes, or lower resources.replicas or "
        "tensor_parallel_size"
    )


def _server_result(ray: ModuleType, ref: Any) -> tuple[str, bool]:
    try:
        url, plain = ray.get(ref)
    except ray.exceptions.RayTaskError as exc:
        cause = exc.as_instanceof_cause()
        message = cause.args[0] if cause.args else str(cause)
        raise ModelServerError(str(message)) from None
    return str(url), bool(plain)


def _actor_resources(bundle: Mapping[str, float]) -> dict[str, Any]:
    """Actor options that take the whole of one ``bundle``."""
    known = {"CPU": "num_cpus", "GPU": "num_gpus", "memory": "memory"}
    options: dict[str, Any] = {"num_cpus": 0}
    custom = {}
    for name, amount in bundle.items():
        if name in known:
            options[known[name]] = amount
        else:
            custom[name] = amount
    if custom:
        options["resources"] = custom
    return options


# -- the process --------------------------------------------------------------------------------


def _node_host() -> str:
    """The address other nodes reach this one at, as the cluster knows it (127.0.0.1 outside
    Ray). Not ``ray.util.get_node_ip_address()``: that is the address of the default route,
    which a node started with another ``--node-ip-address`` doesn't listen on."""
    ray = sys.modules.get("ray")
    if ray is None or not ray.is_initialized():
        return "127.0.0.1"
    here = ray.get_runtime_context().get_node_id()
    return next(str(n["NodeManagerAddress"]) for n in ray.nodes() if n["NodeID"] == here)


def _recipe_file() -> Path | None:
    """Where a server actor keeps how it started its server (not the environment: it holds
    keys), for the actor Ray makes again in its place (the same actor id); None outside an
    actor."""
    ray = sys.modules.get("ray")
    if ray is None or not ray.is_initialized():
        return None
    actor = ray.get_runtime_context().get_actor_id()
    if actor is None:
        return None
    return Path(tempfile.gettempdir()) / f"synthflow-server-{actor}.json"


def _server_environment(gpus: Sequence[str]) -> dict[str, str]:
    env = dict(os.environ)
    if gpus:
        env["CUDA_VISIBLE_DEVICES"] = ",".join(gpus)
    return env


def _own_gpus() -> list[str]:
    ray = sys.modules.get("ray")
    if ray is None or not ray.is_initialized():
        return []
    return [str(g) for g in ray.get_gpu_ids()]


def _free_port(host: str) -> int:
    # The port is free now; the server binds it a moment later (nothing else on a node running
    # a model server is expected to race for ephemeral ports).
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((host, 0))
        return int(probe.getsockname()[1])


def _answers(url: str) -> bool:
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # never via a proxy
    try:
        with opener.open(url, timeout=5) as response:
            return bool(response.status == 200)
    except OSError:
        return False


def _die_with_parent() -> Callable[[], None] | None:
    """A pre-exec hook that makes the child get SIGTERM when its parent dies (Linux)."""
    if not sys.platform.startswith("linux"):
        return None
    import ctypes

    prctl = ctypes.CDLL(None, use_errno=True).prctl  # looked up here, not in the child
    set_parent_death_signal = 1  # PR_SET_PDEATHSIG

    def hook() -> None:
        prctl(set_parent_death_signal, signal.SIGTERM)

    return hook


def _stop_group(process: subprocess.Popen[bytes]) -> None:
    def signal_group(sig: signal.Signals) -> None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(process.pid, sig)  # its session's group: the server and its workers

    signal_group(signal.SIGTERM)
    try:
        process.wait(timeout=_STOP_GRACE_SECONDS)
    except subprocess.TimeoutExpired:
        signal_group(signal.SIGKILL)
        process.wait()
    signal_group(signal.SIGKILL)  # workers that outlived the server
