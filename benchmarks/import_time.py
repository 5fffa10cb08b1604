"""How long `import synthflow` (and its public subpackages) takes in a fresh interpreter.

    python benchmarks/import_time.py [--repeat 10]

Target (issue 2): under 0.3 s on this machine; `datasets` and `rich` stay unimported. Reports the
median over fresh processes, and the bare interpreter's start-up for reference. Prints JSON.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys

CODE = (
    "import time, sys; t = time.perf_counter();"
    "import synthflow, synthflow.pipeline, synthflow.steps, synthflow.steps.tasks;"
    "import synthflow.models;"
    "print(time.perf_counter() - t);"
    "print(','.join(m for m in ('datasets', 'rich', 'pyarrow') if m in sys.modules))"
)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeat", type=int, default=10)
    args = parser.parse_args()
    times = []
    heavy = ""
    for _ in range(args.repeat):
        out = subprocess.run(
            [sys.executable, "-c", CODE], capture_output=True, text=True, check=True
        ).stdout.split("\n")
        times.append(float(out[0]))
        heavy = out[1]
    print(
        json.dumps(
            {
                "median_s": round(statistics.median(times), 3),
                "min_s": round(min(times), 3),
                "heavy_modules_imported": heavy.split(",") if heavy else [],
                "target_s": 0.3,
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
