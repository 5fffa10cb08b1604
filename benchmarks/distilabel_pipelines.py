"""How many of distilabel 1.5.3's own documented pipelines run on synthflow unchanged.

The script reads distilabel's source distribution at run time (nothing of it is copied here),
extracts every Python snippet or file that builds a ``Pipeline`` (fenced code blocks of
``docs/**/*.md``, ``examples/*.py`` and the ``Examples:`` blocks of the classes' docstrings,
which become the task and step pages), rewrites ``distilabel`` to ``synthflow`` in import lines
only, and runs each in a subprocess with a timeout, in a scratch directory, offline: every
provider's base-URL variable points at one loopback server (``loopback_apis.py``) and the Hub at
a loopback Hub (``tests/servers/hub.py``); any other host goes to a dead proxy on 127.0.0.1.
The loopback Hub holds stand-ins for the Hub datasets the snippets read (``hub_stand_ins.py``:
their publishers' column names and types, rows written here), so that what follows the loader
runs too; ``--no-stand-ins`` leaves it empty.

    python benchmarks/distilabel_pipelines.py [SDIST] [--only SUBSTRING] [--timeout 90]
    python benchmarks/distilabel_pipelines.py SDIST --python VENV/bin/python --package distilabel
    python benchmarks/distilabel_pipelines.py SDIST --compare SYNTHFLOW.json DISTILABEL.json
    python benchmarks/distilabel_pipelines.py --scripts DIR [--python ... --package distilabel]

``--scripts DIR`` runs the pipelines people wrote themselves instead of distilabel's documented
ones: each ``DIR/*.py`` is one script, run as ``__main__`` from its scratch folder with that folder
first on ``sys.path`` (as ``python script.py`` would), beside the files of ``DIR/<stem>.files/``
(the helper modules it imports from its own repository), with the command-line arguments of
``DIR/<stem>.args`` when the script needs some (as its project documents them, shell-quoted;
``{llm_url}`` stands for the loopback LLM server, where they name the model server the user
started). Such a folder holds other people's code:
keep it outside this repository. ``--site DIR`` puts a folder of extra pure-Python packages
(``pip install --target``) on both packages' path, for the imports such scripts share
(``python-dotenv``).

SDIST is the ``.tar.gz`` or its unpacked folder; without it the script runs
``pip download distilabel==1.5.3 --no-deps --no-binary :all:`` into a temporary folder.
``--package distilabel --python VENV_PYTHON`` runs the snippets unchanged on a distilabel
install, for its own count. Outcomes:

- ``ran``: ``pipeline.run`` returned; the columns of each subset come out (``--json`` has them);
- ``built+...``: the snippet builds a pipeline and never calls ``run``; the harness then runs it
  (``run(use_cache=False)``, with ``dataset=`` the one ``datasets.Dataset`` the snippet loaded,
  if it loaded one) and this is that run's outcome (``built`` alone: no pipeline
  object was left to run);
- ``ran-empty``: it ran, but some column has no value in any row (what a failed call leaves
  where the package turns failures into None, as distilabel does), or the dataset it returned
  is empty;
- ``failed``: an exception the other outcomes don't explain, named by type and first line: the
  package's fault, or the page's own bug (``--compare`` shows which fail on distilabel too);
- ``external``: the snippet needs what no offline machine has, as distilabel would too: local
  model weights or a GPU, a dataset on the Hub (its columns can't be known), a model server or
  dedicated endpoint at an address the snippet names, or another internet host;
- ``missing-package``: a third-party package that isn't installed (``ModuleNotFoundError``,
  or a requirement the pipeline declares);
- ``fragment``: not a program on its own (an undefined name, ``...`` placeholders, required
  command-line arguments it was not given);
- ``timeout``: still running at ``--timeout``.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shlex
import signal
import subprocess
import sys
import tarfile
import tempfile
import textwrap
import time
import traceback
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
FENCE = re.compile(
    r"^(?P<indent>[ \t]*)```(?:python|py)\b[^\n]*\n(?P<code>.*?)^(?P=indent)```", re.M | re.S
)
IMPORT = re.compile(r"^(?P<head>\s*(?:from|import)\s+)distilabel\b", re.M)
# A snippet's model that runs on this machine or not at all: local weights (and often a GPU).
LOCAL_MODELS = re.compile(
    r"\b(vLLM|TransformersLLM|LlamaCppLLM|MlxLLM|SentenceTransformerEmbeddings|vLLMEmbeddings|"
    r"LlamaCppEmbeddings|RewardModelScore|PairRM|TransformersImageGeneration|"
    r"DiffusersImageGeneration|AutoModel\w*|from_pretrained)\b"
)
# Model servers and endpoints a snippet names itself, which exist only on the author's network.
NAMED_SERVERS = re.compile(r"ClientvLLM\(|endpoint_name\s*=|base_url\s*=\s*[\"'](?!<)")
HUB_DATA = re.compile(r"LoadDataFromHub|load_dataset\(|from_hub|hf_hub_download|snapshot_download")
# The hosts of APIs whose address distilabel takes from an environment variable: a request that
# still reaches one is the package's fault, not the snippet's.
REDIRECTABLE = (
    "api.openai.com",
    "api.anthropic.com",
    "api.groq.com",
    "api.together.xyz",
    "api.endpoints.anyscale.com",
    "api.cohere",
    "api-inference.huggingface.co",
)
DEAD_PROXY = "http://127.0.0.1:9"
OUTCOMES = (
    "ran",
    "ran-empty",
    "built",
    "failed",
    "external",
    "missing-package",
    "fragment",
    "timeout",
)
# A snippet that only builds its pipeline is run by the harness too (``run(use_cache=False)``),
# as its reader would: its outcome is "built+" the outcome of that run.
OUTCOMES += tuple(
    f"built+{o}" for o in ("ran", "ran-empty", "failed", "external", "missing-package", "timeout")
)


@dataclass
class Snippet:
    name: str
    code: str
    files: dict[str, str] = field(default_factory=dict)
    """Files the snippet reads from beside itself (an example's helper modules)."""
    argv: list[str] = field(default_factory=list)
    """The command-line arguments it runs with (``{llm_url}``: the loopback LLM server)."""


def sdist_root(path: str | None) -> Path:
    if path is None:
        folder = tempfile.mkdtemp(prefix="dsdist")
        subprocess.run(
            [
                sys.executable,
                "-m",
                "pip",
                "download",
                "distilabel==1.5.3",
                "--no-deps",
                "--no-binary",
                ":all:",
                "-d",
                folder,
            ],
            check=True,
        )
        path = str(next(Path(folder).glob("distilabel-*.tar.gz")))
    source = Path(path)
    if source.is_dir():
        return source
    target = Path(tempfile.mkdtemp(prefix="dsdist"))
    with tarfile.open(source) as archive:
        archive.extractall(target, filter="data")
    return next(target.iterdir())


def builds_pipeline(code: str) -> bool:
    return "Pipeline(" in code


def _fenced(text: str) -> list[str]:
    return [textwrap.dedent(m.group("code")) for m in FENCE.finditer(text)]


def snippets(root: Path) -> list[Snippet]:
    found: list[Snippet] = []
    for page in sorted((root / "docs").rglob("*.md")):
        blocks = [c for c in _fenced(page.read_text()) if builds_pipeline(c)]
        found += [Snippet(f"{page.relative_to(root)}#{i}", c) for i, c in enumerate(blocks, 1)]
    examples = {p.name: p.read_text() for p in sorted((root / "examples").glob("*.py"))}
    helpers = {name: code for name, code in examples.items() if not builds_pipeline(code)}
    for name, code in examples.items():
        if builds_pipeline(code):
            found.append(Snippet(f"examples/{name}", code, helpers))
    for module in sorted((root / "src").rglob("*.py")):
        # Docstring examples are indented Markdown inside the class's docstring.
        blocks = [c for c in _fenced(module.read_text()) if builds_pipeline(c)]
        found += [Snippet(f"{module.relative_to(root)}#{i}", c) for i, c in enumerate(blocks, 1)]
    return found


def scripts(folder: Path) -> list[Snippet]:
    """Each ``*.py`` of ``folder`` is one script; ``<stem>.files/`` holds its helper files."""
    found = []
    for script in sorted(folder.glob("*.py")):
        helpers = folder / f"{script.stem}.files"
        files = {
            str(f.relative_to(helpers)): f.read_text()
            for f in sorted(helpers.rglob("*"))
            if f.is_file() and f.suffix in (".py", ".json", ".jsonl", ".txt", ".yaml")
        }
        arguments = folder / f"{script.stem}.args"
        argv = shlex.split(arguments.read_text()) if arguments.exists() else []
        found.append(Snippet(script.name, script.read_text(), files, argv))
    return found


def collect(args: argparse.Namespace) -> list[Snippet]:
    if args.scripts:
        return scripts(Path(args.scripts))
    return snippets(sdist_root(args.sdist))


def rewrite(code: str, package: str) -> str:
    """``distilabel`` -> ``package`` in import statements, nothing else."""
    return code if package == "distilabel" else IMPORT.sub(rf"\g<head>{package}", code)


# ---------------------------------------------------------------------------------------------
# The child: runs one snippet and writes what came out to report.json in its folder.


def _columns(distiset: Any) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for subset, value in dict(distiset or {}).items():
        splits = value.items() if hasattr(value, "keys") else [("train", value)]
        out[subset] = {
            s: {
                "columns": list(d.column_names),
                "rows": len(d),
                # Columns with no value in any row: where a failed call left its None.
                "empty": [c for c in d.column_names if len(d) and all(map(_no_value, d[c]))],
            }
            for s, d in splits
        }
    return out


def _no_value(value: Any) -> bool:
    """None, or a list of Nones (a failed call's generations)."""
    return value is None or (isinstance(value, list) and all(v is None for v in value))


def child(snippet: str, package: str, argv: list[str]) -> None:
    import importlib
    import runpy

    report: dict[str, Any] = {"runs": []}
    path = Path("report.json")

    def save() -> None:
        path.write_text(json.dumps(report))

    pipelines = importlib.import_module(f"{package}.pipeline")
    pipeline_class = pipelines.Pipeline
    running = []  # a subclass's run that calls its base's is one run

    def recording(original: Any) -> Any:
        def run(self: Any, *args: Any, **kwargs: Any) -> Any:
            running.append(self)
            try:
                distiset = original(self, *args, **kwargs)
            finally:
                running.pop()
            if not running:
                report["runs"].append(_columns(distiset))
                save()
            return distiset

        return run

    # ``Pipeline.ray()`` gives distilabel's RayPipeline, whose run is its own.
    for cls in {pipeline_class, getattr(pipelines, "RayPipeline", pipeline_class)}:
        cls.run = recording(cls.__dict__.get("run", cls.run))
    sys.path.insert(0, str(Path(snippet).resolve().parent))  # its helper modules, as `python x.py`
    sys.argv = [snippet, *argv]  # its argparse sees its own command line, not this script's
    try:
        names = runpy.run_path(snippet, run_name="__main__")
        built = {id(v): v for v in names.values() if isinstance(v, pipeline_class)}
        if not report["runs"] and built:
            # The page builds a pipeline and leaves running it to the reader: run it as they
            # would, on the dataset the page loaded when it loaded one (and only one).
            from datasets import Dataset

            generator = importlib.import_module(f"{package}.steps").GeneratorStep
            loaded = {id(v): v for v in names.values() if isinstance(v, Dataset)}
            sourced = any(isinstance(v, generator) for v in names.values())
            feed = {"dataset": next(iter(loaded.values()))} if len(loaded) == 1 else {}
            feed = {} if sourced else feed  # the page made its own source of it
            report["harness_run"] = True
            save()
            for pipeline in built.values():
                pipeline.run(use_cache=False, **feed)
    except BaseException as exc:
        report["error"] = _error(exc, snippet, package)
    save()


def _error(exc: BaseException, snippet: str, package: str) -> dict[str, Any]:
    frames = traceback.extract_tb(exc.__traceback__)
    ours = [f for f in frames if f"/{package}/" in f.filename]
    where = ours[-1] if ours else frames[-1]
    return {
        "type": type(exc).__name__,
        "message": (str(exc).strip().splitlines() or [""])[0][:300],
        "where": f"{where.filename.rsplit('/', 2)[-1]}:{where.lineno}",
        "snippet_line": next((f.lineno for f in frames if f.filename == snippet), None),
        "text": "".join(traceback.format_exception(exc))[-3000:],
    }


# ---------------------------------------------------------------------------------------------
# The parent: servers, environment, runs, classification.


def environment(llm_url: str, hub_url: str, home: Path) -> dict[str, str]:
    v1 = f"{llm_url}/v1"
    env = {
        k: v for k, v in os.environ.items() if not k.endswith(("_API_KEY", "_TOKEN", "_BASE_URL"))
    }
    env.update(
        {
            "HOME": str(home),
            "XDG_CACHE_HOME": str(home / ".cache"),
            "HF_HOME": str(home / ".hf"),
            "HF_ENDPOINT": hub_url,
            "HF_HUB_DISABLE_XET": "1",
            "HF_HUB_DISABLE_TELEMETRY": "1",
            "HF_INFERENCE_ENDPOINT": llm_url,
            "HF_TOKEN": "hf_loopback",
            "LOOPBACK_LLM_URL": llm_url,
            "OPENAI_BASE_URL": v1,
            "OPENAI_API_KEY": "sk-loopback",
            "AZURE_OPENAI_ENDPOINT": llm_url,
            "AZURE_OPENAI_API_KEY": "az-loopback",
            "OPENAI_API_VERSION": "2024-02-01",
            "ANTHROPIC_BASE_URL": llm_url,
            "ANTHROPIC_API_KEY": "sk-ant-loopback",
            "GROQ_BASE_URL": llm_url + "/openai/v1",
            "GROQ_API_KEY": "gsk-loopback",
            "TOGETHER_BASE_URL": v1,
            "TOGETHER_API_KEY": "tg-loopback",
            "ANYSCALE_BASE_URL": v1,
            "ANYSCALE_API_KEY": "as-loopback",
            "MISTRAL_BASE_URL": llm_url,
            "MISTRAL_API_KEY": "ms-loopback",
            "COHERE_BASE_URL": llm_url + "/v1",
            "CO_API_URL": llm_url,
            "COHERE_API_KEY": "co-loopback",
            "OLLAMA_HOST": llm_url,
            "GEMINI_API_KEY": "gm-loopback",
            "ARGILLA_API_URL": llm_url,
            "ARGILLA_API_KEY": "ar-loopback",
            # Any host but these: a dead proxy refuses at once instead of hanging on DNS.
            "HTTP_PROXY": DEAD_PROXY,
            "HTTPS_PROXY": DEAD_PROXY,
            "http_proxy": DEAD_PROXY,
            "https_proxy": DEAD_PROXY,
            "NO_PROXY": "127.0.0.1,localhost",
            "no_proxy": "127.0.0.1,localhost",
            "PYTHONPATH": str(ROOT),
            "TOKENIZERS_PARALLELISM": "false",
            "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0",
        }
    )
    return env


def _external_reason(code: str, error: dict[str, Any]) -> str | None:
    text = error.get("text", "") + error.get("message", "")
    if LOCAL_MODELS.search(code):
        return "local model weights / GPU"
    if any(host in text for host in REDIRECTABLE):
        return None
    if HUB_DATA.search(code) and re.search(
        r"404|RepositoryNotFound|DatasetNotFound|doesn't exist|not found on the Hub|"
        r"EntryNotFound|Couldn't find|parameter \S*repo_id",
        text,
    ):
        return "dataset on the Hub"
    if NAMED_SERVERS.search(code) and re.search(r"[Cc]onnect|refused|resolve|endpoint", text):
        return "a model server the snippet names"
    if re.search(
        r"127\.0\.0\.1:9\b|ProxyError|Name or service not known|"
        r"Temporary failure in name resolution|nodename nor servname",
        text,
    ):
        return "an internet host"
    return None


def classify(
    code: str, report: dict[str, Any] | None, timed_out: bool, package: str
) -> tuple[str, str]:
    outcome, detail = _outcome(code, report, timed_out, package)
    if report and report.get("harness_run") and outcome not in ("built+ran", "built"):
        return f"built+{outcome}", f"(the harness ran it) {detail}"
    return outcome, detail


def _outcome(
    code: str, report: dict[str, Any] | None, timed_out: bool, package: str
) -> tuple[str, str]:
    if timed_out:
        return "timeout", ""
    if report is None:
        return "failed", "the child wrote no report (crashed)"
    error = report.get("error")
    if error is None or (error["type"] == "SystemExit" and error["message"] in ("", "0", "None")):
        if not report["runs"]:
            return "built", "(builds a pipeline, never runs it)"
        if not all(report["runs"]):
            return "ran-empty", "ran, but the dataset it returned has no subset (no step wrote)"
        empty = sorted(
            {
                c
                for r in report["runs"]
                for sub in r.values()
                for sp in sub.values()
                for c in sp.get("empty", [])
            }
        )
        if empty:
            return "ran-empty", f"ran, but no row has a value in {', '.join(empty)}"
        return ("built+ran", "(the harness ran it)") if report.get("harness_run") else ("ran", "")
    summary = f"{error['type']}: {error['message']}"
    if error["type"] == "SystemExit" and error["message"] == "2":
        return "fragment", "needs command-line arguments (its argparse stopped it)"
    if error["type"] in ("NameError", "SyntaxError", "IndentationError") or re.search(
        r"[Ee]llipsis", summary + error.get("text", "")[-600:]
    ):
        return "fragment", summary
    missing = re.match(r"No module named '([^'.]+)", error["message"])
    declared = error["message"].startswith("Please install the following requirements")
    if error["type"] == "ModuleNotFoundError" and (
        declared or (missing and missing.group(1) not in (package, "distilabel"))
    ):
        return "missing-package", summary
    if error["type"] == "FileNotFoundError" and " while " not in error["message"]:
        return "external", f"a file the snippet names ({summary})"
    reason = _external_reason(code, error)
    if reason:
        return "external", f"{reason} ({summary})"
    return "failed", summary


def run_one(
    snippet: Snippet, args: argparse.Namespace, env: dict[str, str], scratch: Path
) -> dict[str, Any]:
    folder = scratch / re.sub(r"[^A-Za-z0-9_.-]+", "_", snippet.name)
    (folder / "home").mkdir(parents=True, exist_ok=True)
    code = rewrite(snippet.code, args.package)
    for name, text in snippet.files.items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_text(rewrite(text, args.package))
    script = folder / "snippet.py"
    script.write_text(code)
    command = [
        args.python,
        str(Path(__file__).resolve()),
        "--child",
        str(script),
        "--package",
        args.package,
        "--argv",
        json.dumps([a.replace("{llm_url}", env["LOOPBACK_LLM_URL"]) for a in snippet.argv]),
    ]
    env = {
        **env,
        "PYTHONPATH": os.pathsep.join([str(ROOT), *([args.site] if args.site else [])]),
        "HOME": str(folder / "home"),
        "XDG_CACHE_HOME": str(folder / "home/.cache"),
        "HF_HOME": str(folder / "home/.hf"),
    }
    started = time.perf_counter()
    process = subprocess.Popen(
        command,
        cwd=folder,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    timed_out = False
    try:
        output, _ = process.communicate(timeout=args.timeout)
    except subprocess.TimeoutExpired:
        timed_out = True
        os.killpg(process.pid, signal.SIGKILL)
        output, _ = process.communicate()
    report_file = folder / "report.json"
    report = json.loads(report_file.read_text()) if report_file.exists() else None
    outcome, detail = classify(snippet.code, report, timed_out, args.package)
    return {
        "snippet": snippet.name,
        "outcome": outcome,
        "detail": detail,
        "seconds": round(time.perf_counter() - started, 1),
        "timed_out": timed_out,
        "report": report,
        "output_tail": output.decode(errors="replace")[-1500:],
    }


def summarize(package: str, results: list[dict[str, Any]]) -> dict[str, Any]:
    counts = Counter(r["outcome"] for r in results)
    causes = Counter(r["detail"] for r in results if r["outcome"].endswith("failed"))
    return {
        "package": package,
        "snippets": len(results),
        **{k: counts[k] for k in OUTCOMES if counts[k]},
        "top_failures": causes.most_common(12),
    }


# The metadata column is named for its package, and distilabel leaves it out unless
# enable_metadata=True while synthflow keeps it (README: "The metadata column").
METADATA = {"distilabel_metadata", "synthflow_metadata"}


def _columns_out(result: dict[str, Any]) -> list[list[str]]:
    runs = (result.get("report") or {}).get("runs", [])
    return [
        sorted(set(split["columns"]) - METADATA)
        for run in runs
        for subset in run.values()
        for split in subset.values()
    ]


def compare(found: list[Snippet], ours_file: str, theirs_file: str) -> dict[str, Any]:
    """Both sweeps' outcomes per snippet, classified again from their stored reports (so a
    changed rule applies to earlier runs), and whether the columns that came out agree."""
    codes = {s.name: s.code for s in found}
    sides = []
    for name in (ours_file, theirs_file):
        data = json.loads(Path(name).read_text())
        package = data["summary"]["package"]
        for r in data["results"]:
            r["outcome"], r["detail"] = classify(
                codes[r["snippet"]], r["report"], r["timed_out"], package
            )
        sides.append((package, {r["snippet"]: r for r in data["results"]}))
    (ours, mine), (theirs, other) = sides
    pairs = Counter((mine[n]["outcome"], other[n]["outcome"]) for n in mine if n in other)
    same_columns = sum(
        1
        for n in mine
        if n in other and _columns_out(mine[n]) and _columns_out(mine[n]) == _columns_out(other[n])
    )
    both_ran = sum(
        1 for n in mine if n in other and _columns_out(mine[n]) and _columns_out(other[n])
    )
    only_here = sorted(
        f"{n}: {mine[n]['detail'][:160]}"
        for n in mine
        if mine[n]["outcome"].endswith("failed")
        and not other.get(n, {}).get("outcome", "").endswith(("failed", "fragment"))
    )
    return {
        ours: summarize(ours, list(mine.values())),
        theirs: summarize(theirs, list(other.values())),
        f"outcome pairs ({ours}, {theirs})": sorted(
            ([*k, v] for k, v in pairs.items()), key=lambda x: -x[2]
        ),
        "ran on both": both_ran,
        "ran on both with the same columns": same_columns,
        f"failed on {ours} only": only_here,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("sdist", nargs="?")
    parser.add_argument(
        "--python", default=sys.executable, help="the interpreter that runs each snippet"
    )
    parser.add_argument(
        "--package", default="synthflow", help="synthflow, or distilabel (unchanged)"
    )
    parser.add_argument("--timeout", type=float, default=90)
    parser.add_argument(
        "--only",
        default="",
        help="run the snippets whose name contains one of these (comma-separated)",
    )
    parser.add_argument("--json", default="", help="write every result (columns included) here")
    parser.add_argument("--list", action="store_true", help="list the snippets and stop")
    parser.add_argument(
        "--no-stand-ins",
        action="store_true",
        help="leave the loopback Hub empty (no stand-ins for the Hub datasets snippets read)",
    )
    parser.add_argument(
        "--compare",
        nargs=2,
        metavar=("OURS_JSON", "THEIRS_JSON"),
        help="compare two sweeps' --json files (synthflow's, distilabel's) and stop",
    )
    parser.add_argument(
        "--scripts", default="", help="a folder of pipeline scripts (*.py) to run instead"
    )
    parser.add_argument(
        "--site", default="", help="a folder of extra packages put on the scripts' path"
    )
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--argv", default="[]", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child, args.package, json.loads(args.argv))
        return
    if args.compare:
        print(json.dumps(compare(collect(args), *args.compare), indent=1))
        return

    sys.path.insert(0, str(ROOT))
    from benchmarks.loopback_apis import handle
    from tests.servers import FakeAPI
    from tests.servers.hub import FakeHub

    wanted = args.only.split(",")
    found = [s for s in collect(args) if any(w in s.name for w in wanted)]
    if args.list:
        print("\n".join(s.name for s in found))
        return
    llm, hub = FakeAPI(handle).start(), FakeHub()
    hub.api.start()
    if not args.no_stand_ins:
        from benchmarks.hub_stand_ins import seed

        seed(hub)
    scratch = Path(tempfile.mkdtemp(prefix="dpipes"))
    env = environment(llm.url, hub.url, scratch)
    results = []
    try:
        for snippet in found:
            result = run_one(snippet, args, env, scratch)
            results.append(result)
            print(
                f"{result['outcome']:9} {result['seconds']:6.1f}s {snippet.name}  "
                f"{result['detail'][:150]}",
                flush=True,
            )
    finally:
        llm.stop()
        hub.api.stop()
    summary = summarize(args.package, results)
    print(json.dumps(summary, indent=2))
    if args.json:
        Path(args.json).write_text(json.dumps({"summary": summary, "results": results}, indent=1))


if __name__ == "__main__":
    main()
