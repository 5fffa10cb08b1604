"""LLM layer benchmarks against the project's OpenAI-compatible mock server (another process).

    python benchmarks/llm_pipeline.py [pipeline|storm|storm-retry-after|high|all] [--n 2000]

- pipeline: two chained TextGeneration tasks (the second reads the first's `generation` through
  `input_mappings`, as distilabel users chain them), each with its own OpenAILLM on the mock;
  N = 2000, latency 200 ms, concurrency 64 per task. Ideal wall time N*L/C + L (the stages
  overlap). Targets: achieved/ideal >= 0.90, <= 1.5 CPU-s per 1,000 requests, peak RSS <= 200 MB.
  Runs the pipeline twice in one process and reports both: the first run also pays one-time
  imports; the second is a new pipeline in a process that has imported everything.
- storm: the server admits 30 requests in flight and answers 429 beyond that; one task with
  concurrency 64. Targets: zero failed rows, throughput >= 85% of what 30 in flight allow
  (N*L/30 + L). After a warm-up run on another server; also reports a reference run of the
  same rows with 30 in flight and no 429, which shows what the machine itself allows.
- storm-retry-after: the same, each 429 carrying ``Retry-After: 1`` as real providers send it;
  N = 600 unless ``--n`` says otherwise. Same targets.
- high: one task with 256 in flight at 200 ms; reports requests/s and CPU per request.

CPU is this process's CPU time (the server's is not counted). Prints one JSON object.
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from mock_llm_server import fetch_stats, running_server

LATENCY = 0.2


def _run(base_url: str, n: int, stages: int, concurrency: int) -> dict[str, Any]:
    from synthflow.models.llms.openai import OpenAILLM
    from synthflow.pipeline import Pipeline
    from synthflow.steps import LoadDataFromDicts
    from synthflow.steps.tasks import ERROR_COLUMN, TextGeneration

    data = [{"instruction": f"Write a haiku about the number {i}."} for i in range(n)]
    with tempfile.TemporaryDirectory() as cache, Pipeline("llm-bench", cache_dir=cache) as p:
        previous: Any = LoadDataFromDicts(name="load", data=data)
        for stage in range(stages):
            # Chained as distilabel users chain tasks: each later stage reads the previous
            # stage's answer as its instruction and replaces `generation` with its own.
            task = TextGeneration(
                name=f"gen_{stage}",
                llm=OpenAILLM(model="mock", base_url=base_url, api_key="sk-bench"),
                concurrency=concurrency,
                input_mappings={} if stage == 0 else {"instruction": "generation"},
            )
            previous >> task
            previous = task
        sent_before = fetch_stats(base_url)["requests"]
        wall0, cpu0 = time.perf_counter(), time.process_time()
        distiset = p.run(progress=False, use_cache=False)
        wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
        # Every stage's request reaches the server: none is mistaken for another's answer.
        reached = fetch_stats(base_url)["requests"] - sent_before
        if reached < n * stages:
            raise SystemExit(f"only {reached} of {n * stages} requests reached the server")
        # Taken before the check below turns every row into a Python dict.
        peak_rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    rows = list(distiset["default"]["train"])
    failed = sum(1 for r in rows if r.get(ERROR_COLUMN)) + (n - len(rows))
    requests = sum(s.llm.requests for s in distiset.stats.values() if s.llm is not None)
    retries = sum(s.llm.retries for s in distiset.stats.values() if s.llm is not None)
    return {
        "wall_s": round(wall, 3),
        "cpu_s": round(cpu, 3),
        "requests": requests,
        "requests_reaching_server": reached,
        "retries": retries,
        "failed_rows": failed,
        "cpu_s_per_1000_requests": round(cpu / max(requests, 1) * 1000, 3),
        "peak_rss_mb": round(peak_rss_mb, 1),
    }


def pipeline(n: int) -> dict[str, Any]:
    c = 64
    ideal = n * LATENCY / c + LATENCY
    with running_server(latency=LATENCY) as url:
        # The first run of a process also pays one-time imports: the HTTP transport (~0.1 s
        # before the first request) and datasets (~0.5 s of CPU during the first waves).
        first = _run(url, n, stages=2, concurrency=c)
        # The same pipeline, built anew, in a process that has run one before (a notebook, a
        # service, any second run): what the engine and the LLM layer reach.
        later = _run(url, n, stages=2, concurrency=c)
    return {
        "scenario": "two chained TextGeneration, C=64 each",
        "n": n,
        "ideal_s": round(ideal, 3),
        "achieved_over_ideal": round(ideal / later["wall_s"], 3),
        "achieved_over_ideal_first_run_in_process": round(ideal / first["wall_s"], 3),
        "first_run": first,
        **later,
        "cpu_s_per_1000_requests_first_run": first["cpu_s_per_1000_requests"],
        "peak_rss_mb": max(first["peak_rss_mb"], later["peak_rss_mb"]),
    }


def storm(n: int, retry_after: float | None = None) -> dict[str, Any]:
    cap = 30
    # A short run against another server first: the figures then leave out the first run's
    # one-time imports (a fixed cost that a short run would read as throughput). Another
    # server is another endpoint, so the limiter learns nothing about the capped one here.
    with running_server(latency=LATENCY) as warm_url:
        _run(warm_url, 128, stages=1, concurrency=64)
    with running_server(latency=LATENCY, max_inflight=cap, retry_after=retry_after) as url:
        result = _run(url, n, stages=1, concurrency=64)
        server = fetch_stats(url)
    # What this machine reaches with 30 in flight and no 429 at all, in the same process.
    with running_server(latency=LATENCY, max_inflight=cap) as reference_url:
        reference = _run(reference_url, n, stages=1, concurrency=cap)
    ideal = n * LATENCY / cap + LATENCY
    header = "" if retry_after is None else f" with Retry-After: {retry_after:g}"
    return {
        "scenario": f"429 storm: server admits 30 in flight{header}, task concurrency 64",
        "n": n,
        "ideal_s_at_30_in_flight": round(ideal, 3),
        "throughput_over_ideal": round(ideal / result["wall_s"], 3),
        "reference_wall_s_at_concurrency_30": reference["wall_s"],
        "throughput_over_reference": round(reference["wall_s"] / result["wall_s"], 3),
        "server": server,
        **result,
    }


def storm_retry_after(n: int) -> dict[str, Any]:
    # As real providers answer a concurrency limit: each 429 asks to wait a second.
    return storm(n, retry_after=1.0)


def high(n: int) -> dict[str, Any]:
    c = 256
    with running_server(latency=LATENCY) as url:
        result = _run(url, n, stages=1, concurrency=c)
    ideal = n * LATENCY / c + LATENCY
    return {
        "scenario": "one task, 256 in flight",
        "n": n,
        "requests_per_s": round(n / result["wall_s"], 1),
        "cpu_ms_per_request": round(result["cpu_s"] / max(result["requests"], 1) * 1000, 3),
        "achieved_over_ideal": round(ideal / result["wall_s"], 3),
        **result,
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument(
        "scenario",
        nargs="?",
        default="all",
        choices=["pipeline", "storm", "storm-retry-after", "high", "all"],
    )
    parser.add_argument(
        "--n",
        type=int,
        default=None,
        help="rows (default: 600 for the storm with Retry-After, 2000 for the others)",
    )
    args = parser.parse_args()
    scenarios = {
        "pipeline": pipeline,
        "storm": storm,
        "storm-retry-after": storm_retry_after,
        "high": high,
    }
    chosen = list(scenarios) if args.scenario == "all" else [args.scenario]
    default_n = {"storm-retry-after": 600}
    results = {name: scenarios[name](args.n or default_n.get(name, 2000)) for name in chosen}
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
