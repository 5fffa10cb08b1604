"""How many of distilabel 1.5.3's documented pipelines, saved by distilabel itself as the
``pipeline.yaml`` every dataset it pushes carries, load in synthflow and print with
``synthflow pipeline info``.

For each snippet ``distilabel_pipelines.py`` finds (docs pages, examples, docstrings), a child on
distilabel's interpreter runs the snippet unchanged, offline, with ``Pipeline.run`` replaced by a
save: each pipeline the snippet builds is written with ``pipeline.dump()`` (the layout of
``pipeline.yaml``) and nothing runs. Then this process, synthflow's, loads each file
(``synthflow.serialization.load_file``) and renders ``pipeline info`` for it.

    python benchmarks/distilabel_yaml_files.py SDIST --python /work/ref/dvenv/bin/python
        [--only SUBSTRING] [--timeout 60] [--keep DIR] [--json FILE]
    python benchmarks/distilabel_yaml_files.py SDIST --python ... --saved DIR   # reload DIR
    python benchmarks/distilabel_yaml_files.py --python ... --classes     # each class alone

Outcomes per saved file: ``loads`` (and ``info`` when ``pipeline info`` printed it too), or the
first line of synthflow's error. A snippet that never built a pipeline on distilabel (a fragment,
a missing package, a model loaded at build time) saves no file and is counted apart.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from collections import Counter
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from distilabel_pipelines import Snippet, environment, sdist_root, snippets

DEAD = "http://127.0.0.1:9"

# Run by distilabel's interpreter in the snippet's folder: save each pipeline instead of running.
SAVER = """
import runpy, sys, yaml
from distilabel.pipeline.base import BasePipeline

saved = []

def save(pipeline):
    if any(p is pipeline for p in saved):
        return
    saved.append(pipeline)
    with open(f"saved_{len(saved)}.yaml", "w") as out:
        yaml.dump(pipeline.dump(), out, sort_keys=False)

class Saved(Exception):
    pass

def run(self, *args, **kwargs):
    save(self)
    raise Saved()

BasePipeline.run = run
sys.argv = ["snippet.py"]
try:
    names = runpy.run_path("snippet.py", run_name="__main__")
    for value in list(names.values()):
        if isinstance(value, BasePipeline):
            save(value)
except Saved:
    pass
"""


# Run by distilabel's interpreter: one single-step pipeline per public step and task class of
# distilabel, built with an OpenAILLM where it takes one and the arguments below where it needs
# some, saved as class_<Name>.yaml.
CLASS_SAVER = """
import inspect, sys, yaml
import distilabel.steps as S, distilabel.steps.tasks as T
from distilabel.models import OpenAILLM
from distilabel.pipeline import Pipeline
from distilabel.steps.base import _Step

NEEDS = {
    "KeepColumns": dict(columns=["a"]), "GroupColumns": dict(columns=["a"]),
    "MergeColumns": dict(columns=["a"]), "ExpandColumns": dict(columns=["a"]),
    "LoadDataFromHub": dict(repo_id="a/b"), "LoadDataFromFileSystem": dict(data_files="x.jsonl"),
    "LoadDataFromDisk": dict(dataset_path="x"), "PushToHub": dict(repo_id="a/b"),
    "LoadDataFromDicts": dict(data=[{"a": 1}]), "DataSampler": dict(data=[{"a": 1}], size=1,
    samples=1), "TruncateTextColumn": dict(column="a"),
    "PrometheusEval": dict(mode="absolute", rubric="factual-validity"),
    "GenerateSentencePair": dict(triplet=True, action="paraphrase"),
    "EvolInstructGenerator": dict(num_instructions=2),
    "EvolComplexityGenerator": dict(num_instructions=2),
    "EmbeddingTaskGenerator": dict(category="text-retrieval"), "MagpieGenerator": dict(num_rows=2),
    "BitextRetrievalGenerator": dict(source_language="English", target_language="French"),
    "MonolingualTripletGenerator": dict(language="English"),
    "EvolQuality": dict(num_evolutions=1), "EvolComplexity": dict(num_evolutions=1),
    "EvolInstruct": dict(num_evolutions=1),
}
for module in (S, T):
    for name in module.__all__:
        cls = getattr(module, name)
        if not (inspect.isclass(cls) and issubclass(cls, _Step)) or inspect.isabstract(cls):
            continue
        kwargs = dict(NEEDS.get(name, {}))
        if "llm" in cls.model_fields:
            kwargs["llm"] = OpenAILLM(model="m", api_key="unused")
        try:
            with Pipeline(name=name) as pipeline:
                cls(name="step", **kwargs)
        except Exception as exc:
            print(f"{name}: not built on distilabel: {type(exc).__name__}", file=sys.stderr)
            continue
        with open(f"class_{name}.yaml", "w") as out:
            yaml.dump(pipeline.dump(), out, sort_keys=False)
