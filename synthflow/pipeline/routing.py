"""Routing batch functions: send each batch of a step's rows to some of its successors.

``a >> sample_n_steps(2) >> [b, c, d]`` sends every batch of ``a``'s rows to two of ``b``, ``c``
and ``d``; ``@routing_batch_function`` makes the choice from a function of the successors' names,
as distilabel's do. The rules:

- **A batch** is the rows whose lineage ids share ``id // batch_size`` (the routing step's
  ``batch_size``, or ``input_batch_size``): the batches a source yields, and the same batches
  however a run is cut (a resumed run routes every row as the first run did).
- **The choice is seeded** by the routing step's name and the batch's number: ``random``, as the
  function sees it, is seeded for the call (and restored after it). Re-running or resuming a
  pipeline sends each row where it went before, so its LLM answers come from the cache.
- **Where routed branches meet**, a step gets each row once, from the branches that took it
  (distilabel's convergence step). An input of a join that rows reach only through routed
  edges is optional, and the optional inputs act as one, the union of theirs: a row dropped
  on every branch that took it is dropped from the join, as without routing, and a row must
  still come on every input that isn't optional. Two routed branches may write the same
  column when they never meet (``sample_n_steps(1)`` chose between them); otherwise rename
  one, or join them with ``GroupColumns``, whose ``process(*inputs)`` gets one batch per
  branch that took the rows.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

from synthflow.errors import PipelineValidationError

if TYPE_CHECKING:
    from synthflow.steps.base import _Step

_StepT = TypeVar("_StepT", bound="_Step")

RoutingFunction = Callable[[list[str]], Sequence[str]]
"""Takes the names of the routed successors; returns the names of those that get the batch."""

_ROUTES_CACHED = 4096  # batches whose choice a router remembers (it is cheap to recompute)


class RoutingBatchFunction:
    """A choice of successors per batch (see the module docstring); made by
    ``@routing_batch_function`` or ``sample_n_steps(n)``, used between ``>>``s."""

    def __init__(
        self,
        routing_function: RoutingFunction,
        description: str | None = None,
        *,
        factory: tuple[str, str, dict[str, Any] | None] | None = None,
        max_routes: int | None = None,
    ) -> None:
        self.routing_function = routing_function
        self.description = description
        self.max_routes = max_routes
        """At most this many successors get a batch (``sample_n_steps``'s n), when known."""
        module = getattr(routing_function, "__module__", None) or ""
        name = getattr(routing_function, "__qualname__", None) or ""
        self._factory = factory or (module, name, None)
        self.step: _Step | None = None
        self.targets: list[str] = []

    # -- building: upstream >> routing >> [downstream, ...] --------------------------------------

    def __rrshift__(self, step: _Step) -> RoutingBatchFunction:
        from synthflow.steps.base import _Step

        if not isinstance(step, _Step):
            return NotImplemented
        bound = self.copy()
        bound.step = step
        return bound

    def copy(self) -> RoutingBatchFunction:
        """A new one with the same function, bound to no step (one function object may route
        the batches of several steps)."""
        return RoutingBatchFunction(
            self.routing_function,
            self.description,
            factory=self._factory,
            max_routes=self.max_routes,
        )

    def __rshift__(self, steps: list[_StepT]) -> list[_StepT]:
        if self.step is None:
            raise PipelineValidationError(
                "a routing batch function goes between a step and its successors: "
                "upstream >> sample_n_steps(2) >> [step_a, step_b, step_c]"
            )
        if not isinstance(steps, list) or not steps:
            raise PipelineValidationError(
                "a routing batch function routes to a list of steps: "
                f"{self.step.name or 'upstream'} >> routing >> [step_a, step_b, ...]"
            )
        for target in steps:
            self.step.connect(target)
        self.targets = [target.name for target in steps]
        pipeline = self.step.pipeline
        assert pipeline is not None  # connect() put it in one
        pipeline.set_route(self.step.name, self)
        return steps

    # -- the choice ------------------------------------------------------------------------------

    def choose(self, names: list[str], seed: str) -> list[str]:
        """The names among ``names`` that get the batch, with ``random`` seeded by ``seed``."""
        state = random.getstate()
        random.seed(seed)
        try:
            chosen = list(self.routing_function(list(names)))
        finally:
            random.setstate(state)
        unknown = [name for name in chosen if name not in names]
        if unknown:
            raise ValueError(
                f"the routing function returned {unknown[0]!r}, which is not one of the routed "
                f"steps {names}: return names from the list it is given"
            )
        return chosen

    def check(self, step_name: str) -> None:
        """Refuse, before the run, what can't work (more routes asked than successors)."""
        if self.max_routes is not None and self.max_routes > len(self.targets):
            raise PipelineValidationError(
                f"step {step_name!r} routes each batch to {self.max_routes} steps but has "
                f"{len(self.targets)} routed successors ({', '.join(self.targets)}); use "
                f"sample_n_steps({len(self.targets)}) or fewer"
            )

    # -- saving ----------------------------------------------------------------------------------

    def dump(self) -> dict[str, Any]:
        """distilabel's entry of ``routing_batch_functions``: the step, the description and
        where the function comes from (``type_info``: a factory's module, name and arguments),
        and synthflow's ``targets``, the successors it routes to."""
        module, name, kwargs = self._factory
        info: dict[str, Any] = {"module": module, "name": name}
        if kwargs is not None:
            info["kwargs"] = kwargs
        return {
            "step": self.step.name if self.step is not None else None,
            "description": self.description,
            "type_info": info,
            "targets": list(self.targets),  # synthflow's: distilabel routes to every successor
        }

    def __repr__(self) -> str:
        module, name, kwargs = self._factory
        args = ", ".join(f"{k}={v!r}" for k, v in (kwargs or {}).items())
        return f"RoutingBatchFunction({module}.{name}({args}))"


def routing_batch_function(
    description: str | RoutingFunction | None = None,
) -> Any:
    """Make a routing batch function from a function of the routed steps' names that returns
    the names of those that get the batch (``random.sample(steps, 2)``; ``random`` is seeded
    per batch). Used as ``@routing_batch_function`` or ``@routing_batch_function(description=...)``.
    To save and load the pipeline, define the function at module level."""
    if callable(description):
        return RoutingBatchFunction(description)

    def decorator(function: RoutingFunction) -> RoutingBatchFunction:
        return RoutingBatchFunction(function, description)

    return decorator


def sample_n_steps(n: int) -> RoutingBatchFunction:
    """Send each batch to ``n`` of the successors, picked at random (seeded per batch):
    ``load >> sample_n_steps(2) >> [gen_a, gen_b, gen_c]``."""
    if not isinstance(n, int) or isinstance(n, bool) or n < 1:
        raise PipelineValidationError(f"sample_n_steps(n) needs a whole number n >= 1, not {n!r}")

    def sample(steps: list[str]) -> list[str]:
        return random.sample(steps, n)

    return RoutingBatchFunction(
        sample,
        f"Sample {n} steps from the list of downstream steps.",
        factory=(__name__, "sample_n_steps", {"n": n}),
        max_routes=n,
    )


def load_routing_function(data: Any, where: str, allowed: tuple[str, ...]) -> RoutingBatchFunction:
    """The routing batch function a saved entry describes (see ``dump``), importing only from
    synthflow and the allowed modules."""
    import importlib

    from synthflow.errors import SerializationError
    from synthflow.serialization import check_module_allowed

    info = data.get("type_info") if isinstance(data, dict) else None
    if not isinstance(info, dict) or not info.get("module") or not info.get("name"):
        raise SerializationError(
            f"{where} must name its routing function: type_info: {{module: ..., name: ...}} "
            "(a function defined at module level, or a factory with its kwargs)"
        )
    module_name, name = str(info["module"]), str(info["name"])
    check_module_allowed(module_name, allowed, where=where)
    if "<locals>" in name:
        raise SerializationError(
            f"{where} uses {module_name}.{name}, a function defined inside a function, which "
            "can't be imported; define it at module level"
        )
    try:
        obj: Any = importlib.import_module(module_name)
        for part in name.split("."):
            obj = getattr(obj, part)
    except (ImportError, AttributeError) as exc:
        raise SerializationError(f"{where}: can't import {module_name}.{name}: {exc}") from None
    kwargs = info.get("kwargs")
    if kwargs is not None:  # a factory: call it with its arguments
        made = obj(**kwargs)
    elif isinstance(obj, RoutingBatchFunction):  # a decorated function, by reference
        made = obj.copy()
    else:
        made = RoutingBatchFunction(obj)
    if not isinstance(made, RoutingBatchFunction):
        raise SerializationError(f"{where}: {module_name}.{name} is not a routing batch function")
    made.description = data.get("description", made.description)
    return made


class Router:
    """The engine's side of a routed step: which of its output streams each row goes to."""

    def __init__(self, function: RoutingBatchFunction, step: _Step, streams: Sequence[str]) -> None:
        self._function = function
        self._step_name = step.name
        size = getattr(step, "batch_size", None) or getattr(step, "input_batch_size", None)
        self._batch = int(size or 1)
        self._names = list(streams)
        routed = set(function.targets)
        self._routed = [name for name in self._names if name in routed]
        self._always = [i for i, name in enumerate(self._names) if name not in routed]
        self._chosen: dict[int, tuple[int, ...]] = {}

    def streams_for(self, row_id: int) -> tuple[int, ...]:
        """The indices of the streams that get the row with lineage id ``row_id``."""
        batch = row_id // self._batch
        found = self._chosen.get(batch)
        if found is None:
            names = self._function.choose(self._routed, route_seed(self._step_name, batch))
            chosen = {self._names.index(name) for name in names}
            found = tuple(sorted(chosen.union(self._always)))
            if len(self._chosen) >= _ROUTES_CACHED:
                self._chosen.clear()
            self._chosen[batch] = found
        return found


def route_seed(step_name: str, batch: int) -> str:
    """The seed of the choice for batch number ``batch`` of ``step_name`` (documented above)."""
    return f"{step_name}:{batch}"
