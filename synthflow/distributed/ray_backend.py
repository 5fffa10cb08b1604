"""Running one pipeline over a Ray cluster: ``pipeline.run(backend="ray")``.

The unit of work is the shard, not the step: each Ray task runs the whole asyncio engine over
a deterministic part of the sources' rows (``synthflow.pipeline._shards``), in a run directory
of its own under the pipeline's, with its own response cache on local disk (SQLite must not
live on a network filesystem), seeded from the run's cache and merged back into it at the end.
A shard that fails (its worker killed, its node lost) is run again by Ray and resumes from what
it wrote, as an interrupted one-process run does. With shared storage, a shard also checkpoints
its new answers there as it runs, so that run again on another node it pays only for what came
after its last checkpoint (``synthflow.distributed.checkpoints``).

One budget per endpoint: an actor per endpoint holds the limits set on the LLM
(``max_concurrency``, ``requests_per_minute``, ``tokens_per_minute``) for the whole run, and
every shard's limiter works under a leased share of them (``synthflow.distributed.budget``).

A step whose LLM is a local model (``vLLM``) is served: its model-server replicas start before
the first stage and stop when the run ends, and every shard's copy of the step calls one of
them as an ordinary endpoint, with one budget per replica (``synthflow.distributed.serving``,
``synthflow.distributed.model_servers``).

Ray is imported only here, and only when a run asks for it.
"""

from __future__ import annotations

import contextlib
import os
import sys
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any

import anyio
import orjson

from synthflow.distributed.budget import BudgetLedger, EndpointBudget, Share
from synthflow.distributed.checkpoints import (
    CacheCheckpoints,
    add_stored_caches,
    fill_cache,
    store_failure_record,
    upload_seed,
)
from synthflow.distributed.merge import (
    Rows,
    leaf_parts,
    leaf_table,
    merge_caches,
    merge_stats,
)
from synthflow.distributed.results import WORK_DIR, ids_digest, keep_result, start_result
from synthflow.distributed.serving import ModelServerSettings, served_steps
from synthflow.distributed.stages import stages
from synthflow.distributed.storage import StoredPart, storage_root, store_part
from synthflow.pipeline._engine import CACHE_FILE
from synthflow.pipeline._shards import Shard
from synthflow.steps.base import GeneratorStep, _Step

if TYPE_CHECKING:
    from synthflow.distiset import Distiset
    from synthflow.distributed.model_servers import ModelServers
    from synthflow.models.callpath.limiter import EndpointLimiter
    from synthflow.pipeline._engine import RunOptions
    from synthflow.pipeline._validate import Plan
    from synthflow.pipeline.pipeline import Pipeline
    from synthflow.pipeline.stats import StepStats

__all__ = ["run_on_ray"]

SHARDS_DIR = "shards"
MANIFEST = "shards.json"
LEASE_SECONDS = 2.0
"""A share not renewed for this long goes back to the other workers."""
RENEW_EVERY = LEASE_SECONDS / 4
FIRST_SHARE_WAIT = 60.0
"""How long a starting shard waits for a budget actor that Ray is restarting."""
KEEPER_PREFIX = "synthflow-budget:"
"""Budget actors are named ``synthflow-budget:<pipeline>:<stage>:<run id>:<n>``."""


def require_ray() -> ModuleType:
    try:
        import ray
    except ImportError:
        raise ImportError(
            "running on Ray needs Ray installed: pip install 'synthflow[ray]'"
        ) from None
    return ray


# -- the driver ----------------------------------------------------------------------------


@dataclass(frozen=True)
class RayTarget:
    """Where and how wide a run on Ray goes."""

    address: str | None = None
    """A running cluster (``ray://host:10001`` or ``host:6379``); None: Ray's default (the
    cluster in ``RAY_ADDRESS``, else a local one started for the run)."""
    shards: int | None = None
    """How many parts the rows are split into; None: one per CPU of the cluster."""
    init_kwargs: Mapping[str, Any] | None = None
    model_servers: ModelServerSettings | None = None
    """How local-model steps are served (None: vLLM's server on GPU bundles)."""
    storage: str | None = None
    """Where shards write their rows (a path every node reaches, or an fsspec URL such as
    ``s3://bucket/run``), for the driver to read back; None: through Ray's object store.
    Shards also checkpoint their LLM answers and failure records there, so that one run again
    on another node resumes, and the driver merges them whichever node they ran on."""
    checkpoint_every: float = 5.0
    """With ``storage``: seconds between a shard's checkpoints of its new LLM answers (what a
    shard run again elsewhere may pay for twice is at most what came since the last one)."""


