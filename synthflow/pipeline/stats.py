"""Per-step statistics of a run, available on the result as ``distiset.stats``."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from synthflow.models.callpath.calls import LLMCallStats


@dataclass
class StepStats:
    """Counters of one step, updated while the run is in progress.

    ``rows_out`` counts rows as they leave the step. ``errors`` counts the rows that failed in
    this step (a row that failed upstream is counted there, not again here); ``filtered`` the
    rows it took in and chose not to pass on (a filter, a dedup; failed rows are not among
    them). ``rows_total`` is
    how many rows the step is expected to take in this run when its sources can tell (a
    dataset of known length), else None; ``source`` marks a generator step. ``busy_seconds`` is
    time with work under way; ``queue_fill`` the peak fill (0..1) of its input queue: near 1,
    this step is the bottleneck."""

    name: str
    rows_in: int = 0
    rows_out: int = 0
    batches: int = 0
    errors: int = 0
    filtered: int = 0
    busy_seconds: float = 0.0
    queue_fill: float = 0.0
    spilled: bool = False
    source: bool = False
    rows_total: int | None = None
    llm: LLMCallStats | None = None

    def as_dict(self) -> dict[str, Any]:
        out = {k: v for k, v in asdict(self).items() if k != "llm"}
        out["llm"] = self.llm.as_dict() if self.llm is not None else None
        return out
