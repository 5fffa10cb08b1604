"""Pipeline: the DAG builder, and the entry points that run it.

``with Pipeline() as p:`` is a scoped convenience: steps created inside the block call
``p.add_step(self)``. Everything it does is also available explicitly (``add_step``, ``connect``).
"""

from __future__ import annotations

import contextvars
import functools
import os
import sys
from collections.abc import Iterable, Mapping
from contextvars import ContextVar
from dataclasses import replace
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any, Literal

import anyio

from synthflow._sync import run_sync
from synthflow.errors import PipelineValidationError
from synthflow.pipeline._progress import Progress, ProgressMode, where_data_is
from synthflow.steps.base import GeneratorStep, _Step

if TYPE_CHECKING:
    from typing import Self

    from synthflow.distiset import Distiset
    from synthflow.distributed.ray_backend import RayTarget
    from synthflow.distributed.serving import ModelServerSettings
    from synthflow.pipeline._engine import RunOptions
    from synthflow.pipeline._load_stages import LoadGroups, LoadStages
    from synthflow.pipeline.routing import RoutingBatchFunction
    from synthflow.trust import LoadedTrust

_current: ContextVar[Pipeline | None] = ContextVar("synthflow_current_pipeline", default=None)

DATASET_SOURCE = "dataset"
"""The name of the source step that ``run(dataset=...)`` puts before the first steps."""


def current_pipeline() -> Pipeline | None:
    """The pipeline of the enclosing ``with Pipeline():`` block, if any."""
    return _current.get()


def default_cache_root() -> Path:
    root = os.environ.get("SYNTHFLOW_CACHE_DIR")
    if root:
        return Path(root)
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "synthflow"