def run_on_ray(
    pipeline: Pipeline,
    parameters: Mapping[str, Any] | None,
    options: RunOptions,
    target: RayTarget,
    *,
    dataset: Any = None,
    dataset_batch_size: int = 50,
) -> Distiset:
    """Run ``pipeline`` sharded over a Ray cluster and return the Distiset one process would."""
    from synthflow.distiset import Distiset
    from synthflow.distributed.model_servers import start_model_servers
    from synthflow.models.callpath.secrets import refresh as refresh_secrets
    from synthflow.pipeline._validate import plan
    from synthflow.pipeline.pipeline import report_end

    ray = require_ray()
    steps, edges, home = pipeline._steps, pipeline._edges, pipeline.run_dir
    if dataset is not None:
        steps, edges, home = pipeline._fed_by(dataset, home, dataset_batch_size)
    # Every mistake named here, before any worker starts; a loaded pipeline's trust too.
    built = plan(steps, edges, parameters, routes=pipeline._routes, trust=pipeline._trust)
    served = served_steps(built.steps)  # a local model's settings a server can't take: now
    options = start_result(built, home, replace(options, pipeline_name=pipeline.name))
    refresh_secrets()  # the keys to keep out of what the run writes, as they are now
    shared = storage_root(target.storage) if target.storage is not None else None
    if not ray.is_initialized():
        ray.init(address=target.address, **dict(target.init_kwargs or {}))
    count = target.shards or max(1, int(ray.cluster_resources().get("CPU", 1)))
    sources = [s for s in built.steps.values() if isinstance(s, GeneratorStep)]
    block = max((s.batch_size for s in sources), default=50)
    run_dir = home / WORK_DIR  # the stages' and shards' work; the result goes to ``home``
    if options.only_ids is not None and options.use_cache:
        # A retry after a local run: the failed rows' answers from steps before the one that
        # failed them are in the run's own cache; the first stage's shards start from them.
        merge_caches(run_dir / "stage-0" / CACHE_FILE, [home / CACHE_FILE])
    shard_options = _options_per_shard(options, count)

    servers = None
    if served:
        settings = target.model_servers or ModelServerSettings()
        servers = start_model_servers(ray, pipeline.name, served, settings)
    # A shard's plan: its served steps call their replica (one plan per shard, in order).
    plans_of = servers.plans if servers is not None else _same_plan
    budgets = {
        key: budget
        for shard_plan in plans_of(built, count)
        for key, budget in _endpoint_budgets(shard_plan.steps).items()
    }
    made: dict[str, list[Rows]] = {}  # step -> its rows, one part per shard that made some
    stats: list[dict[str, StepStats]] = []
    stop_reason: str | None = None
    stored_records: dict[str, tuple[str, list[str]]] = {}  # stage -> its storage, its shards
    try:
        for number, stage in enumerate(stages(built, made)):
            where = run_dir / f"stage-{number}"
            if stage.sharded:
                storage = f"{shared.rstrip('/')}/{where.name}" if shared is not None else None
                shard_plans = plans_of(stage.plan, count)
                results = _run_sharded(
                    ray,
                    pipeline.name,
                    shard_plans,
                    where,
                    block,
                    shard_options,
                    budgets,
                    storage,
                    target.checkpoint_every,
                    servers,
                )
                if storage is not None:
                    shard_names = [r.shard.directory_name for r in results]
                    stored_records[where.name] = (storage, shard_names)
                for leaf in stage.plan.leaves:
                    made[leaf] = [r.leaves[leaf] for r in results if r.leaves.get(leaf) is not None]
                parts = [r.stats for r in results]
                reasons = [r.stop_reason for r in results if r.stop_reason]
            else:
                output = _run_here(plans_of(stage.plan, 1)[0], where, options)
                here = output.leaves.items()
                made.update({leaf: [rows] for leaf, rows in here if rows is not None})
                parts = [output.stats]
                reasons = [output.stop_reason] if output.stop_reason else []
            # A stage's sources stand for steps of earlier stages, counted there.
            stats += [{n: s for n, s in part.items() if n not in stage.inputs} for part in parts]
            if reasons:  # the budget ran out: what follows would only find it spent
                stop_reason = reasons[0]
                break
    finally:
        if servers is not None:
            servers.stop(ray)

    files, failures = keep_result(
        built, home, run_dir, made, stored_records, options, finished=stop_reason is None
    )
    distiset = Distiset.from_leaf_files(
        files, merge_stats(stats), enable_metadata=pipeline.enable_metadata
    )
    distiset.stop_reason = stop_reason
    distiset.failures = failures
    if options.only_ids is not None:
        distiset.retried_rows = len(options.only_ids)
    distiset.record_pipeline(pipeline)
    report_end(distiset, pipeline.name)
    return distiset


