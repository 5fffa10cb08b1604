"""StepResources: distilabel's per-step resource request, mapped onto synthflow's executors.

distilabel runs each step replica as a process (or a Ray actor) and asks the scheduler for
``cpus``, ``gpus``, ``memory`` and custom ``resources`` per replica. synthflow runs a pipeline in
one process, so the request maps onto the step's own executor settings:

- ``replicas=N`` on a step that runs off the event loop (``executor="thread"`` or
  ``"process"``) gives it ``workers=N``; on a plain step that runs on the loop it moves the step
  to ``executor="thread"`` with ``N`` workers. A task on the loop already keeps
  ``concurrency`` rows in flight, so replicas change nothing there (set ``concurrency``);
  a generator is one stream of rows and a global step one pass over them: replicas are
  ignored for both. Workers set explicitly win over replicas.
- ``cpus``, ``gpus``, ``memory`` and ``resources`` are kept with the step (they save and load
  with it) but reserve nothing: on Ray (``synthflow.distributed``) the unit of work is a shard
  of the rows running every step, one CPU each, not a step replica. The exception is a task
  whose LLM is a local model served on Ray (``synthflow.distributed.serving``): ``replicas``
  is the number of its model servers there, each on ``tensor_parallel_size`` GPUs (``gpus``,
  when set, must be that number).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from pydantic import BaseModel, ConfigDict, Field

from synthflow.runtime_parameters import RuntimeParameter

if TYPE_CHECKING:
    from synthflow.steps.base import _Step


class StepResources(BaseModel):
    """What a step asks for, per replica: ``StepResources(replicas=2, cpus=1, gpus=1)``."""

    model_config = ConfigDict(validate_assignment=True, extra="forbid")

    replicas: RuntimeParameter[int] = Field(
        default=1, ge=1, description="Copies of the step working at once (its workers)."
    )
    cpus: RuntimeParameter[int | None] = Field(
        default=None, ge=1, description="CPUs per replica (a request to a cluster scheduler)."
    )
    gpus: RuntimeParameter[int | None] = Field(
        default=None, ge=1, description="GPUs per replica (a request to a cluster scheduler)."
    )
    memory: RuntimeParameter[int | None] = Field(
        default=None, ge=1, description="Bytes of memory per replica (a cluster request)."
    )
    resources: RuntimeParameter[dict[str, int] | None] = Field(
        default=None, description="Custom resources per replica, by name (a cluster request)."
    )


def apply_resources(step: _Step) -> None:
    """Give ``step`` the workers (and executor) its ``resources.replicas`` asks for, unless it
    sets ``workers`` itself. Runs when the step is built and again when a run starts (replicas
    are a runtime parameter)."""
    from synthflow.steps.base import GeneratorStep, GlobalStep
    from synthflow.steps.tasks.base import Task

    replicas = step.resources.replicas
    if isinstance(step, GeneratorStep | GlobalStep):
        return
    if isinstance(step, Task) and step.executor == "loop":
        return
    if "workers" in step.model_fields_set and not step._workers_from_resources:
        return
    if replicas <= 1 and not step._workers_from_resources:
        return
    if step.executor == "loop":
        step.executor = "thread"
    step.workers = replicas
    step._workers_from_resources = True