class Pipeline:
    """A DAG of steps.

    Args:
        name: names the pipeline and its cache directory.
        description: free text, kept when the pipeline is saved.
        cache_dir: where runs keep their data and caches; defaults to
            ``$SYNTHFLOW_CACHE_DIR`` or ``~/.cache/synthflow``.
        enable_metadata: keep the ``distilabel_metadata`` column in the output.
        requirements: packages (PEP 508 specifiers) the run needs besides its steps' own
            (``synthflow.utils.requirements``); ``run`` refuses to start without them.
    """

    def __init__(
        self,
        name: str = "pipeline",
        description: str | None = None,
        cache_dir: str | os.PathLike[str] | None = None,
        enable_metadata: bool = True,
        requirements: list[str] | None = None,
    ) -> None:
        self.name = name
        # Packages the run needs besides its steps' own (PEP 508): run() checks them first.
        self.requirements = list(requirements or [])
        self.description = description
        # distilabel's flag; synthflow keeps the column unless told not to (README, Distiset).
        self.enable_metadata = enable_metadata
        self.cache_dir = Path(cache_dir) if cache_dir is not None else default_cache_root()
        self._steps: dict[str, _Step] = {}
        self._edges: list[tuple[str, str]] = []
        self._routes: dict[str, RoutingBatchFunction] = {}
        self._tokens: list[contextvars.Token[Pipeline | None]] = []
        self._backend: Literal["local", "ray"] = "local"
        self._ray_target: RayTarget | None = None
        self._trust: LoadedTrust | None = None  # set when loaded from a file (synthflow.trust)

    # -- building --------------------------------------------------------------------------

    def __enter__(self) -> Pipeline:
        self._tokens.append(_current.set(self))
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        _current.reset(self._tokens.pop())

    @property
    def steps(self) -> dict[str, _Step]:
        return dict(self._steps)

    @property
    def edges(self) -> list[tuple[str, str]]:
        return list(self._edges)

    def add_step(self, step: _Step) -> None:
        if step.pipeline is self:
            return
        if step.pipeline is not None:
            raise PipelineValidationError(
                f"step {step.name!r} already belongs to pipeline {step.pipeline.name!r}"
            )
        if not step.name:
            base = step.default_name()
            n = 0
            while f"{base}_{n}" in self._steps:
                n += 1
            step.name = f"{base}_{n}"
        if step.name in self._steps:
            raise PipelineValidationError(
                f"duplicate step name {step.name!r}: give each step a unique name= "
                f"(e.g. name='{step.name}_2')"
            )
        self._steps[step.name] = step
        step._pipeline = self

    def connect(self, source: _Step, target: _Step) -> None:
        for step in (source, target):
            if self._steps.get(step.name) is not step:
                self.add_step(step)
        if source is target:
            raise PipelineValidationError(f"step {source.name!r} can't be connected to itself")
        if isinstance(target, GeneratorStep):
            raise PipelineValidationError(
                f"can't connect {source.name!r} to generator step {target.name!r}: a generator "
                "is a source and takes no inputs; connect it only to the steps that follow it"
            )
        edge = (source.name, target.name)
        if edge not in self._edges:
            self._edges.append(edge)

    @property
    def routes(self) -> dict[str, RoutingBatchFunction]:
        """The routing batch functions, by the name of the step whose batches they route."""
        return dict(self._routes)

    def set_route(self, step_name: str, function: RoutingBatchFunction) -> None:
        """Route the batches of ``step_name`` with ``function`` (``a >> sample_n_steps(2) >>
        [b, c, d]`` calls it)."""
        if step_name in self._routes:
            raise PipelineValidationError(
                f"step {step_name!r} has a routing batch function already: one per step"
            )
        self._routes[step_name] = function

    def validate(
        self, parameters: Mapping[str, Any] | None = None, *, require_all: bool = True
    ) -> None:
        """Run every build-time check; raise on the first problem. ``run`` calls it too.

        ``parameters`` are applied first. ``require_all=False`` leaves out the check that every
        runtime parameter the run needs has a value (for parameters given one at a time)."""
        from synthflow.pipeline._validate import plan

        plan(
            self._steps,
            self._edges,
            parameters,
            require_all=require_all,
            routes=self._routes,
            trust=self._trust,
        )

    # -- identity --------------------------------------------------------------------------

    @property
    def signature(self) -> str:
        """A stable hash of the DAG and every step's configuration, runtime parameters left out
        (they change how a run behaves, not what the pipeline is). It names the cache dir, and
        it survives a save and load."""
        from synthflow.serialization import signature

        return signature(self)

    @property
    def run_dir(self) -> Path:
        return self.cache_dir / "pipelines" / self.name / self.signature

    # -- sharing (synthflow.serialization) ----------------------------------------------------

    def dump(self) -> dict[str, Any]:
        """The pipeline as plain data, as ``save`` writes it; secrets are left out."""
        from synthflow.serialization import dump_pipeline

        return dump_pipeline(self)

    def save(
        self, path: str | os.PathLike[str], format: Literal["yaml", "json"] | None = None
    ) -> Path:
        """Write the pipeline to ``path``: in ``format`` when given (distilabel's argument),
        else YAML for ``.yaml``/``.yml`` and JSON for ``.json``."""
        from synthflow.serialization import save_pipeline

        return save_pipeline(self, path, format)

    @classmethod
    def from_file(
        cls,
        path_or_url: str | os.PathLike[str],
        *,
        allowed_modules: Iterable[str] = (),
        cache_dir: str | os.PathLike[str] | None = None,
    ) -> Pipeline:
        """Load a pipeline saved as YAML or JSON, from a path or an http(s) URL. Classes are
        imported only from synthflow and from ``allowed_modules`` (and their submodules)."""
        from synthflow.serialization import load_file

        return load_file(path_or_url, allowed_modules=allowed_modules, cache_dir=cache_dir)

    @classmethod
    def from_yaml(
        cls,
        path_or_text: str | os.PathLike[str],
        *,
        allowed_modules: Iterable[str] = (),
        cache_dir: str | os.PathLike[str] | None = None,
    ) -> Pipeline:
        """Load a pipeline from a YAML file (a path or URL, as distilabel's takes) or from
        YAML text."""
        return cls._from_text_or_file(path_or_text, "yaml", allowed_modules, cache_dir)

    @classmethod
    def from_json(
        cls,
        path_or_text: str | bytes | os.PathLike[str],
        *,
        allowed_modules: Iterable[str] = (),
        cache_dir: str | os.PathLike[str] | None = None,
    ) -> Pipeline:
        """Load a pipeline from a JSON file (a path or URL, as distilabel's takes) or from
        JSON text."""
        return cls._from_text_or_file(path_or_text, "json", allowed_modules, cache_dir)

    @classmethod
    def _from_text_or_file(
        cls,
        source: str | bytes | os.PathLike[str],
        fmt: Literal["yaml", "json"],
        allowed_modules: Iterable[str],
        cache_dir: str | os.PathLike[str] | None,
    ) -> Pipeline:
        from synthflow.pipeline_file import parse_text
        from synthflow.serialization import is_path, load_file, load_pipeline

        if is_path(source):
            assert not isinstance(source, bytes)
            return load_file(source, allowed_modules=allowed_modules, cache_dir=cache_dir, fmt=fmt)
        text = source.decode() if isinstance(source, bytes) else os.fspath(source)
        data = parse_text(text, fmt)
        return load_pipeline(
            data,
            allowed_modules=allowed_modules,
            cache_dir=cache_dir,
            source=f"the {fmt.upper()} text",
        )

    @classmethod
    def from_dict(
        cls,
        data: Mapping[str, Any],
        *,
        allowed_modules: Iterable[str] = (),
        cache_dir: str | os.PathLike[str] | None = None,
    ) -> Pipeline:
        from synthflow.serialization import load_pipeline

        return load_pipeline(data, allowed_modules=allowed_modules, cache_dir=cache_dir)

    def trust(
        self,
        *,
        endpoints: Iterable[str] = (),
        paths: Iterable[str | os.PathLike[str]] = (),
        remote_code: bool = False,
    ) -> Pipeline:
        """Allow a pipeline loaded from a file or URL to send keys from the environment to
        ``endpoints`` (hosts), to read and write under ``paths`` (directories), and to run model
        repos' own code (``trust_remote_code``); the CLI's ``--trust-endpoint``, ``--allow-path``
        and ``--trust-remote-code``. A pipeline built in Python needs none of it. Returns the
        pipeline, so it chains: ``Pipeline.from_yaml(path).trust(endpoints=["llm.internal"])``."""
        if self._trust is not None:
            self._trust = self._trust.allowing(endpoints, paths, remote_code)
        return self

    def check_trust(self, steps: Mapping[str, _Step] | None = None) -> None:
        """Raise ``UntrustedPipelineError`` if this pipeline, loaded from a file or URL, would
        do something the user hasn't allowed (see ``trust``). Runs check it before they start."""
        if self._trust is not None:
            self._trust.check(self._steps if steps is None else steps)

    def _repr_html_(self) -> str:
        from synthflow.serialization import pipeline_html

        return pipeline_html(self)

    def all_requirements(self) -> list[str]:
        """The packages this pipeline and its steps' classes declare they need, once each."""
        declared = [*self.requirements]
        for step in self._steps.values():
            declared += getattr(step, "requirements", [])
        return list(dict.fromkeys(declared))

    # -- running ---------------------------------------------------------------------------

    def run(
        self,
        parameters: Mapping[str, Any] | None = None,
        *,
        dataset: Any = None,
        dataset_batch_size: int = 50,
        use_cache: bool = True,
        max_cost: float | None = None,
        max_tokens: int | None = None,
        prices: Mapping[str, tuple[float, float]] | None = None,
        progress: ProgressMode | bool = "auto",
        backend: Literal["local", "ray"] | None = None,
        shards: int | None = None,
        storage: str | None = None,
        retry_failed: bool = False,
        load_groups: LoadGroups | None = None,
        use_fs_to_pass_data: bool = False,
        storage_parameters: Mapping[str, Any] | None = None,
    ) -> Distiset:
        """Run the pipeline to completion and return its Distiset.

        Args:
            parameters: runtime parameters, ``{step_name: {field: value, "llm": {...}}}``.
            dataset: rows to feed the pipeline's first steps, which then need no generator
                step: a list of dicts, a pandas DataFrame or a ``datasets.Dataset``.
            dataset_batch_size: rows per batch read from ``dataset``.
            use_cache: serve LLM answers from this pipeline's response cache and store new
                ones; ``False`` calls the LLMs again (and doesn't touch the cache).
            max_cost: stop issuing LLM calls once they cost this much (USD, by the price
                table); calls in flight finish and the run ends with what it has.
            max_tokens: the same, in input + output tokens.
            prices: per-model price overrides, ``{model: (usd_per_M_input, usd_per_M_output)}``.
            progress: "auto" (a table updated in place in a terminal or a Jupyter notebook,
                log lines otherwise), "rich", "notebook", "plain", or False (quiet). At the
                end of the run, it says where the data is.
            backend: "local" (this process), or "ray": the rows split into ``shards`` parts,
                each run by the whole engine in a Ray worker, with one rate budget per endpoint
                across them (needs ``synthflow[ray]``; see ``Pipeline.ray`` for the cluster).
                Default: "ray" for a pipeline made by ``ray()`` or a ``RayPipeline``.
            shards: with the Ray backend, how many parts (default: one per CPU of the cluster).
                Generator tasks whose rows are independent (``MagpieGenerator``,
                ``EvolInstructGenerator``) make only their shard's rows; other generator tasks
                run whole in the first shard.
            storage: with the Ray backend, where the shards write their rows as Parquet files
                (a directory every node reaches, or an fsspec URL such as
                ``"s3://bucket/run"``), for this process to read back a part at a time; by
                default they come back through Ray's object store.
            retry_failed: run only the rows that failed in the last (finished) run, as its
                failure record names them, and put their new results into its dataset at
                their source positions; answers already received come from the cache. On
                Ray too, whichever backend ran the last run: each shard runs only the failed
                rows it owns.
            load_groups: steps to load together and apart from the others, as distilabel
                takes them: lists of steps (names or steps), e.g. ``[["generate"],
                ["judge"]]``, or ``"sequential_step_execution"`` (one step at a time). The run
                goes in stages (``get_load_stages``): a stage's steps load once every step of
                the stages before it has finished and unloaded, so two local models need not
                fit in memory together. The rows are those of a run without groups; rows on
                their way to a later stage wait for it in memory.
            use_fs_to_pass_data, storage_parameters: distilabel's switches for passing batches
                between its processes through a file system. synthflow's steps pass batches in
                memory within the run (which writes its data under the cache directory), so
                both are accepted for distilabel's pipelines and change nothing.

        Works from plain scripts and from code where an event loop is already running (Jupyter):
        there, the run gets its own loop in a worker thread, and this call blocks until it ends.

        Rows that fail keep the run going (per each step's ``on_error``); the result says how
        many failed in which step (``distiset.failed_rows``) and a line on stderr sums them up;
        each is recorded, with its error, in ``distiset.failures`` (JSON Lines).
        A write that fails for lack of space stops the run with ``DiskFullError`` (the path, and
        how to resume); a run warns at its start when less than 1 GiB is free where it writes
        (``$SYNTHFLOW_MIN_FREE_GB`` sets that threshold).
        """
        kwargs: dict[str, Any] = {
            "dataset": dataset,
            "dataset_batch_size": dataset_batch_size,
            "use_cache": use_cache,
            "max_cost": max_cost,
            "max_tokens": max_tokens,
            "prices": prices,
            "progress": progress,
            "backend": backend,
            "shards": shards,
            "storage": storage,
            "retry_failed": retry_failed,
            "load_groups": load_groups,
        }
        return run_sync(functools.partial(self.arun, parameters, **kwargs))

    async def arun(
        self,
        parameters: Mapping[str, Any] | None = None,
        *,
        dataset: Any = None,
        dataset_batch_size: int = 50,
        use_cache: bool = True,
        max_cost: float | None = None,
        max_tokens: int | None = None,
        prices: Mapping[str, tuple[float, float]] | None = None,
        progress: ProgressMode | bool = "auto",
        backend: Literal["local", "ray"] | None = None,
        shards: int | None = None,
        storage: str | None = None,
        retry_failed: bool = False,
        load_groups: LoadGroups | None = None,
    ) -> Distiset:
        """Run the pipeline in the current event loop (for async apps). See ``run``."""
        from synthflow.distiset import Distiset
        from synthflow.models.callpath.secrets import refresh as refresh_secrets
        from synthflow.pipeline._engine import RunOptions, execute
        from synthflow.pipeline._load_stages import load_stages
        from synthflow.pipeline._validate import check_cost_budget, plan
        from synthflow.utils.requirements import check_requirements

        check_requirements(self.all_requirements())
        # The user's steps: a dataset's stand-in source loads with the step it feeds.
        stages = (
            None if load_groups is None else load_stages(load_groups, self._steps, self._edges)[0]
        )
        options = RunOptions(
            use_cache,
            max_cost,
            max_tokens,
            dict(prices or {}),
            retry_failed=retry_failed,
            pipeline_name=self.name,
            load_stages=stages,
        )
        if (backend or self._backend) == "ray" or shards is not None or storage is not None:
            # Each shard runs the engine, which loads its steps in these stages too.
            return await self._run_on_ray(
                parameters,
                options,
                shards=shards,
                storage=storage,
                dataset=dataset,
                dataset_batch_size=dataset_batch_size,
            )
        if backend not in (None, "local"):
            raise PipelineValidationError(f"backend must be 'local' or 'ray', not {backend!r}")
        steps, edges, run_dir = self._steps, self._edges, self.run_dir
        if dataset is not None:
            steps, edges, run_dir = self._fed_by(dataset, run_dir, dataset_batch_size)
        built = plan(  # checks the trust of a loaded pipeline before any read
            steps, edges, parameters, routes=self._routes, trust=self._trust
        )
        check_cost_budget(built.steps.values(), max_cost, prices)
        if retry_failed and use_cache:
            from synthflow.distributed.results import add_answers_from_ray

            add_answers_from_ray(run_dir)  # the last run may have been on Ray
        refresh_secrets()  # the keys to keep out of what the run writes, as they are now
        shown = Progress(progress, self.name)
        output = await execute(built, run_dir, shown, options)
        distiset = await anyio.to_thread.run_sync(
            functools.partial(Distiset.from_leaf_files, enable_metadata=self.enable_metadata),
            output.leaf_files,
            output.stats,
        )
        distiset.stop_reason = output.stop_reason
        distiset.artifacts_path = output.artifacts_dir
        distiset.failures = output.failures_file
        distiset.retried_rows = output.retried
        distiset.record_pipeline(self)
        report_end(distiset, self.name)
        shown.report(where_data_is(run_dir, built.steps, output.artifacts_dir))
        return distiset

    def get_load_stages(self, load_groups: LoadGroups | None = None) -> LoadStages:
        """The stages a run with ``load_groups`` goes in (see ``run``), as distilabel gives
        them: the steps of each stage, and each stage's last steps. Global steps are stages
        of their own; steps in no group make stages between the groups."""
        from synthflow.pipeline._load_stages import load_stages

        return load_stages(load_groups, self._steps, self._edges)

    def _fed_by(
        self, dataset: Any, run_dir: Path, batch_size: int = 50
    ) -> tuple[dict[str, _Step], list[tuple[str, str]], Path]:
        """The steps and edges with ``dataset``'s rows as the source of the first steps, and
        the run's own directory beside ``run_dir`` (runs over different datasets don't share
        one)."""
        from synthflow.steps.generators import RowsOfDataset

        targets = {target for _, target in self._edges}
        roots = [name for name in self._steps if name not in targets]
        for name in roots:
            if isinstance(self._steps[name], GeneratorStep):
                raise PipelineValidationError(
                    f"run(dataset=...) feeds the pipeline's first steps, but {name!r} is a "
                    "generator step with rows of its own; remove it, or run without dataset"
                )
        if batch_size < 1:
            raise PipelineValidationError(f"dataset_batch_size must be 1 or more, not {batch_size}")
        name = DATASET_SOURCE
        while name in self._steps:
            name += "_rows"
        try:
            source = RowsOfDataset.of(dataset, name=name, batch_size=batch_size)
        except TypeError as exc:
            raise PipelineValidationError(f"run(dataset=...): {exc}") from None
        steps = {name: source, **self._steps}
        edges = [(name, root) for root in roots] + self._edges
        return steps, edges, run_dir.with_name(f"{run_dir.name}-data-{source.fingerprint()}")

    def dry_run(
        self,
        parameters: Mapping[str, Any] | None = None,
        batch_size: int = 1,
        dataset: Any = None,
    ) -> Distiset:
        """Run the pipeline on the first ``batch_size`` rows of each source (or of
        ``dataset``), without the response cache, to check it end to end (distilabel's
        ``dry_run``). The pipeline is left as it was; the dry run writes only under a new
        temporary directory, never under ``cache_dir``."""
        from synthflow.pipeline._dry_run import start_dry_run

        if dataset is not None:  # the pipeline then has no sources of its own to limit
            rows = _first_rows(dataset, batch_size)
            return self.run(parameters, dataset=rows, use_cache=False, progress=False)
        self.validate(parameters, require_all=False)  # the parameters reach the real sources
        steps = dict(self._steps)
        sources = [s for s in steps.values() if isinstance(s, GeneratorStep)]
        sizes = [source.batch_size for source in sources]
        cache_dir = self.cache_dir
        try:
            start_dry_run(self, rows=batch_size)
            return self.run(use_cache=False, progress=False)
        finally:
            self._steps = steps
            self.cache_dir = cache_dir
            for source, size in zip(sources, sizes, strict=True):
                source.batch_size = size

    def ray(
        self,
        ray_head_node_url: str | None = None,
        ray_init_kwargs: Mapping[str, Any] | None = None,
        *,
        shards: int | None = None,
        model_servers: ModelServerSettings | None = None,
        storage: str | None = None,
        checkpoint_every: float = 5.0,
    ) -> Self:
        """Run this pipeline on Ray from now on (distilabel's ``pipeline.ray()``): returns the
        pipeline, whose ``run()`` then shards the rows over the cluster at
        ``ray_head_node_url`` (``ray://host:10001``, ``host:6379``, or None for ``RAY_ADDRESS``
        or a local cluster), calling ``ray.init(**ray_init_kwargs)`` if Ray isn't started.

        A step whose LLM is a local ``vLLM`` is served, not loaded by every shard: its
        ``resources.replicas`` model servers start first, each on ``tensor_parallel_size`` GPU
        bundles, and the shards call them; ``model_servers`` changes how (the server's command,
        the bundle, the timeouts: ``synthflow.distributed.serving.ModelServerSettings``).
        ``shards`` and ``storage`` are ``run()``'s defaults on Ray (see ``run``). With
        ``storage``, each shard checkpoints its new LLM answers there every
        ``checkpoint_every`` seconds: one run again on another node (its node lost) pays only
        for what came after its last checkpoint."""
        from synthflow.distributed.ray_backend import RayTarget, require_ray

        require_ray()  # the missing extra is said now, not at run time
        if not checkpoint_every > 0:
            raise PipelineValidationError(
                f"checkpoint_every must be a number of seconds above 0, not {checkpoint_every!r}"
            )
        self._backend = "ray"
        self._ray_target = RayTarget(
            ray_head_node_url,
            shards,
            dict(ray_init_kwargs or {}),
            model_servers=model_servers,
            storage=storage,
            checkpoint_every=checkpoint_every,
        )
        return self

    async def _run_on_ray(
        self,
        parameters: Mapping[str, Any] | None,
        options: RunOptions,
        *,
        shards: int | None,
        storage: str | None,
        dataset: Any,
        dataset_batch_size: int,
    ) -> Distiset:
        from synthflow.distributed.ray_backend import RayTarget, run_on_ray

        target = self._ray_target or RayTarget()
        if shards is not None:
            if shards < 1:
                raise PipelineValidationError(f"shards must be 1 or more, not {shards}")
            target = replace(target, shards=shards)
        if storage is not None:
            target = replace(target, storage=storage)
        run = functools.partial(
            run_on_ray,
            self,
            parameters,
            options,
            target,
            dataset=dataset,
            dataset_batch_size=dataset_batch_size,
        )
        return await anyio.to_thread.run_sync(run)

    def __getstate__(self) -> dict[str, Any]:
        # Steps refer to their pipeline, and are pickled to worker processes (a process pool, a
        # Ray shard) even from inside the ``with`` block, whose context tokens don't pickle.
        state = dict(self.__dict__)
        state["_tokens"] = []
        return state

    def __repr__(self) -> str:
        edges = ", ".join(f"{a} >> {b}" for a, b in self._edges)
        return f"Pipeline(name={self.name!r}, steps={list(self._steps)}, edges=[{edges}])"