def _same_plan(plan: Plan, count: int) -> list[Plan]:
    return [plan] * count


def _run_sharded(
    ray: ModuleType,
    name: str,
    plans: list[Plan],
    run_dir: Path,
    block: int,
    options: RunOptions,
    budgets: dict[str, EndpointBudget],
    storage: str | None,
    checkpoint_every: float,
    servers: ModelServers | None = None,
) -> list[ShardResult]:
    """Run a stage over as many shards as ``plans`` (shard ``i`` runs ``plans[i]``); return
    their results in shard order. With ``storage``, the shards write their rows there and return
    where, and checkpoint their caches there. A replica of ``servers`` lost for good stops the
    stage (``ModelServerError``)."""
    count = len(plans)
    _prepare(run_dir, count, block, options.only_ids)
    if storage is not None and options.use_cache:
        upload_seed(run_dir / CACHE_FILE, storage)  # for shards on nodes without this disk
    shards = [Shard(i, count, block) for i in range(count)]
    workers = [shard.directory_name for shard in shards]
    # The workers each endpoint expects: all of them, but a served step's replica only those
    # of the shards that call it.
    keys_of = [_endpoint_keys(plan) for plan in plans]
    callers = {
        key: [w for w, keys in zip(workers, keys_of, strict=True) if key in keys] for key in budgets
    }
    # Restarted if it dies: the workers keep their last shares meanwhile.
    keeper = ray.remote(num_cpus=0, max_restarts=-1)(BudgetKeeper)
    # On the driver's node, which the run can't outlive anyway: losing a worker node never
    # takes a budget with it.
    here = _on_this_node(ray)
    # Named, so that it can be found (Ray's dashboard, `ray list actors`, a test); unique, as
    # the name of one just stopped may not be free yet.
    run = f"{KEEPER_PREFIX}{name}:{run_dir.name}:{uuid.uuid4().hex[:8]}"
    keepers = {
        key: keeper.options(name=f"{run}:{number}", scheduling_strategy=here).remote(
            budget, callers[key], LEASE_SECONDS
        )
        for number, (key, budget) in enumerate(budgets.items())
        if callers[key]
    }
    # Once for every shard that runs the same plan: its sources may hold many rows.
    put: dict[int, Any] = {}
    for plan in plans:
        if id(plan) not in put:
            put[id(plan)] = ray.put(plan)
    # Ray runs a shard again when its worker dies (max_retries): it resumes from its directory.
    remote = ray.remote(num_cpus=1, max_retries=3, retry_exceptions=False)(run_shard)
    settings: dict[str, Any] = {}
    environment = _llm_environment(plans[0].steps)
    if environment:  # workers resolve endpoints and keys as the driver would
        settings["runtime_env"] = {"env_vars": environment}
    refs = {
        remote.options(name=f"synthflow:{name}:{shard.directory_name}", **settings).remote(
            put[id(plans[shard.index])],
            shard,
            str(run_dir),
            options,
            keepers,
            storage,
            checkpoint_every,
        ): shard
        for shard in shards
    }
    results: list[ShardResult] = []
    pending = list(refs)
    lost = servers.lost if servers is not None else []
    try:
        while pending:
            (ref,), _ = ray.wait([*pending, *lost], num_returns=1)
            if ref not in refs:  # a replica's ``lost()`` ended: it can't serve again
                assert servers is not None
                raise servers.lost_error(ray, ref)
            pending.remove(ref)
            result = _result_of(ray, ref, refs[ref])
            results.append(result)
            print(
                f"[synthflow] {name}: {run_dir.name} {refs[ref].directory_name} done "
                f"({len(results)} of {count}; {result.rows} rows)",
                file=sys.stderr,
            )
    finally:
        for ref in pending:
            ray.cancel(ref, force=True)
        for keeper in keepers.values():
            ray.kill(keeper)
        caches = (run_dir / SHARDS_DIR / w / CACHE_FILE for w in workers)
        merge_caches(run_dir / CACHE_FILE, caches)
        if storage is not None and options.use_cache:  # those of shards run on other nodes
            add_stored_caches(run_dir / CACHE_FILE, storage)
    return sorted(results, key=lambda r: r.shard.index)


