"""The garbage collector's settings for the length of a run.

A run keeps thousands of small objects alive at once (rows in queues and in flight, pending
calls), so with CPython's defaults the collector runs every 700 allocations and each pass walks
the rows that are still alive; and every full pass also walks everything imported (``datasets``,
``pyarrow`` and ``pandas`` are a few hundred thousand objects). Measured on the two-task LLM
benchmark: 0.4 s of collection per 2,000 rows, with single pauses of 90-150 ms in which no
response is read and no request sent.

So while a run is in progress:

- the objects that already exist are frozen (``gc.freeze``): full passes skip them. They are
  unfrozen when the last run ends, so nothing the user owns stays uncollectable afterwards;
- a young-generation pass waits for ``YOUNG_THRESHOLD`` allocations instead of 700.

Reference counting frees almost everything a run allocates; the collector is only needed for
reference cycles, which a run makes few of. A process where the collector is disabled, or where
the application froze objects itself, is left as it is. Runs may overlap (``arun`` from several
tasks, or a notebook's worker thread): the first to start changes the settings, the last to end
restores them.
"""

from __future__ import annotations

import gc
import threading
from collections.abc import Iterator
from contextlib import contextmanager

YOUNG_THRESHOLD = 10_000

_lock = threading.Lock()
_runs = 0
_saved_threshold: tuple[int, int, int] | None = None
_we_froze = False


@contextmanager
def collector_tuned_for_run() -> Iterator[None]:
    global _runs, _saved_threshold, _we_froze
    with _lock:
        if _runs == 0 and gc.isenabled():
            _saved_threshold = gc.get_threshold()
            _we_froze = gc.get_freeze_count() == 0
            if _we_froze:
                gc.freeze()
            young, *older = _saved_threshold
            gc.set_threshold(max(young, YOUNG_THRESHOLD), *older)
        _runs += 1
    try:
        yield
    finally:
        with _lock:
            _runs -= 1
            if _runs == 0 and _saved_threshold is not None:
                gc.set_threshold(*_saved_threshold)
                if _we_froze:
                    gc.unfreeze()
                _saved_threshold, _we_froze = None, False


def freeze_imported() -> None:
    """Freeze what a big import made during a run (the engine imports ``datasets`` while the
    first calls are in flight), so full passes skip it too."""
    with _lock:
        if _runs and _we_froze:
            gc.freeze()
