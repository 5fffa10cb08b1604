"""DeitaFiltering over N rows with D-dimension embeddings: time and memory.

Embeddings are drawn around ``--clusters`` centres (two rows of one centre: cosine similarity
~0.94), so that many candidates are too close to a kept row and the selection has to look past
them, as on real data. Scores are integers 1-6, as DEITA's scorers give.

    python benchmarks/deita_filtering.py [--rows 100000] [--dim 384] [--budget 10000]
                                         [--threshold 0.1]

Prints one JSON object: seconds in ``process``, rows kept, candidates examined, the step's own
arrays (embedding matrix) and the process's peak RSS (which includes the input rows as Python
lists of floats, as a pipeline hands them to a global step).
"""

from __future__ import annotations

import argparse
import json
import resource
import time

import numpy as np


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--dim", type=int, default=384)
    parser.add_argument("--budget", type=int, default=10_000)
    parser.add_argument("--threshold", type=float, default=0.1)
    parser.add_argument("--clusters", type=int, default=20_000)
    args = parser.parse_args()

    from synthflow.steps import DeitaFiltering

    rng = np.random.default_rng(0)
    centres = rng.standard_normal((args.clusters, args.dim)).astype(np.float32)
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    rows = []
    for start in range(0, args.rows, 10_000):
        n = min(10_000, args.rows - start)
        vectors = centres[rng.integers(0, args.clusters, n)]
        vectors = vectors + rng.standard_normal((n, args.dim)).astype(np.float32) * (
            0.25 / np.sqrt(args.dim)
        )
        scores = rng.integers(1, 7, size=(n, 2))
        for i in range(n):
            rows.append(
                {
                    "id": start + i,
                    "evol_instruction_score": int(scores[i, 0]),
                    "evol_response_score": int(scores[i, 1]),
                    "embedding": vectors[i].tolist(),
                }
            )
    rss_inputs = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024

    step = DeitaFiltering(data_budget=args.budget, diversity_threshold=args.threshold)
    step.load()
    start = time.perf_counter()
    kept = [row for batch in step.process(rows) for row in batch]
    seconds = time.perf_counter() - start
    ranks = sorted(
        range(len(rows)),
        key=lambda i: -rows[i]["evol_instruction_score"] * rows[i]["evol_response_score"],
    )
    last = max(ranks.index(r["id"]) for r in kept) if kept else 0
    print(
        json.dumps(
            {
                "rows": args.rows,
                "dim": args.dim,
                "budget": args.budget,
                "threshold": args.threshold,
                "kept": len(kept),
                "candidates_examined": last + 1,
                "seconds": round(seconds, 2),
                "embedding_matrix_mb": round(args.rows * args.dim * 4 / 2**20, 1),
                "peak_rss_mb_with_inputs": round(
                    resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1
                ),
                "rss_mb_inputs_alone": round(rss_inputs, 1),
            }
        )
    )


if __name__ == "__main__":
    main()
