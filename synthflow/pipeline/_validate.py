"""Build-time checks: everything that can be known wrong before a single row moves.

``plan()`` returns the DAG in topological order, or raises ``PipelineValidationError`` (or
``RuntimeParameterError``) with a one-line message that says how to fix the problem.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from synthflow.errors import PipelineValidationError, RuntimeParameterError
from synthflow.models.callpath.pricing import Price, price_of
from synthflow.pipeline._columns import unknown_mapping
from synthflow.pipeline._execution import check_picklable
from synthflow.runtime_parameters import missing_runtime_parameters, set_runtime_parameters
from synthflow.steps.base import GeneratorStep, _Step, takes_separate_inputs
from synthflow.steps.resources import apply_resources

if TYPE_CHECKING:
    from synthflow.pipeline.routing import RoutingBatchFunction
    from synthflow.trust import LoadedTrust


@dataclass(frozen=True)
class Plan:
    steps: dict[str, _Step]  # in topological order
    predecessors: dict[str, list[str]]
    successors: dict[str, list[str]]
    owners: dict[str, dict[str, int]] = field(default_factory=dict)
    """Per fan-in step that merges its branches' rows: column -> the branch that wrote it."""
    also_written: tuple[str, ...] = ()
    """Steps with successors whose rows are kept too, as a leaf's are (a stage of a
    distributed run hands them to the next)."""
    routes: dict[str, RoutingBatchFunction] = field(default_factory=dict)
    """Per routed step, the function that picks the successors of each batch."""
    optional_inputs: dict[str, tuple[bool, ...]] = field(default_factory=dict)
    """Per fan-in step after routed branches: which inputs (in predecessor order) a row may
    skip, because it reaches them only where the routing sent it."""

    @property
    def leaves(self) -> list[str]:
        return [
            name for name in self.steps if not self.successors[name] or name in self.also_written
        ]


def plan(
    steps: Mapping[str, _Step],
    edges: list[tuple[str, str]],
    parameters: Mapping[str, Any] | None = None,
    *,
    require_all: bool = True,
    routes: Mapping[str, RoutingBatchFunction] | None = None,
    trust: LoadedTrust | None = None,
) -> Plan:
    """The checked plan. ``require_all``: every runtime parameter the run needs has a value
    (False while parameters are still being given, one by one, as the CLI does). ``trust``:
    a pipeline loaded from a file, whose reads, keys and remote code are checked before the
    sources are opened (``synthflow.trust``)."""
    if not steps:
        raise PipelineValidationError(
            "the pipeline has no steps; create steps inside 'with Pipeline() as p:'"
        )
    predecessors, successors = neighbours(steps, edges)
    order = topological_order(predecessors, successors)
    routes = dict(routes or {})
    for name, route in routes.items():
        route.check(name)
    lines = _lines(order, predecessors)
    optional = _optional_inputs(order, predecessors, lines, routes)
    for name in order:
        step = steps[name]
        if isinstance(step, GeneratorStep):
            if predecessors[name]:
                raise PipelineValidationError(
                    f"generator step {name!r} has inputs from {predecessors[name]}; a generator "
                    "is a source: connect it only to the steps that follow it"
                )
            if step.executor == "process" and step.workers > 1:
                raise PipelineValidationError(
                    f"generator step {name!r} runs in one worker process (a source is one "
                    f"stream of rows); set workers=1, not {step.workers}"
                )
        elif not predecessors[name]:
            raise PipelineValidationError(
                f"step {name!r} has no input; connect a generator step (e.g. LoadDataFromDicts) "
                f"to it: load >> {name}"
            )

    if parameters:
        _apply_parameters(steps, parameters)
    for step in steps.values():
        apply_resources(step)  # replicas may have come with the parameters
    _check_executors(steps)
    if require_all:
        _check_missing_parameters(steps)
    owners: dict[str, dict[str, int]] = {}
    # A source's columns may need its parameters: they are checked once all are given.
    if require_all or not any(missing_runtime_parameters(s) for s in steps.values()):
        if trust is not None:  # the column check reads each source's first row
            trust.check(steps, reads_only=not require_all)
        _check_columns(steps, order, predecessors)
        owners = _fan_in_owners(steps, order, predecessors, _exclusive(predecessors, routes))
    problems = check_picklable(s for s in steps.values() if s.executor == "process")
    if problems:
        raise PipelineValidationError(problems[0])
    return Plan(
        {name: steps[name] for name in order},
        predecessors,
        successors,
        owners,
        routes=routes,
        optional_inputs=optional,
    )


