"""The ``synthflow`` command line: inspect and run pipelines saved as YAML/JSON or written in
Python.

    synthflow pipeline info --config pipeline.yaml
    synthflow pipeline run --config https://host/pipeline.yaml \\
        --param generate.llm.generation_kwargs.temperature=0.2 --output out/

Exit codes (``EXIT_CODES``): 0 done; 1 the run failed (a step, saving or pushing its result); 2 bad
input; 3 more rows failed than ``--max-failed-rows`` allows (the data is still saved); 4 a disk
is full (free space and run again: it resumes); 130 interrupted (Ctrl+C). Expected errors print
one line on stderr, no traceback.

Only typer and the standard library are imported up front, so ``--help`` takes about what
importing typer takes (benchmarks/cli_startup.py), and each command imports what it needs.
``pipeline info --config PATH|URL`` never gets here: the console script (``synthflow.console``)
answers it before typer is imported (running a typer command imports pydantic, to check option
values), from the file's data alone (``synthflow.pipeline_info``, ``synthflow.exposure_rules``).
Any other form of it (``--help``, ``--script``, another option, a file that can't be read) comes
here, and the typer command prints the same text.
"""

from __future__ import annotations

import enum
import importlib.util
import os
import re
import shlex
import sys
import traceback
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, NoReturn

import typer

from synthflow.errors import DiskFullError, RuntimeParameterError, SynthflowError
from synthflow.pipeline_info import describe as describe
from synthflow.pipeline_info import draw_dag as draw_dag
from synthflow.pipeline_info import file_info, render_exposures

if TYPE_CHECKING:
    from synthflow.distiset import Distiset
    from synthflow.pipeline.pipeline import Pipeline

EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_ROWS_FAILED = 3
EXIT_DISK_FULL = 4
EXIT_INTERRUPTED = 130

EXIT_CODES = (
    "Exit codes: 0 done; 1 the run failed (a step, or saving or pushing its result); 2 bad "
    "input (usage, a file that can't be read, an unknown or ill-typed parameter, an output "
    "that can't be written); 3 more rows failed than --max-failed-rows allows (the data is "
    "still saved, not pushed); 4 a disk is full (free space and run again: it resumes); "
    "130 interrupted (Ctrl+C)."
)

app = typer.Typer(
    name="synthflow",
    help="Synthetic data pipelines with LLMs.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    # Plain help: rich's help renderer alone takes longer to import than typer, and it shows
    # boolean flags as "--dry-run <bool>", as if they took a value.
    rich_markup_mode=None,
)
pipeline_app = typer.Typer(
    help="Inspect and run pipelines.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)
app.add_typer(pipeline_app, name="pipeline")


class ProgressChoice(enum.StrEnum):
    auto = "auto"
    rich = "rich"
    plain = "plain"
    off = "off"


ConfigOption = Annotated[
    str | None,
    typer.Option(
        "--config",
        "-c",
        metavar="PATH|URL",
        help="The pipeline, as saved by pipeline.save(): a YAML or JSON file, or an http(s) URL.",
    ),
]
ScriptOption = Annotated[
    str | None,
    typer.Option(
        "--script",
        metavar="FILE.py[:NAME]",
        help="A Python file that defines the pipeline; NAME picks the variable when it "
        "defines several. Code under 'if __name__ == \"__main__\":' doesn't run.",
    ),
]
AllowOption = Annotated[
    list[str] | None,
    typer.Option(
        "--allow-module",
        metavar="MODULE",
        help="Also import classes from MODULE (and its submodules) when loading --config; "
        "only synthflow is trusted by default. Repeatable.",
    ),
]

TrustEndpointOption = Annotated[
    list[str] | None,
    typer.Option(
        "--trust-endpoint",
        metavar="HOST",
        help="Let a pipeline from --config send API keys from the environment to HOST (as "
        "HOST or HOST:PORT), which is not its provider's own. Repeatable.",
    ),
]
AllowPathOption = Annotated[
    list[str] | None,
    typer.Option(
        "--allow-path",
        metavar="DIR",
        help="Let a pipeline from --config read and write files under DIR, outside the working "
        "directory. Repeatable.",
    ),
]
TrustRemoteCodeOption = Annotated[
    bool,
    typer.Option(
        "--trust-remote-code",
        help="Let a pipeline from --config load models with trust_remote_code: true (it runs "
        "the model repo's own Python code).",
    ),
]


class UsageError(Exception):
    """Bad input found by the CLI itself (exit code 2)."""


def _show_version(value: bool) -> None:
    if value:
        from synthflow import __version__

        typer.echo(f"synthflow {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool,
        typer.Option(
            "--version", help="Show the version and exit.", is_eager=True, callback=_show_version
        ),
    ] = False,
) -> None:
    """Synthetic data pipelines with LLMs."""


