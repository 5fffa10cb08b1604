"""Per-step statistics of a run, available on the result as ``distiset.stats``."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass
class StepStats:
    """Counters of one step. ``busy_seconds`` is time with work under way; ``queue_fill`` the
    peak fill (0..1) of its input queue: near 1, this step is the bottleneck."""

    name: str
    rows_in: int = 0
    rows_out: int = 0
    batches: int = 0
    errors: int = 0
    busy_seconds: float = 0.0
    queue_fill: float = 0.0
    spilled: bool = False
    llm: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)