@dataclass
class _LocalOutput:
    leaves: dict[str, Any]
    stats: dict[str, StepStats]
    stop_reason: str | None


def _run_here(stage_plan: Plan, run_dir: Path, options: RunOptions) -> _LocalOutput:
    """Run a stage's plan (a global step) in this process, over every row it takes."""
    from synthflow.pipeline._engine import execute
    from synthflow.pipeline._progress import Progress

    async def main() -> Any:
        return await execute(stage_plan, run_dir, Progress(False, run_dir.name), options)

    output = anyio.run(main)
    leaves = {leaf: leaf_table(run_dir / "data" / leaf) for leaf in stage_plan.leaves}
    return _LocalOutput(leaves, output.stats, output.stop_reason)


def _prepare(run_dir: Path, count: int, block: int, only_ids: frozenset[int] | None) -> None:
    """Keep the shards of an interrupted run of the same split (and, for a retry, of the same
    rows); otherwise start them afresh, keeping their LLM answers in the run's cache (a new
    split resumes nothing, pays nothing)."""
    manifest = run_dir / MANIFEST
    wanted: dict[str, Any] = {"shards": count, "block": block}
    if only_ids is not None:  # a retry's shards hold just these rows: no other run resumes them
        wanted["only"] = ids_digest(only_ids)
    if manifest.exists() and orjson.loads(manifest.read_bytes()) == wanted:
        return
    shards_dir = run_dir / SHARDS_DIR
    if shards_dir.is_dir():
        merge_caches(run_dir / CACHE_FILE, shards_dir.glob(f"*/{CACHE_FILE}"))
        import shutil

        shutil.rmtree(shards_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    manifest.write_bytes(orjson.dumps(wanted))


def _options_per_shard(options: RunOptions, count: int) -> RunOptions:
    """The run's cost and token caps, split evenly between the shards."""
    return replace(
        options,
        max_cost=None if options.max_cost is None else options.max_cost / count,
        max_tokens=None if options.max_tokens is None else max(1, options.max_tokens // count),
    )


def _endpoint_budgets(steps: Mapping[str, _Step]) -> dict[str, EndpointBudget]:
    """The limits of every rate-limited endpoint the tasks call, by limiter key."""
    budgets: dict[str, EndpointBudget] = {}
    for step in steps.values():
        key = _limiter_key(getattr(step, "llm", None))
        if key is None:
            continue
        llm = getattr(step, "llm", None)
        budget = EndpointBudget(
            max_concurrency=llm.max_concurrency,  # type: ignore[union-attr]
            requests_per_minute=llm.requests_per_minute,  # type: ignore[union-attr]
            tokens_per_minute=llm.tokens_per_minute,  # type: ignore[union-attr]
        )
        if budget.limited:
            budgets.setdefault(key, budget)
    return budgets


def _endpoint_keys(plan: Plan) -> set[str]:
    keys = (_limiter_key(getattr(step, "llm", None)) for step in plan.steps.values())
    return {key for key in keys if key is not None}


def _llm_environment(steps: Mapping[str, _Step]) -> dict[str, str]:
    """The environment variables the tasks' LLMs read their endpoint and key from, as set
    here. A worker elsewhere may have none of them: it gets the driver's, through Ray's
    runtime environment."""
    names: set[str] = set()
    for step in steps.values():
        llm = getattr(step, "llm", None)
        for attribute in ("api_key_env", "base_url_env"):
            name = getattr(llm, attribute, None)
            if isinstance(name, str) and name:
                names.add(name)
    return {name: os.environ[name] for name in sorted(names) if name in os.environ}


def _limiter_key(llm: Any) -> str | None:
    from synthflow.models.callpath.limiter import endpoint_key
    from synthflow.models.llms.api import APILLM

    if not isinstance(llm, APILLM):
        return None
    return endpoint_key(llm.limiter_endpoint(), llm.resolved_api_key())


def _on_this_node(ray: ModuleType) -> Any:
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    return NodeAffinitySchedulingStrategy(ray.get_runtime_context().get_node_id(), soft=True)


def _result_of(ray: ModuleType, ref: Any, shard: Shard) -> ShardResult:
    try:
        result: ShardResult = ray.get(ref)
    except ray.exceptions.RayTaskError as exc:
        cause = exc.as_instanceof_cause()
        raise type(cause)(*cause.args) if isinstance(cause, Exception) else cause from None
    except ray.exceptions.RayError as exc:
        raise RuntimeError(f"{shard.directory_name} failed on Ray: {exc}") from exc
    return result


# -- the budget actor ------------------------------------------------------------------------


class BudgetKeeper:
    """The Ray actor holding one endpoint's budget (a ``BudgetLedger``)."""

    def __init__(self, budget: EndpointBudget, workers: list[str], lease_seconds: float) -> None:
        import ray

        # Started again after it died: every worker still counts (none is granted more than
        # its fair share before the others report what they hold), but only for one lease, as
        # the live ones renew within it; those finished or not started yet would otherwise
        # keep fair shares from them for a minute.
        restarted = ray.get_runtime_context().was_current_actor_reconstructed
        self.ledger = BudgetLedger(
            budget,
            lease_seconds=lease_seconds,
            expected_workers=workers,
            grace_seconds=lease_seconds if restarted else 60.0,
        )

    def renew(self, worker: str, in_flight: int, rate_limited_total: int) -> Share:
        return self.ledger.renew(worker, in_flight, rate_limited_total)

    def release(self, worker: str) -> None:
        self.ledger.release(worker)

    def report(self) -> dict[str, Any]:
        return {
            "limit": self.ledger.limit,
            "peak_granted": self.ledger.peak_granted,
            "rate_limited": self.ledger.rate_limited_total,
            "workers": self.ledger.workers,
        }


# -- a shard, in its worker -------------------------------------------------------------------


@dataclass
class ShardResult:
    shard: Shard
    leaves: dict[str, Rows | None]
    """Leaf name -> its rows with lineage ids: an Arrow table, or a ``StoredPart`` with a
    ``storage``; None for no rows."""
    stats: dict[str, StepStats]
    stop_reason: str | None
    rows: int


def run_shard(
    plan: Plan,
    shard: Shard,
    run_dir: str,
    options: RunOptions,
    keepers: dict[str, Any],
    storage: str | None = None,
    checkpoint_every: float = 5.0,
) -> ShardResult:
    """Run the engine over ``shard``'s rows of ``plan`` in its own directory (in a Ray worker);
    with ``storage``, write each leaf's rows there and return where, not the rows, and
    checkpoint the cache's new answers there every ``checkpoint_every`` seconds."""
    from synthflow.pipeline._engine import execute
    from synthflow.pipeline._failures import FAILURES_FILE
    from synthflow.pipeline._progress import Progress

    root = Path(run_dir)
    name = shard.directory_name
    directory = root / SHARDS_DIR / name
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "worker.pid").write_text(str(os.getpid()))
    cache_file = directory / CACHE_FILE
    if options.use_cache and not cache_file.exists():
        merge_caches(cache_file, [root / CACHE_FILE])  # what earlier runs paid for
        if storage is not None:  # ... and what an attempt on a lost node checkpointed
            fill_cache(cache_file, storage, name)
    checkpoints = None
    if storage is not None and options.use_cache:
        checkpoints = CacheCheckpoints(cache_file, storage, name)
    built = plan
    leases = _Leases(built.steps, keepers, name)
    options = replace(options, shard=shard)

    async def main() -> Any:
        leases.renew_all()  # the first share before the first request
        async with anyio.create_task_group() as tg:
            tg.start_soon(leases.keep_renewing)
            if checkpoints is not None:
                tg.start_soon(checkpoints.keep_checkpointing, checkpoint_every)
            try:
                return await execute(
                    built, directory, Progress(False, shard.directory_name), options
                )
            finally:
                tg.cancel_scope.cancel()

    try:
        output = anyio.run(main)
    finally:
        leases.release_all()
        if checkpoints is not None:
            checkpoints.checkpoint()  # what came since the last one
    if storage is not None:
        store_failure_record(directory / FAILURES_FILE, storage, name)
    leaves = {leaf: _shard_rows(directory / "data", storage, leaf, shard) for leaf in built.leaves}
    rows = sum(_count(part) for part in leaves.values())
    return ShardResult(shard, leaves, output.stats, output.stop_reason, rows)


def _shard_rows(data: Path, storage: str | None, leaf: str, shard: Shard) -> Rows | None:
    """A shard's rows of a leaf, to return: the table, or the file it was written to."""
    if storage is None:
        return leaf_table(data / leaf)
    schema, parts = leaf_parts(data / leaf)
    if schema is None:
        return None
    return store_part(storage, f"{leaf}/{shard.directory_name}", schema, parts)


def _count(rows: Rows | None) -> int:
    if rows is None:
        return 0
    return int(rows.rows if isinstance(rows, StoredPart) else rows.num_rows)


class _Leases:
    """This worker's shares of the endpoint budgets, renewed in the background."""

    def __init__(self, steps: Mapping[str, _Step], keepers: dict[str, Any], worker: str) -> None:
        self.worker = worker
        self.entries: list[tuple[EndpointLimiter, Any]] = []
        # Ray reuses worker processes, and limiters live as long as theirs: count only the
        # 429s of this shard's run.
        self._429s_before: dict[int, int] = {}
        seen: set[str] = set()
        for step in steps.values():
            llm = getattr(step, "llm", None)
            key = _limiter_key(llm)
            if key is None or key not in keepers or key in seen:
                continue
            seen.add(key)
            limiter = llm.limiter()  # type: ignore[union-attr]
            self.entries.append((limiter, keepers[key]))
            self._429s_before[id(limiter)] = limiter.stats().rate_limited_total

    def renew_all(self) -> None:
        """The first shares. A shard never starts without them (its limiter would allow the
        whole budget): a keeper being restarted is waited for."""
        if not self.entries:  # no budget to share (and, in a test, maybe no Ray at all)
            return
        import ray

        deadline = time.monotonic() + FIRST_SHARE_WAIT
        while True:
            refs = [
                keeper.renew.remote(self.worker, *self._state(lim)) for lim, keeper in self.entries
            ]
            try:
                shares = ray.get(refs)
                break
            except ray.exceptions.RayActorError:  # Ray refuses calls while it restarts one
                if time.monotonic() > deadline:
                    raise
                time.sleep(RENEW_EVERY)
        for (limiter, _), share in zip(self.entries, shares, strict=True):
            _apply(limiter, share)

    async def keep_renewing(self) -> None:
        while True:
            await anyio.sleep(RENEW_EVERY)
            for limiter, keeper in self.entries:
                started = time.monotonic()
                try:
                    share = await keeper.renew.remote(self.worker, *self._state(limiter))
                except Exception:  # the actor is restarting: keep the last share
                    continue
                if time.monotonic() - started < LEASE_SECONDS:  # else stale: renew again first
                    _apply(limiter, share)

    def _state(self, limiter: EndpointLimiter) -> tuple[int, int]:
        stats = limiter.stats()
        return stats.in_flight, stats.rate_limited_total - self._429s_before[id(limiter)]

    def release_all(self) -> None:
        if self.entries:
            import ray

            # A keeper being restarted refuses the call: the lease then expires by itself.
            with contextlib.suppress(ray.exceptions.RayActorError):
                ray.get([keeper.release.remote(self.worker) for _, keeper in self.entries])


def _apply(limiter: EndpointLimiter, share: Share) -> None:
    limiter.set_share(share.concurrency, share.requests_per_minute, share.tokens_per_minute)
