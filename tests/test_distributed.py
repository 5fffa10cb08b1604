"""The parts of a distributed run that need no Ray: shard ownership, the endpoint budget's
leases, and the cutting of a pipeline into stages at its global steps.

The budget and the stages are checked on generated cases against the rules they must keep,
not on a handful of examples.
"""

from __future__ import annotations

import random
from typing import Any

import pytest

from synthflow.distributed.budget import BudgetLedger, EndpointBudget
from synthflow.distributed.stages import StageRows, stages
from synthflow.pipeline._shards import Shard
from synthflow.pipeline._validate import plan
from synthflow.steps import LoadDataFromDicts, StepInput, step
from synthflow.steps.base import ROW_ID, GlobalStep

# -- shards -----------------------------------------------------------------------------------


@pytest.mark.parametrize("count", [1, 2, 3, 7])
@pytest.mark.parametrize("block", [1, 10, 50])
def test_every_row_belongs_to_exactly_one_shard_in_whole_blocks(count: int, block: int) -> None:
    shards = [Shard(i, count, block) for i in range(count)]
    for row_id in range(1000):
        owners = [s.index for s in shards if s.owns(row_id)]
        assert len(owners) == 1
        assert owners[0] == Shard(0, count, block).index + (row_id // block) % count


def test_a_shard_outside_its_count_is_refused() -> None:
    with pytest.raises(ValueError, match=r"index must be in 0\.\.count-1"):
        Shard(3, 3)


# -- the budget -------------------------------------------------------------------------------


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


@pytest.mark.parametrize("seed", range(60))
def test_shares_never_let_the_fleet_exceed_the_budget(seed: int) -> None:
    rng = random.Random(seed)
    budget = rng.randint(1, 40)
    workers = [f"w{i}" for i in range(rng.randint(1, 6))]
    clock = FakeClock()
    ledger = BudgetLedger(
        EndpointBudget(max_concurrency=budget),
        lease_seconds=2.0,
        expected_workers=workers if rng.random() < 0.5 else (),
        clock=clock,
    )
    in_flight = dict.fromkeys(workers, 0)
    share = dict.fromkeys(workers, 0)
    dead: set[str] = set()
    for _ in range(150):
        clock.now += rng.choice([0.0, 0.1, 0.25, 0.5])  # live workers renew twice a lease
        for worker in rng.sample(workers, len(workers)):
            if worker in dead:
                continue
            event = rng.random()
            if event < 0.01:  # the worker dies: its requests die with it, it renews no more
                dead.add(worker)
                in_flight[worker] = 0
                continue
            if event < 0.03:
                ledger.release(worker)
                in_flight[worker] = share[worker] = 0
                continue
            # Requests finish, and new ones start within the share it holds (its limiter).
            finished = rng.randint(0, in_flight[worker])
            room = max(share[worker] - (in_flight[worker] - finished), 0)
            in_flight[worker] += rng.randint(0, room) - finished
            assert sum(in_flight.values()) <= budget
            got_429 = 1 if rng.random() < 0.03 else 0
            total = ledger_total(ledger, worker) + got_429
            given = ledger.renew(worker, in_flight[worker], total)
            assert given.concurrency is not None and given.concurrency >= 0
            share[worker] = given.concurrency
            assert 1 <= (ledger.limit or 0) <= budget
    # Once the leases of the dead have expired (and of those expected who never came), and
    # every live worker is idle and has renewed twice, the whole limit is handed out.
    live = [w for w in workers if w not in dead]
    clock.now += 61.0
    for _ in range(2):
        for worker in live:
            share[worker] = ledger.renew(worker, 0, ledger_total(ledger, worker)).concurrency or 0
    if live and ledger.limit is not None and ledger.limit >= len(live):
        assert sum(share[w] for w in live) == ledger.limit


def ledger_total(ledger: BudgetLedger, worker: str) -> int:
    lease = ledger._leases.get(worker)
    return lease.rate_limited_total if lease is not None else 0


def test_idle_workers_split_the_budget_evenly_and_a_departure_frees_its_share() -> None:
    clock = FakeClock()
    ledger = BudgetLedger(EndpointBudget(max_concurrency=10), expected_workers=["a", "b", "c"])
    ledger._clock = clock
    shares = {w: ledger.renew(w).concurrency for w in "abc"}
    assert shares == {"a": 4, "b": 3, "c": 3}
    ledger.release("c")
    assert ledger.renew("a").concurrency == 5
    assert ledger.renew("b").concurrency == 5


def test_a_share_waits_for_what_another_worker_still_has_in_flight() -> None:
    clock = FakeClock()
    ledger = BudgetLedger(EndpointBudget(max_concurrency=8), clock=clock)
    assert ledger.renew("a", 0).concurrency == 8  # alone: the whole budget
    assert ledger.renew("a", 8).concurrency == 8
    assert ledger.renew("b", 0).concurrency == 0  # a still holds all 8
    assert ledger.renew("a", 8).concurrency == 4  # a's share shrinks; its requests finish
    assert ledger.renew("b", 0).concurrency == 0
    assert ledger.renew("a", 3).concurrency == 4
    assert ledger.renew("b", 0).concurrency == 4


def test_a_lease_not_renewed_expires() -> None:
    clock = FakeClock()
    ledger = BudgetLedger(EndpointBudget(max_concurrency=6), lease_seconds=2.0, clock=clock)
    assert ledger.renew("a", 3).concurrency == 6
    assert ledger.renew("b", 0).concurrency == 0  # a may still start 3 more
    clock.now += 2.5  # a stopped renewing: its worker is gone
    assert ledger.renew("b", 0).concurrency == 6
    assert ledger.workers == ["b"]


def test_a_429_anywhere_cuts_the_limit_for_everyone_and_it_grows_back() -> None:
    clock = FakeClock()
    ledger = BudgetLedger(EndpointBudget(max_concurrency=20), lease_seconds=2.0, clock=clock)
    ledger.renew("a", 10)
    ledger.renew("b", 10, rate_limited_total=1)
    assert ledger.limit == 18  # 0.9 x the 20 in flight
    assert ledger.rate_limited_total == 1
    for _ in range(10):
        clock.now += 0.5
        ledger.renew("a", 0)
        ledger.renew("b", 0, rate_limited_total=1)
    assert ledger.limit == 20


def test_rates_are_divided_between_the_workers() -> None:
    ledger = BudgetLedger(
        EndpointBudget(requests_per_minute=600, tokens_per_minute=90_000),
        expected_workers=["a", "b", "c"],
    )
    share = ledger.renew("a")
    assert share.concurrency is None
    assert share.requests_per_minute == 200
    assert share.tokens_per_minute == 30_000


# -- stages ------------------------------------------------------------------------------------


@step()
def Pass(inputs: StepInput):  # type: ignore[no-untyped-def]
    yield inputs


@step(step_type="global")
def Everything(inputs: StepInput):  # type: ignore[no-untyped-def]
    yield inputs


def random_dag(rng: random.Random) -> tuple[dict[str, Any], list[tuple[str, str]]]:
    steps: dict[str, Any] = {"load": LoadDataFromDicts(name="load", data=[{"x": 1}])}
    edges: list[tuple[str, str]] = []
    for i in range(rng.randint(1, 9)):
        name = f"s{i}"
        kind = Everything if rng.random() < 0.3 else Pass
        steps[name] = kind(name=name)
        for pred in rng.sample(list(steps)[:-1], k=min(len(steps) - 1, rng.randint(1, 2))):
            edges.append((pred, name))
    return steps, edges


@pytest.mark.parametrize("seed", range(80))
def test_stages_run_every_step_once_after_what_it_reads(seed: int) -> None:
    rng = random.Random(seed)
    steps, edges = random_dag(rng)
    full = plan(steps, edges)
    made: dict[str, Any] = {}
    ran: list[str] = []
    for stage in stages(full, made):
        own = [n for n, s in stage.plan.steps.items() if not isinstance(s, StageRows)]
        assert sorted(stage.inputs) == sorted(
            n for n, s in stage.plan.steps.items() if isinstance(s, StageRows)
        )
        if stage.sharded:
            assert not any(isinstance(stage.plan.steps[n], GlobalStep) for n in own)
        else:
            assert len(own) == 1 and isinstance(stage.plan.steps[own[0]], GlobalStep)
        for name in own:
            assert name not in ran
            for pred in full.predecessors[name]:
                assert pred in own or (pred in ran and pred in stage.inputs)
            assert stage.plan.predecessors[name] == full.predecessors[name]  # connection order
        ran += own
        # The stage hands on what later steps read, and keeps the pipeline's own leaves.
        for name in own:
            later = [s for s in full.successors[name] if s not in own]
            if later or not full.successors[name]:
                assert name in stage.plan.leaves
                made[name] = None
    assert sorted(ran) == sorted(full.steps)


def test_stage_rows_keep_their_lineage_ids_and_skip_below_the_offset() -> None:
    import pyarrow as pa

    table = pa.table({"x": [1, 2, 3, 4], ROW_ID: [3, 7, 8, 20]})
    source = StageRows(name="s", parts=[table], columns=["x"], batch_size=2)
    assert source.outputs == ["x"]
    assert list(source.process(8)) == [[{"x": 3, ROW_ID: 8}, {"x": 4, ROW_ID: 20}]]
    assert list(StageRows(name="e").process()) == []
