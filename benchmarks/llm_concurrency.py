"""LLM concurrency: two chained LLM steps on the offline LLM; achieved time vs the ideal.

    python benchmarks/llm_concurrency.py [--n 2000] [--latency 0.2] [--concurrency 64]

With N rows, latency L and C calls in flight per step, the stages overlap, so the ideal wall
time is N*L/C + L. Prints JSON with achieved/ideal (ideal_s / wall_s; target >= 0.95).
"""

from __future__ import annotations

import argparse
import json
import resource
import tempfile
import time


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=2000)
    parser.add_argument("--latency", type=float, default=0.2)
    parser.add_argument("--concurrency", type=int, default=64)
    args = parser.parse_args()

    from synthflow.models.llms import OfflineLLM
    from synthflow.pipeline import Pipeline
    from synthflow.steps import LoadDataFromDicts
    from synthflow.steps.tasks import TextGeneration

    data = [{"instruction": f"Write a haiku about the number {i}."} for i in range(args.n)]
    with tempfile.TemporaryDirectory() as cache, Pipeline("llm-bench", cache_dir=cache) as p:
        load = LoadDataFromDicts(name="load", data=data)
        first = TextGeneration(
            name="first",
            llm=OfflineLLM(latency=args.latency),
            concurrency=args.concurrency,
            output_mappings={"generation": "draft", "model_name": "draft_model"},
        )
        second = TextGeneration(
            name="second",
            llm=OfflineLLM(latency=args.latency),
            concurrency=args.concurrency,
            input_mappings={"instruction": "draft"},
        )
        load >> first >> second
        wall0, cpu0 = time.perf_counter(), time.process_time()
        distiset = p.run(progress=False)
        wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
    assert len(distiset["default"]["train"]) == args.n
    ideal = args.n * args.latency / args.concurrency + args.latency
    print(
        json.dumps(
            {
                "n": args.n,
                "latency_s": args.latency,
                "concurrency": args.concurrency,
                "ideal_s": round(ideal, 3),
                "wall_s": round(wall, 3),
                "achieved_over_ideal": round(ideal / wall, 3),
                "cpu_s_per_1000_rows": round(cpu / args.n * 1000, 3),
                "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
                "target": 0.95,
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