def neighbours(
    steps: Iterable[str], edges: Iterable[tuple[str, str]]
) -> tuple[dict[str, list[str]], dict[str, list[str]]]:
    """Each step's predecessors and successors, in the order the edges were made."""
    predecessors: dict[str, list[str]] = {name: [] for name in steps}
    successors: dict[str, list[str]] = {name: [] for name in predecessors}
    for a, b in edges:
        predecessors[b].append(a)
        successors[a].append(b)
    return predecessors, successors


def topological_order(
    predecessors: dict[str, list[str]], successors: dict[str, list[str]]
) -> list[str]:
    remaining = {name: len(preds) for name, preds in predecessors.items()}
    ready = [name for name, count in remaining.items() if count == 0]
    order: list[str] = []
    while ready:
        name = ready.pop(0)
        order.append(name)
        for succ in successors[name]:
            remaining[succ] -= 1
            if remaining[succ] == 0:
                ready.append(succ)
    if len(order) < len(predecessors):
        cycle = _find_cycle({n for n in predecessors if n not in order}, successors)
        raise PipelineValidationError(
            f"the pipeline has a cycle: {' >> '.join(cycle)}; remove one of these connections"
        )
    return order


def _find_cycle(nodes: set[str], successors: dict[str, list[str]]) -> list[str]:
    start = min(nodes)
    path = [start]
    seen = {start}
    current = start
    while True:
        current = next(s for s in successors[current] if s in nodes)
        if current in seen:
            return [*path[path.index(current) :], current]
        path.append(current)
        seen.add(current)


def _apply_parameters(steps: Mapping[str, _Step], parameters: Mapping[str, Any]) -> None:
    for name, values in parameters.items():
        if name not in steps:
            close = difflib.get_close_matches(name, list(steps), n=1, cutoff=0.6)
            hint = f"did you mean {close[0]!r}?" if close else f"steps: {', '.join(steps)}"
            raise RuntimeParameterError(f"parameters name unknown step {name!r}: {hint}")
        set_runtime_parameters(steps[name], values, name)


def _check_missing_parameters(steps: Mapping[str, _Step]) -> None:
    missing = [
        f"{name}.{path}"
        for name, step in steps.items()
        for path in missing_runtime_parameters(step)
    ]
    if missing:
        example = "..."
        for part in reversed(missing[0].split(".")):
            example = f"{{{part!r}: {example}}}"
        several = len(missing) > 1
        raise RuntimeParameterError(
            f"missing runtime parameter{'s' if several else ''} {', '.join(missing)}: give "
            f"{'them' if several else 'it'} when building the step, or when running: "
            f"run(parameters={example}) or --param {missing[0]}=..."
        )


def _check_columns(
    steps: Mapping[str, _Step], order: list[str], predecessors: dict[str, list[str]]
) -> None:
    for name in order:  # each step's own mistake first, as distilabel checks it
        problem = unknown_mapping(steps[name])
        if problem is not None:
            raise PipelineValidationError(problem)
    available: dict[str, set[str]] = {}
    for name in order:
        step = steps[name]
        _check_outputs_distinct(step)
        upstream: set[str] = set()
        for pred in predecessors[name]:
            upstream |= available[pred]
        missing = [c for c in step.mapped_inputs() if c not in upstream]
        if missing and predecessors[name]:
            shown = ", ".join(sorted(upstream)) or "none"
            raise PipelineValidationError(
                f"step {name!r} needs column {missing[0]!r}, which no step before it produces "
                f"(available: {shown}); produce it upstream or map it with "
                f"input_mappings={{{step.inputs[step.mapped_inputs().index(missing[0])]!r}: "
                "'<column>'}"
            )
        available[name] = upstream | set(step.mapped_outputs())


