"""Ray: rows/s of one pipeline on 1 shard and on 3, against a mock server with fixed latency.

    python benchmarks/ray_scaling.py [--n 1800] [--latency 0.2] [--concurrency 16] [--generator]
        [--storage]

Each shard's task keeps ``concurrency`` calls in flight, and the endpoint's limit doesn't bind,
so 3 shards should make rows about 3x as fast as one (target: >= 2.7x). A second part sets the
endpoint's budget (``max_concurrency``) below 3 x concurrency and reports the server's peak in
flight (must not exceed the budget) and its 429s (must be 0).

With ``--generator`` the pipeline is a generator task instead (EvolInstructGenerator writing
``--n`` instructions and their answers: independent rows made by the windowed writer, as
MagpieGenerator's are), whose shards each make their own rows; the budget part is skipped.

With ``--storage`` the 3-shard run is also timed with ``storage=`` (a local directory): shards
write their rows there and checkpoint their LLM answers every 5 s (the default); the extra
wall time over the run without is reported.

Ray starts once, on 127.0.0.1, before anything is timed; each measured run has its own cache.
Prints JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from mock_llm_server import running_server


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=1800)
    parser.add_argument("--latency", type=float, default=0.2)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--generator", action="store_true")
    parser.add_argument("--storage", action="store_true")
    args = parser.parse_args()

    os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"
    import urllib.request

    import ray

    from synthflow.models import OpenAILLM
    from synthflow.pipeline import Pipeline
    from synthflow.steps import LoadDataFromDicts
    from synthflow.steps.tasks import EvolInstructGenerator, TextGeneration

    def run(
        url: str,
        shards: int,
        budget: int | None = None,
        n: int = args.n,
        storage: str | None = None,
    ) -> float:
        data = [{"instruction": f"Write a haiku about the number {i}."} for i in range(n)]
        llm = OpenAILLM(model="m", base_url=url, api_key="k", max_concurrency=budget)
        with tempfile.TemporaryDirectory() as cache, Pipeline("ray-bench", cache_dir=cache) as p:
            if args.generator:
                EvolInstructGenerator(
                    llm=llm,
                    num_instructions=n,
                    num_evolutions=0,
                    min_length=1,
                    generate_answers=True,
                    batch_size=args.concurrency,
                    concurrency=args.concurrency,
                )
            else:
                load = LoadDataFromDicts(data=data, batch_size=args.concurrency)
                generate = TextGeneration(
                    llm=llm, concurrency=args.concurrency, input_batch_size=args.concurrency
                )
                load >> generate
            started = time.perf_counter()
            distiset = p.run(backend="ray", shards=shards, storage=storage, progress=False)
            wall = time.perf_counter() - started
        assert len(distiset["default"]["train"]) == n
        return wall

    def server_stats(url: str) -> dict[str, int]:
        with urllib.request.urlopen(url.removesuffix("/v1") + "/stats") as response:
            stats: dict[str, int] = json.loads(response.read())
        return stats

    with tempfile.TemporaryDirectory() as temp:
        ray.init(
            num_cpus=3,
            _node_ip_address="127.0.0.1",
            _temp_dir=temp,
            include_dashboard=False,
            log_to_driver=False,
        )
        try:
            with running_server(latency=args.latency) as url:
                run(url, 3, n=60)  # warm: worker processes started, imports done
                one = run(url, 1)
                three = run(url, 3)
                stored = None
                if args.storage:
                    stored = run(url, 3, storage=f"{temp}/storage")
                stats = server_stats(url)
            budget = 2 * args.concurrency  # below 3 x concurrency: the budget binds
            bound = None
            if not args.generator:
                with running_server(latency=args.latency, max_inflight=budget) as url:
                    bound = run(url, 3, budget=budget)
                    stats = server_stats(url)
        finally:
            ray.shutdown()
    rows_per_s = {"1": args.n / one, "3": args.n / three}
    print(
        json.dumps(
            {
                "pipeline": "EvolInstructGenerator" if args.generator else "TextGeneration",
                "n": args.n,
                "latency_s": args.latency,
                "concurrency_per_shard": args.concurrency,
                "rows_per_s": {k: round(v, 1) for k, v in rows_per_s.items()},
                "speedup_3_over_1": round(rows_per_s["3"] / rows_per_s["1"], 3),
                "wall_s_3": round(three, 2),
                "wall_s_3_with_storage": None if stored is None else round(stored, 2),
                "ideal_speedup": 3.0,
                "budget": budget,
                "budget_wall_s": None if bound is None else round(bound, 2),
                "budget_ideal_s": round(args.n * args.latency / budget, 2),
                "server": stats,
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
