"""How long the command line takes to answer, as a ratio to `python -c "import typer"`.

    python benchmarks/cli_startup.py [--repeat 15]

Target (issue 14): `synthflow --help` and `synthflow pipeline info --config X.yaml` at most 1.5x
the time of `python -c "import typer"`. Every command runs in a fresh interpreter, `--repeat`
times, interleaved so that load on the machine hits each alike; the medians and their ratios
come from the same run. Also measured, for reference: the smallest typer app running one
command with one option (typer validates option values with pydantic, so this is the least any
typer command that takes a value costs: why the console script answers `pipeline info --config`
before typer's app runs), and `import synthflow`. Prints JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TARGET_RATIO = 1.5

SMALLEST_TYPER_COMMAND = """
from typing import Annotated
import typer
app = typer.Typer(rich_markup_mode=None)
@app.command()
def info(config: Annotated[str | None, typer.Option("--config")] = None) -> None:
    print(config)
app()
"""

MAKE_CONFIG = """
import sys
from synthflow.models.llms import OfflineLLM
from synthflow.pipeline import Pipeline
from synthflow.steps import KeepColumns, LoadDataFromDicts
from synthflow.steps.tasks import TextGeneration
with Pipeline(name="startup") as pipeline:
    load = LoadDataFromDicts(name="load", data=[{"instruction": "hi"}])
    generate = TextGeneration(name="generate", llm=OfflineLLM())
    load >> generate >> KeepColumns(name="keep", columns=["instruction", "generation"])
pipeline.save(sys.argv[1])
"""


def seconds(command: list[str], env: dict[str, str]) -> float:
    start = time.perf_counter()
    subprocess.run(command, env=env, cwd=ROOT, check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeat", type=int, default=15)
    args = parser.parse_args()
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    python = sys.executable
    with tempfile.TemporaryDirectory() as tmp:
        config = Path(tmp) / "pipeline.yaml"
        subprocess.run([python, "-c", MAKE_CONFIG, str(config)], env=env, cwd=ROOT, check=True)
        synthflow = [python, "-m", "synthflow"]
        commands = {
            "import typer": [python, "-c", "import typer"],
            "synthflow --help": [*synthflow, "--help"],
            "synthflow pipeline info": [*synthflow, "pipeline", "info", "-c", str(config)],
            "smallest typer command": [python, "-c", SMALLEST_TYPER_COMMAND, "--config", "x"],
            "import synthflow": [python, "-c", "import synthflow"],
        }
        for command in commands.values():  # warm the file cache and .pyc files
            seconds(command, env)
        times: dict[str, list[float]] = {name: [] for name in commands}
        for _ in range(args.repeat):
            for name, command in commands.items():
                times[name].append(seconds(command, env))
    medians = {name: statistics.median(values) for name, values in times.items()}
    baseline = medians["import typer"]
    print(
        json.dumps(
            {
                "median_s": {name: round(value, 3) for name, value in medians.items()},
                "ratio_to_import_typer": {
                    name: round(value / baseline, 2) for name, value in medians.items()
                },
                "target_ratio": TARGET_RATIO,
                "repeat": args.repeat,
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