# -- info ---------------------------------------------------------------------------------------


@pipeline_app.command("info")
def info(config: ConfigOption = None, script: ScriptOption = None) -> None:
    """Show a pipeline's steps, its DAG, every runtime parameter with its current value, the
    endpoints it calls (and whose key they get), the files and URLs it reads and writes, and
    the code from outside synthflow it runs.

    With --config nothing outside synthflow is imported, and nothing is sent or read.
    """
    from synthflow.audit import pipeline_exposures

    with _exit_on(EXIT_USAGE):
        if config is not None and script is None:
            typer.echo(file_info(config))
        else:
            pipeline = _load(config, script, [])
            exposures = pipeline_exposures(pipeline.steps)
            typer.echo(describe(pipeline.dump()))
            typer.echo("\n" + "\n".join(render_exposures(exposures, [])))


# -- run ----------------------------------------------------------------------------------------


@pipeline_app.command("run", epilog=EXIT_CODES)
def run(
    config: ConfigOption = None,
    script: ScriptOption = None,
    param: Annotated[
        list[str] | None,
        typer.Option(
            "--param",
            "-p",
            metavar="STEP.NAME=VALUE",
            help="Set a runtime parameter, e.g. generate.llm.generation_kwargs.temperature=0.7. "
            "VALUE is read as JSON when it parses (numbers, true/false, lists, objects), else as "
            "text. A path into a dict parameter sets that one key. An LLM's endpoint is set the "
            "same way: generate.llm.base_url=URL. Repeatable; applied after --params-file.",
        ),
    ] = None,
    params_file: Annotated[
        str | None,
        typer.Option(
            "--params-file",
            metavar="PATH|URL",
            help="A YAML or JSON mapping of runtime parameters: {step: {name: value}}; keys may "
            "also be dotted paths like 'generate.num_generations'.",
        ),
    ] = None,
    output: Annotated[
        Path | None,
        typer.Option(
            "--output",
            "-o",
            metavar="DIR",
            help="Save the result there (parquet, pipeline.yaml, run.json, README.md). An "
            "existing directory is replaced only if empty or a saved result.",
        ),
    ] = None,
    ignore_cache: Annotated[
        bool,
        typer.Option(
            "--ignore-cache", help="Call the LLMs again instead of reusing cached answers."
        ),
    ] = False,
    dry_run: Annotated[
        bool,
        typer.Option(
            "--dry-run",
            help="Run only the first row of each source through every step. Everything it "
            "writes (run data, cache, result) goes to a new scratch directory: the cache and "
            "--output are left as they are.",
        ),
    ] = False,
    max_cost: Annotated[
        float | None,
        typer.Option(
            "--max-cost",
            metavar="USD",
            min=0,
            help="Stop issuing LLM calls once they cost this much (by the price table); calls "
            "in flight finish and the run ends with what it has.",
        ),
    ] = None,
    max_tokens: Annotated[
        int | None,
        typer.Option(
            "--max-tokens",
            metavar="N",
            min=0,
            help="The same, in input + output tokens.",
        ),
    ] = None,
    repo_id: Annotated[
        str | None,
        typer.Option(
            "--repo-id", metavar="ORG/NAME", help="Push the result to this Hub dataset repo."
        ),
    ] = None,
    private: Annotated[
        bool, typer.Option("--private", help="Create the Hub repo as private.")
    ] = False,
    token: Annotated[
        str | None,
        typer.Option(
            "--token",
            metavar="TOKEN",
            help="Hugging Face token for --repo-id; default: $HF_TOKEN or the saved login.",
        ),
    ] = None,
    allow_module: AllowOption = None,
    trust_endpoint: TrustEndpointOption = None,
    allow_path: AllowPathOption = None,
    trust_remote_code: TrustRemoteCodeOption = False,
    progress: Annotated[
        ProgressChoice, typer.Option("--progress", help="How to show live per-step progress.")
    ] = ProgressChoice.auto,
    max_failed_rows: Annotated[
        str,
        typer.Option(
            "--max-failed-rows",
            metavar="N|P%",
            help="How many rows may fail (a count, or a percentage of the rows the sources "
            "made, e.g. 5%) before the run exits with code 3. The data is saved either way; "
            "it is pushed (--repo-id) only within the tolerance. A run in which every row "
            "failed exits 3 whatever this says.",
        ),
    ] = "0",
    on_ray: Annotated[
        bool,
        typer.Option(
            "--ray",
            help="Run on a Ray cluster (needs synthflow[ray]): the rows split into shards, each "
            "run by the whole engine in a Ray worker, one rate budget per endpoint across them.",
        ),
    ] = False,
    ray_address: Annotated[
        str | None,
        typer.Option(
            "--ray-address",
            metavar="ADDR",
            help="With --ray: the cluster (ray://host:10001 or host:6379); default: "
            "$RAY_ADDRESS, else a local cluster.",
        ),
    ] = None,
    shards: Annotated[
        int | None,
        typer.Option(
            "--shards",
            metavar="N",
            min=1,
            help="With --ray: how many parts the rows split into (default: one per CPU).",
        ),
    ] = None,
    ray_storage: Annotated[
        str | None,
        typer.Option(
            "--ray-storage",
            metavar="URL",
            help="With --ray: where the shards write their rows as Parquet files (a directory "
            "every node reaches, or an fsspec URL such as s3://bucket/run), for the driver to "
            "read back; default: through Ray's object store.",
        ),
    ] = None,
    ray_checkpoint_every: Annotated[
        float | None,
        typer.Option(
            "--ray-checkpoint-every",
            metavar="SECONDS",
            help="With --ray-storage: how often each shard writes the LLM answers it received "
            "since the last time there, so that a shard run again on another node pays only "
            "for what came after (default 5).",
        ),
    ] = None,
    retry_failed: Annotated[
        bool,
        typer.Option(
            "--retry-failed",
            help="Run only the rows that failed in the last finished run (its failure record, "
            "failures.jsonl) and merge their results into its data at their source positions; "
            "answers already received come from the cache.",
        ),
    ] = False,
) -> None:
    """Run a pipeline from a file, a URL or a Python script; save and push its result."""
    from synthflow.distiset import check_output_dir, check_repo_id
    from synthflow.errors import DistisetError, PipelineValidationError
    from synthflow.pipeline._disk import warn_if_low
    from synthflow.pipeline._dry_run import start_dry_run
    from synthflow.pipeline._validate import check_cost_budget

    params = list(param or [])
    allowed = list(allow_module or [])
    with _exit_on(EXIT_USAGE):
        tolerance = FailureTolerance.parse(max_failed_rows)
        if dry_run and repo_id:
            raise UsageError("--dry-run makes a one-row sample; it can't be pushed (--repo-id)")
        if repo_id:
            check_repo_id(repo_id)
        pipeline = _load(config, script, allowed)
        trust = Trust(list(trust_endpoint or []), list(allow_path or []), trust_remote_code)
        pipeline.trust(endpoints=trust.endpoints, paths=trust.paths, remote_code=trust.remote_code)
        named_endpoints, named_paths = named_by_params(params)
        pipeline.trust(endpoints=named_endpoints, paths=named_paths)
        apply_parameters(pipeline, params_file, params)
        pipeline.validate()  # with what the file may do (synthflow.trust): before any read
        check_cost_budget(pipeline.steps.values(), max_cost, None)
        if dry_run:
            scratch = start_dry_run(pipeline, rows=1)
            kept = f"; --output {output} is left as it is" if output is not None else ""
            typer.echo(
                f"dry run: each source yields its first row only; it writes only under "
                f"{scratch}{kept}",
                err=True,
            )
            output = scratch / "result" if output is not None else None
        elif output is not None:
            check_output_dir(output.expanduser().absolute())
            warn_if_low(output.expanduser().absolute(), "the output")
        if (ray_address is not None or shards is not None or ray_storage) and not on_ray:
            raise UsageError("--ray-address, --shards and --ray-storage go with --ray")
        if ray_checkpoint_every is not None and not ray_storage:
            raise UsageError("--ray-checkpoint-every goes with --ray-storage (where it writes)")
        if on_ray:
            try:
                if ray_checkpoint_every is None:
                    pipeline.ray(ray_address, shards=shards, storage=ray_storage)
                else:
                    every = ray_checkpoint_every
                    pipeline.ray(
                        ray_address, shards=shards, storage=ray_storage, checkpoint_every=every
                    )
            except ImportError as exc:
                raise UsageError(str(exc)) from None
            except PipelineValidationError as exc:  # a checkpoint interval of 0 or less
                raise UsageError(f"--ray-checkpoint-every: {exc}") from None

    with _exit_on(EXIT_FAILED):
        distiset = pipeline.run(
            use_cache=not ignore_cache,
            max_cost=max_cost,
            max_tokens=max_tokens,
            progress=progress.value,
            retry_failed=retry_failed,
        )
    command = _command(
        *(config, script, allowed, params_file, params),
        trust=trust,
        ignore_cache=ignore_cache,
        max_cost=max_cost,
        max_tokens=max_tokens,
    )
    distiset.run_info["command"] = command
    if script is not None:
        distiset.run_info["script"] = str(script_file(script).resolve())
    typer.echo(repr(distiset))
    if dry_run:
        import orjson

        for subset, datasets in distiset.items():
            for row in datasets["train"]:
                typer.echo(f"{subset}: {orjson.dumps(row, default=str).decode()}")

    too_many = tolerance.exceeded_by(distiset)
    with _exit_on(EXIT_FAILED):
        try:
            if output is not None:
                typer.echo(f"saved to {distiset.save_to_disk(output)}")
            if repo_id and not too_many:
                url = distiset.push_to_hub(repo_id, private=private, token=token)
                typer.echo(f"pushed to {url}")
        except DistisetError as exc:
            raise DistisetError(f"the run finished, but {exc}") from None
    if too_many:
        where = f"saved to {output}" if output is not None else f"in {pipeline.run_dir / 'data'}"
        pushed = f", not pushed to {repo_id}" if repo_id else ""
        _fail(
            f"{too_many}; the data is {where}{pushed}; to accept failed rows, set "
            "--max-failed-rows N or P%",
            EXIT_ROWS_FAILED,
        )