"""


def classes(python: str, folder: Path) -> None:
    """Save every public step and task class of distilabel alone, and load each here."""
    folder.mkdir(parents=True, exist_ok=True)
    env = environment(DEAD, DEAD, folder / "home")
    env["HF_HUB_OFFLINE"] = "1"
    done = subprocess.run(
        [python, "-W", "ignore", "-c", CLASS_SAVER], cwd=folder, env=env, text=True
    )
    if done.returncode != 0:
        raise SystemExit(f"distilabel's interpreter failed (exit {done.returncode})")
    files = sorted(folder.glob("class_*.yaml"))
    results = [load_in_synthflow(path) for path in files]
    for result in results:
        if not result["loads"]:
            print(f"{Path(result['file']).stem}: {result['error']}")
    loads = sum(r["loads"] for r in results)
    infos = sum(r["info"] for r in results)
    print(f"\n{len(files)} classes saved alone by distilabel; {loads} load; info prints {infos}")


def save_with_distilabel(snippet: Snippet, python: str, folder: Path, timeout: float) -> str:
    """Run the snippet on distilabel, saving its pipelines as saved_N.yaml; how it ended."""
    folder.mkdir(parents=True)
    (folder / "snippet.py").write_text(snippet.code)
    for name, code in snippet.files.items():
        (folder / name).write_text(code)
    # Every provider's key and base URL set (as distilabel_pipelines.py runs them), pointing
    # nowhere: building and saving calls no one.
    env = environment(DEAD, DEAD, folder / "home")
    env["HF_HUB_OFFLINE"] = "1"
    try:
        done = subprocess.run(
            [python, "-W", "ignore", "-c", SAVER],
            cwd=folder,
            env=env,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
    except subprocess.TimeoutExpired:
        return "timeout"
    if done.returncode == 0:
        return "ok"
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    return lines[-1][:160] if lines else f"exit {done.returncode}"


def with_rows(path: Path) -> Path:
    """A copy of the file with a placeholder row in each source distilabel saved without its
    rows (what the load error asks for)."""
    import yaml

    from synthflow.distilabel_files import NOT_SAVED

    data = yaml.safe_load(path.read_text())
    for entry in data["pipeline"]["steps"]:
        spec = entry["step"]
        missing = NOT_SAVED.get(spec["type_info"]["name"])
        if missing is not None:
            spec.setdefault(missing, [{"instruction": "placeholder"}])
    target = path.with_suffix(".with_rows.yaml")
    target.write_text(yaml.safe_dump(data, sort_keys=False))
    return target


def load_in_synthflow(path: Path) -> dict[str, Any]:
    from synthflow.errors import SynthflowError
    from synthflow.pipeline_info import file_info
    from synthflow.serialization import load_file

    result: dict[str, Any] = {"file": str(path)}
    try:
        pipeline = load_file(path)
        result["loads"] = True
        result["steps"] = len(pipeline.steps)
    except SynthflowError as exc:
        result["loads"] = False
        result["error"] = str(exc).splitlines()[0][:200]
        if "doesn't save" in result["error"]:  # the fix the error names: rows in the file
            try:
                load_file(with_rows(path))
                result["loads_with_rows"] = True
            except SynthflowError as again:
                result["loads_with_rows"] = False
                result["error_with_rows"] = str(again).splitlines()[0][:200]
    try:
        file_info(str(path))
        result["info"] = True
    except SynthflowError as exc:
        result["info"] = False
        result.setdefault("error", str(exc).splitlines()[0][:200])
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("sdist", nargs="?")
    parser.add_argument("--python", required=True, help="an interpreter with distilabel 1.5.3")
    parser.add_argument("--only", default="")
    parser.add_argument("--timeout", type=float, default=60)
    parser.add_argument("--keep", default="", help="keep the saved files in this folder")
    parser.add_argument("--json", default="", help="write every result here")
    parser.add_argument(
        "--saved", default="", help="load the files a --keep DIR run saved; save nothing"
    )
    parser.add_argument(
        "--classes", action="store_true", help="save each step and task class alone instead"
    )
    args = parser.parse_args()
    if args.classes:
        classes(args.python, Path(args.keep or tempfile.mkdtemp(prefix="dyaml")))
        return

    root = sdist_root(args.sdist)
    found = [s for s in snippets(root) if args.only in s.name]
    scratch = Path(args.saved or args.keep or tempfile.mkdtemp(prefix="dyaml"))
    results: list[dict[str, Any]] = []
    unsaved: Counter[str] = Counter()
    empty = 0
    for i, snippet in enumerate(found):
        folder = scratch / f"{i:03d}"
        ended = "not saved"
        if not args.saved:
            ended = save_with_distilabel(snippet, args.python, folder, args.timeout)
        files = sorted(folder.glob("saved_[0-9].yaml")) + sorted(folder.glob("saved_??.yaml"))
        if not files:
            unsaved[ended.split(":")[0]] += 1
            print(f"{snippet.name}: no pipeline saved ({ended})", flush=True)
            continue
        for path in files:
            if "\n  steps: []\n" in path.read_text():
                empty += 1  # distilabel's page shows an empty Pipeline: nothing to load
                continue
            result = {"snippet": snippet.name, **load_in_synthflow(path)}
            results.append(result)
            shown = "loads" if result["loads"] else f"fails: {result['error']}"
            shown += ", info prints" if result["info"] else ", info fails"
            print(f"{snippet.name} ({path.name}): {shown}", flush=True)

    loads = sum(r["loads"] for r in results)
    infos = sum(r["info"] for r in results)
    print(
        f"\n{len(found)} snippets; {len(results)} pipeline files saved by distilabel; "
        f"{loads} load in synthflow; pipeline info prints {infos} ({empty} empty pipelines "
        "left out)"
    )
    print(f"snippets that saved no file on distilabel: {dict(unsaved.most_common())}")
    fixed = [r for r in results if "loads_with_rows" in r]
    print(
        f"of the {len(fixed)} that stop for rows distilabel didn't save, "
        f"{sum(r['loads_with_rows'] for r in fixed)} load once a row is added"
    )
    reasons = Counter(r["error"][:60] for r in results if not r["loads"])
    print(f"load failures by step: {dict(reasons.most_common())}")
    if args.json:
        Path(args.json).write_text(json.dumps({"results": results, "unsaved": unsaved}, indent=1))


if __name__ == "__main__":
    main()