def report_end(distiset: Distiset, name: str) -> None:
    """Say on stderr how a run ended, when it wasn't plainly: stopped early, or with failed
    rows (how many, where they are recorded, and how to re-run only them)."""
    if distiset.stop_reason:
        print(f"[synthflow] run stopped early: {distiset.stop_reason}", file=sys.stderr)
    summary = distiset.failure_summary()
    if summary and distiset.failures is not None:
        print(
            f"[synthflow] failed rows are recorded in {distiset.failures}; "
            "re-run only them with run(retry_failed=True) (CLI: --retry-failed)",
            file=sys.stderr,
        )
    if summary:
        print(f"[synthflow] {name}: {summary}", file=sys.stderr)


def _first_rows(dataset: Any, n: int) -> Any:
    """The first ``n`` rows of a list of dicts, a pandas DataFrame or a ``datasets.Dataset``."""
    if isinstance(dataset, list):
        return dataset[:n]
    if hasattr(dataset, "head") and hasattr(dataset, "columns"):  # a pandas DataFrame
        return dataset.head(n)
    if hasattr(dataset, "select") and hasattr(dataset, "column_names"):  # datasets.Dataset
        return dataset.select(range(min(n, len(dataset))))
    return dataset  # run(dataset=...) says what it takes


class RayPipeline(Pipeline):
    """A pipeline that runs on Ray (distilabel's ``RayPipeline``); the same as
    ``Pipeline(...).ray(ray_head_node_url, ray_init_kwargs)``. Needs ``synthflow[ray]``."""

    def __init__(
        self,
        name: str = "pipeline",
        description: str | None = None,
        cache_dir: str | os.PathLike[str] | None = None,
        enable_metadata: bool = True,
        requirements: list[str] | None = None,
        ray_head_node_url: str | None = None,
        ray_init_kwargs: Mapping[str, Any] | None = None,
        model_servers: ModelServerSettings | None = None,
    ) -> None:
        super().__init__(name, description, cache_dir, enable_metadata, requirements)
        self.ray(ray_head_node_url, ray_init_kwargs, model_servers=model_servers)