# -- status -------------------------------------------------------------------------------------


@pipeline_app.command("status")
def status(
    run_dir: Annotated[
        Path | None,
        typer.Argument(
            metavar="RUN_DIR",
            help="A run directory (Pipeline.run_dir); or name the pipeline with --config or "
            "--script.",
        ),
    ] = None,
    config: ConfigOption = None,
    script: ScriptOption = None,
    allow_module: AllowOption = None,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print the status as one JSON object.")
    ] = False,
) -> None:
    """Show what the last run of a pipeline did, finished, running or interrupted: rows in and
    out per step, filtered, failed (by step and cause), LLM requests, cache hits, tokens, cost,
    and whether it can be resumed."""
    import orjson

    from synthflow.pipeline._status import read_status, render

    with _exit_on(EXIT_USAGE):
        if run_dir is not None:
            if config is not None or script is not None:
                raise UsageError("give a run directory, or --config / --script, not both")
            where = run_dir.expanduser()
        else:
            where = _load(config, script, list(allow_module or [])).run_dir
        found = read_status(where)
        if found is None:
            raise UsageError(
                f"no run found in {where}: run the pipeline first (synthflow pipeline run)"
            )
    if as_json:
        typer.echo(orjson.dumps(found, option=orjson.OPT_INDENT_2).decode())
    else:
        typer.echo(render(found))


