"""Engine overhead: rows per second through 3 pass-through steps, and peak RSS, for each N.

Each N runs in a fresh subprocess so that its peak RSS is its own. Prints one JSON object.

    python benchmarks/engine_overhead.py [--sizes 10000,100000,1000000] [--batch-size 50] [--dedup]

Targets (issue 2): >= 4,500,000 rows/minute on one core (100x distilabel 1.5.3's 727 rows/s on
this machine), and peak RSS at 1M rows within 1.3x of peak RSS at 10k.

``--dedup`` adds a global step at the end, ``DropDuplicates`` on the row number (every row is
distinct, so every row goes through): its input spills to disk and its output streams on, so
what grows with N is only its set of 16-byte row hashes.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator

DISTILABEL_ROWS_PER_SECOND = 727  # distilabel 1.5.3, same pipeline shape, this machine


def run_one(n: int, batch_size: int, dedup: bool) -> dict[str, float]:
    from synthflow.pipeline import Pipeline
    from synthflow.steps import DropDuplicates, GeneratorStep, Step, StepInput
    from synthflow.steps.base import Row

    class Source(GeneratorStep):
        n: int

        @property
        def outputs(self) -> list[str]:
            return ["instruction", "n"]

        def process(self, offset: int = 0) -> Iterator[list[Row]]:
            for start in range(0, self.n, self.batch_size):
                stop = min(start + self.batch_size, self.n)
                yield [{"instruction": f"row {i}", "n": i} for i in range(start, stop)]

    class Passthrough(Step):
        def process(self, inputs: StepInput) -> Iterator[list[Row]]:
            yield inputs

    with tempfile.TemporaryDirectory() as cache, Pipeline("overhead", cache_dir=cache) as p:
        source = Source(name="source", n=n, batch_size=batch_size)
        a, b, c = (Passthrough(name=x, input_batch_size=batch_size) for x in "abc")
        source >> a >> b >> c
        if dedup:
            c >> DropDuplicates(name="dedup", columns=["n"])
        wall0, cpu0 = time.perf_counter(), time.process_time()
        distiset = p.run(progress=False)
        wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
        assert len(distiset["default"]["train"]) == n
    return {
        "n": n,
        "batch_size": batch_size,
        "wall_s": round(wall, 3),
        "cpu_s": round(cpu, 3),
        "rows_per_s": round(n / wall),
        "rows_per_min_per_core": round(n / cpu * 60),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", default="10000,100000,1000000")
    parser.add_argument("--batch-size", type=int, default=50)
    parser.add_argument("--dedup", action="store_true")
    parser.add_argument("--one", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        print(json.dumps(run_one(args.one, args.batch_size, args.dedup)))
        return
    results = []
    for n in (int(s) for s in args.sizes.split(",")):
        out = subprocess.run(
            [
                *(sys.executable, __file__, "--one", str(n), "--batch-size", str(args.batch_size)),
                *(["--dedup"] if args.dedup else []),
            ],
            capture_output=True,
            text=True,
            check=True,
            env={**os.environ, "CI": "1"},
        )
        results.append(json.loads(out.stdout.strip().splitlines()[-1]))
    small, large = results[0], results[-1]
    summary = {
        "results": results,
        "rss_ratio_largest_vs_smallest": round(large["peak_rss_mb"] / small["peak_rss_mb"], 3),
        "speedup_vs_distilabel": round(large["rows_per_s"] / DISTILABEL_ROWS_PER_SECOND, 1),
        "target_rows_per_min": 4_500_000,
    }
    print(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
