"""MinHashDedup: recall of planted near duplicates, false removals, docs/s and peak RSS.

Documents of 200-400 words are drawn from a Zipf-like vocabulary of 50,000 made-up words; 5% of
them are planted near duplicates: a copy of an earlier original with ``--changes`` words
replaced. Documents are generated batch by batch from their index (a planted copy regenerates
its original), so the benchmark never holds the corpus and peak RSS is the step's own.

- recall: planted copies marked as duplicates / planted copies (target >= 0.95);
- false removals: originals marked as duplicates / originals (target <= 1%);
- docs/s: documents / seconds spent in ``MinHashDedup.process`` (generation not counted), by
  the wall clock and by CPU time (the fairer figure on a shared machine);
- peak RSS: of the process, which runs one N alone (target: at 1M <= 1.5x at 100k).

    python benchmarks/minhash_dedup.py [--sizes 100000,1000000] [--threshold 0.9] [--changes 3]
    python benchmarks/minhash_dedup.py --pipeline --sizes 100000   # through a Pipeline run
    python benchmarks/minhash_dedup.py --distilabel /path/to/venv/bin/python --tokenizer ngrams

Each N runs in a fresh subprocess. Prints one JSON object per N, then a summary.
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
from typing import Any

import numpy as np

VOCABULARY = 50_000
LETTERS = np.array(list("abcdefghijklmnopqrstuvwxyz"))


class Corpus:
    """Document i, original or planted copy, made from (seed, i) alone."""

    def __init__(self, n: int, dup_rate: float, changes: int, seed: int) -> None:
        rng = np.random.default_rng(seed)
        lengths = rng.integers(3, 10, size=VOCABULARY)
        self.words = np.array(["".join(rng.choice(LETTERS, size=k)) for k in lengths], dtype=object)
        weights = 1.0 / (np.arange(VOCABULARY) + 20.0)
        self.cdf = np.cumsum(weights / weights.sum())
        self.seed, self.changes = seed, changes
        # Planted copies come after their original, at most 5,000 documents later, and never
        # copy a copy, so each planted pair is (original, copy).
        planted = rng.random(n) < dup_rate
        planted[0] = False
        self.source = np.full(n, -1, dtype=np.int64)
        originals = np.flatnonzero(~planted)
        for j in np.flatnonzero(planted):
            lo = np.searchsorted(originals, j - 5000)
            hi = np.searchsorted(originals, j)
            self.source[j] = originals[rng.integers(lo, hi)]

    def _word_ids(self, i: int) -> np.ndarray:
        rng = np.random.default_rng([self.seed, i])
        return np.searchsorted(self.cdf, rng.random(int(rng.integers(200, 401))))

    def text(self, i: int) -> str:
        source = int(self.source[i])
        if source < 0:
            return " ".join(self.words[self._word_ids(i)])
        ids = self._word_ids(source).copy()
        rng = np.random.default_rng([self.seed, i, 1])
        at = rng.choice(ids.size, size=self.changes, replace=False)
        ids[at] = rng.integers(0, VOCABULARY, size=self.changes)
        return " ".join(self.words[ids])

    def batches(self, n: int, batch_size: int) -> Iterator[list[dict[str, Any]]]:
        for start in range(0, n, batch_size):
            yield [
                {"id": i, "text": self.text(i)} for i in range(start, min(n, start + batch_size))
            ]


def score(corpus: Corpus, removed: np.ndarray) -> dict[str, float]:
    planted = corpus.source[: removed.size] >= 0
    return {
        "planted": int(planted.sum()),
        "recall": float(removed[planted].mean()),
        "false_removals": float(removed[~planted].mean()),
    }


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def run_standalone(args: argparse.Namespace, n: int) -> dict[str, Any]:
    stand_in = False
    if args.distilabel:  # run by a Python that has distilabel[minhash] installed
        from distilabel.steps import MinHashDedup

        if args.tokenizer == "words":
            stand_in = _tokenize_words_without_nltk_data()
    else:
        from synthflow.steps import MinHashDedup

    corpus = Corpus(n, args.dup_rate, args.changes, args.seed)
    step = MinHashDedup(threshold=args.threshold, tokenizer=args.tokenizer)
    step.load()
    removed = np.zeros(n, dtype=bool)
    busy = busy_cpu = 0.0
    for batch in corpus.batches(n, args.batch_size):
        start, start_cpu = time.perf_counter(), time.process_time()
        (out,) = list(step.process(batch))
        busy += time.perf_counter() - start
        busy_cpu += time.process_time() - start_cpu
        for row in out:
            removed[row["id"]] = not row["keep_row_after_minhash_filtering"]
    index = getattr(step, "_index", None)
    return {
        "n": n,
        "mode": "distilabel 1.5.3" if args.distilabel else "standalone",
        "tokenizer": args.tokenizer + (" (regex stand-in for nltk)" if stand_in else ""),
        "threshold": args.threshold,
        **score(corpus, removed),
        "docs_per_s": round(n / busy),
        "docs_per_cpu_s": round(n / busy_cpu),
        "seconds_in_step": round(busy, 2),
        "index_mb": round(index.nbytes / 2**20, 1) if index is not None else None,
        "peak_rss_mb": round(peak_rss_mb(), 1),
    }


def _tokenize_words_without_nltk_data() -> bool:
    """distilabel's "words" tokenizer is nltk's word_tokenize, which needs the punkt_tab data
    (a download). Without it, put a regex tokenizer in its place: faster than nltk's, so the
    distilabel figure is an upper bound on its speed. Returns whether it did."""
    import re

    import distilabel.steps.filtering.minhash as minhash
    import nltk

    try:
        nltk.word_tokenize("a test")
        return False
    except LookupError:
        pattern = re.compile(r"\w+|[^\w\s]")
        minhash.tokenized_on_words = lambda texts: [  # type: ignore[attr-defined]
            {w.encode("utf-8") for w in pattern.findall(t)} for t in texts
        ]
        return True


def run_pipeline(args: argparse.Namespace, n: int) -> dict[str, Any]:
    from synthflow.pipeline import Pipeline
    from synthflow.steps import MinHashDedup

    corpus = Corpus(n, args.dup_rate, args.changes, args.seed)
    with tempfile.TemporaryDirectory() as cache:
        with Pipeline("minhash", cache_dir=cache) as pipeline:
            source = Documents(
                name="documents",
                n=n,
                dup_rate=args.dup_rate,
                changes=args.changes,
                seed=args.seed,
                batch_size=args.batch_size,
            )
            dedup = MinHashDedup(
                name="dedup",
                threshold=args.threshold,
                tokenizer=args.tokenizer,
                input_batch_size=args.batch_size,
                executor=args.executor,
            )
            source >> dedup
        start = time.perf_counter()
        distiset = pipeline.run(progress=False, use_cache=False)
        wall = time.perf_counter() - start
        table = distiset["default"]["train"].select_columns(
            ["id", "keep_row_after_minhash_filtering"]
        )
        removed = np.zeros(n, dtype=bool)
        ids = np.asarray(table["id"])
        removed[ids] = ~np.asarray(table["keep_row_after_minhash_filtering"], dtype=bool)
        busy = distiset.stats["dedup"].busy_seconds
    return {
        "n": n,
        "mode": f"pipeline ({args.executor})",
        **score(corpus, removed),
        "docs_per_s_wall": round(n / wall),
        "wall_s": round(wall, 2),
        "step_busy_s": round(busy, 2),
        "peak_rss_mb": round(peak_rss_mb(), 1),
    }


try:  # the distilabel venv runs this file too, without synthflow
    from synthflow.steps import GeneratorStep
    from synthflow.steps.base import Row

    class Documents(GeneratorStep):
        """The corpus as a source (at module level: worker processes unpickle the steps)."""

        n: int
        dup_rate: float
        changes: int
        seed: int

        @property
        def outputs(self) -> list[str]:
            return ["id", "text"]

        def process(self, offset: int = 0) -> Iterator[list[Row]]:
            corpus = Corpus(self.n, self.dup_rate, self.changes, self.seed)
            yield from corpus.batches(self.n, self.batch_size)

except ImportError:
    pass


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="100000,1000000")
    parser.add_argument("--dup-rate", type=float, default=0.05)
    parser.add_argument("--changes", type=int, default=3)
    parser.add_argument("--threshold", type=float, default=0.9)
    parser.add_argument("--tokenizer", default="words", choices=["words", "ngrams"])
    parser.add_argument("--batch-size", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--pipeline", action="store_true", help="run through Pipeline.run")
    parser.add_argument("--executor", default="thread", choices=["loop", "thread", "process"])
    parser.add_argument(
        "--distilabel",
        metavar="PYTHON",
        help="run distilabel's MinHashDedup instead, with this Python (a venv with "
        "distilabel[minhash]==1.5.3); its 'words' tokenizer needs nltk's punkt_tab data",
    )
    parser.add_argument("--one", type=int, help=argparse.SUPPRESS)  # a child runs one size
    args = parser.parse_args()

    if args.one is not None:
        run = run_pipeline if args.pipeline else run_standalone
        print(json.dumps(run(args, args.one)))
        return

    results = []
    for n in (int(s) for s in args.sizes.split(",")):
        argv = [a for a in sys.argv[1:] if not a.startswith("--sizes")]
        if "--sizes" in sys.argv:  # drop the value that followed a separate --sizes
            i = sys.argv.index("--sizes")
            argv = sys.argv[1:i] + sys.argv[i + 2 :]
        out = subprocess.run(
            [args.distilabel or sys.executable, __file__, *argv, "--one", str(n)],
            check=True,
            capture_output=True,
            text=True,
            env={**os.environ, "PYTHONHASHSEED": "0"},
        ).stdout
        result = json.loads(out.strip().splitlines()[-1])
        print(json.dumps(result), flush=True)
        results.append(result)
    if len(results) > 1:
        small, large = results[0], results[-1]
        print(
            json.dumps(
                {
                    "rss_ratio": round(large["peak_rss_mb"] / small["peak_rss_mb"], 2),
                    "sizes": [small["n"], large["n"]],
                }
            )
        )


if __name__ == "__main__":
    main()