@dataclass(frozen=True)
class Trust:
    """What the user allows a pipeline from --config (``synthflow.trust``)."""

    endpoints: list[str]
    paths: list[str]
    remote_code: bool

    def arguments(self) -> list[str]:
        parts = [a for host in self.endpoints for a in ("--trust-endpoint", host)]
        parts += [a for path in self.paths for a in ("--allow-path", path)]
        return parts + (["--trust-remote-code"] if self.remote_code else [])


@dataclass(frozen=True)
class FailureTolerance:
    """How many rows may fail before a run counts as failed: a count, or a percentage of the
    rows its sources made. A run in which every row failed never passes."""

    rows: int = 0
    percent: float | None = None

    @classmethod
    def parse(cls, text: str) -> FailureTolerance:
        raw = text.strip()
        try:
            if raw.endswith("%"):
                percent = float(raw[:-1])
                if 0 <= percent <= 100:
                    return cls(percent=percent)
            else:
                rows = int(raw)
                if rows >= 0:
                    return cls(rows=rows)
        except ValueError:
            pass
        raise UsageError(
            f"--max-failed-rows {text!r}: give a number of rows (e.g. 10) or a percentage of "
            "the rows (e.g. 5%), at least 0"
        )

    def __str__(self) -> str:
        return f"{self.percent:g}%" if self.percent is not None else str(self.rows)

    def exceeded_by(self, distiset: Distiset) -> str | None:
        """Why ``distiset``'s failed rows are beyond this tolerance (one line), or None."""
        summary = distiset.failure_summary()
        if summary is None:
            return None
        if distiset.all_rows_failed:
            return f"every row failed: {summary}"
        failed = sum(distiset.failed_rows.values())
        if self.percent is not None:
            allowed = self.percent / 100 * distiset.source_rows
        else:
            allowed = self.rows
        if failed <= allowed:
            return None
        return f"{summary}; more than --max-failed-rows {self} allows"