def _check_outputs_distinct(step: _Step) -> None:
    landed: dict[str, str] = {}
    for output in step.outputs:
        column = step.output_mappings.get(output, output)
        if column in landed:
            raise PipelineValidationError(
                f"step {step.name!r} writes both {landed[column]!r} and {output!r} to column "
                f"{column!r}; map one of them to another column with output_mappings"
            )
        landed[column] = output


def _lines(order: list[str], predecessors: dict[str, list[str]]) -> dict[str, set[str]]:
    """Each step and every step before it."""
    lines: dict[str, set[str]] = {}
    for name in order:
        lines[name] = {name}.union(*(lines[p] for p in predecessors[name]))
    return lines


UNGATED = ("", "")
"""In a gate set: some path from the split reaches the step without a routed edge."""


def _gates(
    tail: str,
    head: str,
    shared: set[str],
    predecessors: dict[str, list[str]],
    routes: Mapping[str, Any],
) -> set[tuple[str, str]]:
    """The routed edges ``(router, target)`` that rows pass first, on their ways from the
    split (``shared``: the steps before every branch of a join) along edge ``tail -> head``;
    ``UNGATED`` among them when some way has none."""
    found: dict[str, set[tuple[str, str]]] = {}

    def through(u: str, v: str) -> set[tuple[str, str]]:
        route = routes.get(u)
        if route is not None and v in route.targets:
            return {(u, v)}
        if u in shared:
            return {UNGATED}
        if u not in found:
            found[u] = set().union(*(through(p, u) for p in predecessors[u]))
        return found[u]

    return through(tail, head)


def _optional_inputs(
    order: list[str],
    predecessors: dict[str, list[str]],
    lines: dict[str, set[str]],
    routes: Mapping[str, Any],
) -> dict[str, tuple[bool, ...]]:
    """The fan-in inputs a row may skip: those that rows reach only through routed edges
    (see ``synthflow.pipeline.routing``)."""
    optional: dict[str, tuple[bool, ...]] = {}
    if not routes:
        return optional
    for name in order:
        preds = predecessors[name]
        if len(preds) < 2:
            continue
        shared = set.intersection(*(lines[p] for p in preds))
        flags = tuple(UNGATED not in _gates(p, name, shared, predecessors, routes) for p in preds)
        if any(flags):
            optional[name] = flags
    return optional


def _exclusive(
    predecessors: dict[str, list[str]], routes: Mapping[str, Any]
) -> Callable[[str, str, str, set[str]], bool]:
    """Whether the inputs ``a`` and ``b`` of ``join`` never carry the same row: rows reach each
    only through one router that sends a batch to one successor, by different successors."""

    def exclusive(a: str, b: str, join: str, shared: set[str]) -> bool:
        gates_a = _gates(a, join, shared, predecessors, routes)
        gates_b = _gates(b, join, shared, predecessors, routes)
        routers = {router for router, _ in gates_a | gates_b}
        if UNGATED in gates_a | gates_b or len(routers) != 1:
            return False
        (router,) = routers
        return routes[router].max_routes == 1 and not gates_a & gates_b

    return exclusive