def apply_parameters(pipeline: Pipeline, params_file: str | None, params: list[str]) -> None:
    """Apply a params file, then each ``--param``, validating each against its field."""
    from synthflow.pipeline_file import parse_text, read_source

    if params_file is not None:
        text, fmt = read_source(params_file)
        expected = "a mapping of runtime parameters ({step: {name: value}})"
        data = parse_text(text, fmt, source=params_file, expected=expected)
        plain = {k: v for k, v in data.items() if "." not in str(k)}
        pipeline.validate(plain, require_all=False)
        for key, value in data.items():
            if "." in str(key):
                _apply_one(pipeline, _split_path(str(key), str(key)), value, None)
    for text in params:
        key, sep, raw = text.partition("=")
        if not sep:
            raise UsageError(
                f"--param {text!r}: expected STEP.NAME=VALUE, "
                "e.g. generate.llm.generation_kwargs.temperature=0.7"
            )
        _apply_one(pipeline, _split_path(key.strip(), text), parse_value(raw), raw)


def named_by_params(params: list[str]) -> tuple[list[str], list[str]]:
    """The endpoints and paths the user named with ``--param`` (``synthflow.trust``): theirs,
    even where the file names the same."""
    from synthflow.audit import DataAccess, host_of, targets

    endpoints: list[str] = []
    paths: list[str] = []
    for text in params:
        key, _, raw = text.partition("=")
        for value in targets(parse_value(raw)):
            if key.strip().rsplit(".", 1)[-1] in ENDPOINT_FIELDS:
                endpoints.append(host_of(value))
            elif "/" in value or value.startswith("~"):
                paths.append(str(DataAccess("", value, "reads").local_path()))
    return endpoints, paths


def parse_value(raw: str) -> Any:
    """A ``--param`` value: JSON when it parses, true/false/none in any case, else the text."""
    import orjson

    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError:
        pass
    lowered = raw.strip().lower()
    if lowered in ("true", "false"):
        return lowered == "true"
    if lowered in ("none", "null"):
        return None
    return raw


def _split_path(key: str, text: str) -> list[str]:
    parts = key.split(".")
    if len(parts) < 2 or not all(parts):
        raise UsageError(
            f"--param {text!r}: name a step and a parameter, as STEP.NAME=VALUE "
            "(e.g. load.batch_size=10)"
        )
    return parts


ENDPOINT_FIELDS = ("base_url", "api_base")
"""Fields that name the server a model calls. Not runtime parameters (the endpoint is part of
the pipeline's signature), but --param sets them: pointing someone else's pipeline at your own
server is naming that endpoint (synthflow.trust)."""


def _set_endpoint(pipeline: Pipeline, parts: list[str], value: Any) -> bool:
    """Set ``parts`` when it names a model's endpoint field; whether it did."""
    from pydantic import BaseModel, ValidationError

    from synthflow.runtime_parameters import is_runtime_field

    if parts[-1] not in ENDPOINT_FIELDS:
        return False
    owner: Any = pipeline.steps.get(parts[0])
    for part in parts[1:-1]:
        owner = getattr(owner, part, None) if isinstance(owner, BaseModel) else None
    cls = type(owner)
    if not isinstance(owner, BaseModel) or parts[-1] not in cls.model_fields:
        return False
    if is_runtime_field(cls, parts[-1]):
        return False  # set as any runtime parameter
    try:
        setattr(owner, parts[-1], None if value is None else str(value))
    except ValidationError as exc:
        raise UsageError(f"--param {'.'.join(parts)}: {exc.errors()[0]['msg']}") from None
    return True


def _apply_one(pipeline: Pipeline, parts: list[str], value: Any, raw: str | None) -> None:
    if _set_endpoint(pipeline, parts, value):
        return
    # A value that parsed as JSON but doesn't fit (123 for a str field) is retried as the text.
    candidates = [value] if raw is None or raw == value else [value, raw]
    first: RuntimeParameterError | None = None
    for candidate in candidates:
        try:
            pipeline.validate(_nest(pipeline, parts, candidate), require_all=False)
            return
        except RuntimeParameterError as exc:
            first = first or exc
    assert first is not None
    raise first


def _nest(pipeline: Pipeline, parts: list[str], value: Any) -> dict[str, Any]:
    """``{"a": {"b": value}}`` for ``["a", "b"]``. A path that goes into a dict-valued field
    (``gen.llm.generation_kwargs.temperature``) sets one key and keeps the others."""
    from pydantic import BaseModel

    owner: Any = pipeline.steps.get(parts[0])
    for i in range(1, len(parts)):
        if not (isinstance(owner, BaseModel) and parts[i] in type(owner).model_fields):
            break
        current = getattr(owner, parts[i])
        if isinstance(current, dict) and i < len(parts) - 1:
            merged = _set_in(dict(current), parts[i + 1 :], value)
            return _nest_plain(parts[: i + 1], merged)
        owner = current
    return _nest_plain(parts, value)


def _set_in(target: dict[str, Any], path: list[str], value: Any) -> dict[str, Any]:
    if len(path) == 1:
        target[path[0]] = value
    else:
        inner = target.get(path[0])
        target[path[0]] = _set_in(dict(inner) if isinstance(inner, dict) else {}, path[1:], value)
    return target


def _nest_plain(parts: list[str], value: Any) -> dict[str, Any]:
    nested: Any = value
    for part in reversed(parts):
        nested = {part: nested}
    result: dict[str, Any] = nested
    return result


def _command(
    config: str | None,
    script: str | None,
    allowed: list[str],
    params_file: str | None,
    params: list[str],
    *,
    trust: Trust | None = None,
    ignore_cache: bool,
    max_cost: float | None = None,
    max_tokens: int | None = None,
) -> str:
    """The command line that made the result, without --token and output options."""
    parts = ["synthflow", "pipeline", "run"]
    parts += ["--config", config] if config is not None else ["--script", str(script)]
    for module in allowed:
        parts += ["--allow-module", module]
    if trust is not None:
        parts += trust.arguments()
    if params_file is not None:
        parts += ["--params-file", params_file]
    for p in params:
        parts += ["--param", p]
    if ignore_cache:
        parts.append("--ignore-cache")
    if max_cost is not None:
        parts += ["--max-cost", str(max_cost)]
    if max_tokens is not None:
        parts += ["--max-tokens", str(max_tokens)]
    return shlex.join(parts)