def _fan_in_owners(
    steps: Mapping[str, _Step],
    order: list[str],
    predecessors: dict[str, list[str]],
    exclusive: Callable[[str, str, str, set[str]], bool],
) -> dict[str, dict[str, int]]:
    """For each step that merges several branches into one row: which branch each column
    written after the paths split comes from. Two branches that write the same column are an
    error (the joined row could keep only one of them), unless the step takes the branches
    apart itself (``process(*inputs)``) or routing keeps them from ever meeting."""
    lines = _lines(order, predecessors)
    owners: dict[str, dict[str, int]] = {}
    for name in order:
        preds = predecessors[name]
        if len(preds) < 2 or takes_separate_inputs(steps[name]):
            continue
        branches = [lines[p] for p in preds]
        shared = set.intersection(*branches)
        writers: dict[str, list[set[str]]] = {}  # column -> per branch, the steps writing it
        for i, branch in enumerate(branches):
            for step_name in sorted(branch - shared):
                for column in steps[step_name].mapped_outputs():
                    per_branch = writers.setdefault(column, [set() for _ in branches])
                    per_branch[i].add(step_name)
        found: dict[str, int] = {}
        for column, per_branch in writers.items():
            ranked = sorted(range(len(preds)), key=lambda i: len(per_branch[i]), reverse=True)
            top = ranked[0]
            for i in ranked[1:]:
                if exclusive(preds[top], preds[i], name, shared):
                    continue  # the branches never carry the same row
                if per_branch[i] and not per_branch[i] <= per_branch[top]:
                    raise _conflict(steps, name, column, per_branch[top], per_branch[i])
            found[column] = top
        if found:
            owners[name] = found
    return owners


def _conflict(
    steps: Mapping[str, _Step], join: str, column: str, a: set[str], b: set[str]
) -> PipelineValidationError:
    first, second = sorted(a - b)[0], sorted(b - a)[0]
    step = steps[second]
    output = next((k for k, v in step.output_mappings.items() if v == column), column)
    return PipelineValidationError(
        f"steps {first!r} and {second!r} both write column {column!r} and their rows meet in "
        f"{join!r}, which could keep only one: rename one (output_mappings={{{output!r}: "
        f"'{column}_2'}} on {second!r}) or join them with a step that takes the branches "
        "apart (GroupColumns, or a step whose process takes *inputs)"
    )


def check_cost_budget(
    steps: Iterable[_Step], max_cost: float | None, prices: Mapping[str, Price] | None
) -> None:
    """A cost budget must be able to price every billed call, or it would let them all through:
    refuse to start when an API model has no price (local and offline models cost nothing)."""
    if max_cost is None:
        return
    for step in steps:
        client = _model_of(step)
        if getattr(client, "billed", False):
            model = client.model_name
            if price_of(model, prices) is None:
                raise PipelineValidationError(
                    f"max_cost can't be kept: no price is known for model {model!r} (step "
                    f"{step.name!r}); give one with prices={{{model!r}: (usd_per_million_input, "
                    "usd_per_million_output)}, or budget with max_tokens"
                )


def _model_of(step: _Step) -> Any:
    """A task's LLM, or the embedding model of a step that has one (EmbeddingGeneration)."""
    from synthflow.steps.tasks.base import Task

    return step.llm if isinstance(step, Task) else getattr(step, "embeddings", None)


def _check_executors(steps: Mapping[str, _Step]) -> None:
    """Model calls off the loop must still reach the run's call path (cache, accounting,
    budgets). From worker threads they do (``_thread_calls``); from a worker process they
    can't, so a process may only run a model that computes there (``LLM.blocking``: a local
    model, whose calls are then neither cached nor counted), never an API client; and offline
    batches are gathered from the rows in flight on the loop."""
    from synthflow.models.callpath.batches import uses_offline_batches

    for name, step in steps.items():
        model = _model_of(step)
        if model is None or step.executor == "loop":
            continue
        if uses_offline_batches(model):
            raise PipelineValidationError(
                f"step {name!r} sends offline batches (use_offline_batch_generation=True), "
                f"which only a task on the event loop can: use executor='loop', not "
                f"{step.executor!r}"
            )
        if step.executor == "process" and model.cacheable and not getattr(model, "blocking", False):
            raise PipelineValidationError(
                f"step {name!r} calls {type(model).__name__}, an API client, from "
                "executor='process', where its calls would skip the run's response cache, "
                "accounting and max_cost/max_tokens: use executor='loop' (the default; API "
                "calls are async and need no worker) or 'thread' (a model that computes in this "
                "process declares blocking = True)"
            )