# -- loading ------------------------------------------------------------------------------------


def _load(config: str | None, script: str | None, allowed: list[str]) -> Pipeline:
    from synthflow.pipeline.pipeline import Pipeline

    if (config is None) == (script is None):
        raise UsageError("give one of --config PATH|URL or --script FILE.py[:NAME]")
    if config is not None:
        if allowed and "" not in sys.path and os.getcwd() not in sys.path:
            # Modules in the current directory, as with ``python -m``; last, so they can't
            # shadow installed ones.
            sys.path.append(os.getcwd())
        return Pipeline.from_file(config, allowed_modules=allowed)
    assert script is not None
    return load_script(script)


def _split_script(spec: str) -> tuple[str, str | None]:
    """``FILE.py[:NAME]`` as the file and the variable name (None when not given)."""
    match = re.fullmatch(r"(.+?):([A-Za-z_][A-Za-z0-9_]*)", spec)
    return (match.group(1), match.group(2)) if match else (spec, None)


def script_file(spec: str) -> Path:
    return Path(_split_script(spec)[0]).expanduser()


def load_script(spec: str) -> Pipeline:
    """Import ``FILE.py`` as a module (so its classes pickle and serialize by reference) and
    return its pipeline: the variable ``NAME`` after a colon, or its only Pipeline."""
    from synthflow.pipeline.pipeline import Pipeline

    file, variable = _split_script(spec)
    path = Path(file).expanduser()
    if not path.is_file():
        raise UsageError(f"--script: no such file: {file}")
    name = path.stem if path.stem.isidentifier() and path.stem not in sys.modules else None
    name = name or f"synthflow_script_{abs(hash(str(path.resolve()))):x}"
    module_spec = importlib.util.spec_from_file_location(name, path)
    if module_spec is None or module_spec.loader is None:
        raise UsageError(f"--script: {file} is not a Python file")
    module = importlib.util.module_from_spec(module_spec)
    sys.modules[name] = module
    folder = str(path.resolve().parent)
    sys.path.insert(0, folder)  # for its own imports, and for worker processes
    try:
        module_spec.loader.exec_module(module)
    except (Exception, SystemExit) as exc:
        sys.modules.pop(name, None)
        sys.path.remove(folder)
        frames = [f for f in traceback.extract_tb(exc.__traceback__) if f.filename == str(path)]
        where = f" (line {frames[-1].lineno})" if frames else ""
        raise UsageError(f"running {file} failed{where}: {type(exc).__name__}: {exc}") from None
    if variable is not None:
        found = getattr(module, variable, None)
        if not isinstance(found, Pipeline):
            raise UsageError(f"--script: {file} has no Pipeline named {variable!r}")
        return found
    pipelines = {id(v): (k, v) for k, v in vars(module).items() if isinstance(v, Pipeline)}
    if len(pipelines) != 1:
        names = ", ".join(k for k, _ in pipelines.values())
        problem = f"defines several pipelines ({names})" if pipelines else "defines no Pipeline"
        raise UsageError(f"--script: {file} {problem}; name one with {file}:NAME")
    return next(iter(pipelines.values()))[1]


# -- errors -------------------------------------------------------------------------------------


@contextmanager
def _exit_on(code: int) -> Iterator[None]:
    """Turn expected errors into one line on stderr and exit ``code``; Ctrl+C exits 130."""
    try:
        yield
    except KeyboardInterrupt:
        _fail("interrupted", EXIT_INTERRUPTED)
    except DiskFullError as exc:
        _fail(str(exc), EXIT_DISK_FULL)
    except (SynthflowError, UsageError) as exc:
        _fail(str(exc), code)


def _fail(message: str, code: int) -> NoReturn:
    from synthflow.models.callpath.secrets import redact

    typer.echo(f"error: {redact(' '.join(message.split()))}", err=True)
    raise typer.Exit(code)


def main() -> None:
    """The command line (``synthflow.console.main`` is the console script: it answers
    ``pipeline info --config`` before this module, and typer, are imported)."""
    from synthflow.console import main as console_main

    console_main()
