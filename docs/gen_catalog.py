"""One documentation page per catalog step and task, generated from the class itself.

Each page holds the class's docstring, its input and output columns (read from ``inputs`` and
``outputs`` of an instance built with the example's arguments), its runtime parameters (with
their defaults and descriptions), the paper it implements (the arXiv ids its docstring cites)
and an example pipeline. ``catalog/index.md`` lists them all.

Used two ways:

- as an MkDocs hook (``hooks:`` in mkdocs.yml): ``on_files`` adds the pages to the build, so
  nothing generated is committed;
- as a script: ``python docs/gen_catalog.py OUT_DIR`` writes the pages as files, to read them.

A new class exported from ``synthflow.steps`` or ``synthflow.steps.tasks`` gets its page with
no change here, unless it can't be built without arguments: then it needs a line in
``EXAMPLE_ARGUMENTS`` (tests/test_docs.py says which).
"""

from __future__ import annotations

import inspect
import re
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

EXAMPLE_ARGUMENTS: dict[str, str] = {
    "APIGenExecutionChecker": 'libpath="my_functions.py"',
    "BitextRetrievalGenerator": 'target_language="French"',
    "CombineColumns": 'columns=["generation", "model_name"]',
    "DataSampler": 'data=[{"instruction": "Say hi."}, {"instruction": "Say bye."}], samples=4',
    "EmbeddingGeneration": (
        'embeddings=SentenceTransformerEmbeddings(model="sentence-transformers/all-MiniLM-L6-v2")'
    ),
    "EmbeddingTaskGenerator": 'category="text-retrieval"',
    "EvolComplexity": "num_evolutions=2",
    "EvolComplexityGenerator": "num_instructions=10",
    "EvolInstruct": "num_evolutions=2",
    "EvolInstructGenerator": "num_instructions=10",
    "EvolQuality": "num_evolutions=2",
    "ExpandColumns": 'columns=["generations"]',
    "GenerateSentencePair": 'action="paraphrase"',
    "GroupColumns": 'columns=["generation", "model_name"]',
    "KeepColumns": 'columns=["instruction", "generation"]',
    "LoadDataFromDicts": 'data=[{"instruction": "Write a haiku about the sea."}]',
    "LoadDataFromDisk": 'dataset_path="my-saved-dataset"',
    "LoadDataFromFileSystem": 'data_files="prompts.jsonl"',
    "LoadDataFromHub": 'repo_id="ORG/NAME"',
    "MergeColumns": 'columns=["generation", "generations"]',
    "PreferenceToArgilla": 'num_generations=2, dataset_name="my-dataset"',
    "RewardModelScore": 'model="OpenAssistant/reward-model-deberta-v3-large-v2"',
    "TextGenerationToArgilla": 'dataset_name="my-dataset"',
}
"""The constructor arguments of each example, as Python source, for the classes that need
some (a task's ``llm`` is added by the page)."""

DATA_COLUMNS = frozenset({"LoadDataFromDisk", "LoadDataFromFileSystem", "LoadDataFromHub"})
"""Loaders whose output columns are those of the data they read: not built here (building
one reads its data)."""

BASES = frozenset({"Step", "GeneratorStep", "GlobalStep", "Task", "GeneratorTask", "ImageTask"})
EXAMPLE_LLM = 'OpenAILLM(model="gpt-4o-mini")'
ARXIV = re.compile(r"(?:arXiv[:\s]*|arxiv\.org/abs/)(\d{4}\.\d{4,5})", re.IGNORECASE)
COLUMN_BULLET = re.compile(r"^\s*-\s*([A-Za-z_][\w-]*)\s*(?:\(([^)]*)\))?:\s*(.*)$")


@dataclass
class Entry:
    """A catalog class, and what its page says about it."""

    name: str
    cls: type[Any]
    family: str  # "steps" or "tasks"
    kind: str
    inputs: list[str] | None  # None: the data's own columns
    outputs: list[str] | None
    parameters: list[tuple[str, str, str]]  # (path, default, description)

    @property
    def path(self) -> str:
        return f"catalog/{self.family}/{self.name}.md"

    @property
    def summary(self) -> str:
        return _code(_doc(self.cls).split("\n\n")[0].replace("\n", " "))


def catalog() -> Iterator[Entry]:
    """Every concrete step and task exported from ``synthflow.steps`` and
    ``synthflow.steps.tasks``, in name order."""
    import synthflow.steps
    import synthflow.steps.tasks
    from synthflow.steps.base import _Step

    found: dict[str, type[Any]] = {}
    for package in (synthflow.steps, synthflow.steps.tasks):
        for name in package.__all__:
            value = getattr(package, name)
            if inspect.isclass(value) and issubclass(value, _Step) and name not in BASES:
                found[name] = value
    for name in sorted(found, key=str.lower):
        yield _entry(name, found[name])


def _entry(name: str, cls: type[Any]) -> Entry:
    from synthflow.runtime_parameters import runtime_parameters_info
    from synthflow.steps.base import GeneratorStep, GlobalStep
    from synthflow.steps.tasks.base import Task

    family = "tasks" if ".tasks." in cls.__module__ else "steps"
    if issubclass(cls, Task):
        kind = "generator task" if issubclass(cls, GeneratorStep) else "task"
    elif issubclass(cls, GeneratorStep):
        kind = "generator step (a source)"
    elif issubclass(cls, GlobalStep):
        kind = "global step (sees every row at once)"
    else:
        kind = "step"
    if name in DATA_COLUMNS:
        step = None
        inputs, outputs = [], None
    else:
        step = build(name, cls)
        inputs, outputs = list(step.inputs), list(step.outputs)
    parameters = []
    if step is not None:
        for info in runtime_parameters_info(step):
            if info.path.startswith("llm."):
                continue  # the LLM's own: they depend on which LLM is given
            default = "required" if info.value is None and not info.optional else repr(info.value)
            parameters.append((info.path, default, info.description or ""))
    else:
        parameters = _declared_parameters(cls)
    return Entry(name, cls, family, kind, inputs, outputs, parameters)


def _declared_parameters(cls: type[Any]) -> list[tuple[str, str, str]]:
    """Runtime parameters read from the class's fields, for a class not built here."""
    from synthflow.runtime_parameters import is_runtime_field

    out = []
    for name, field in cls.model_fields.items():
        if is_runtime_field(cls, name):
            default = "required" if field.is_required() else repr(field.default)
            out.append((name, default, field.description or ""))
    return out


def build(name: str, cls: type[Any]) -> Any:
    """An instance as the example builds it (a task gets an offline LLM, which makes no
    call: only its columns and parameters are read)."""
    from synthflow.models.embeddings import SentenceTransformerEmbeddings
    from synthflow.testing import OfflineLLM

    namespace = {"SentenceTransformerEmbeddings": SentenceTransformerEmbeddings}
    kwargs: dict[str, Any] = eval(f"dict({EXAMPLE_ARGUMENTS.get(name, '')})", namespace)
    if "llm" in cls.model_fields:
        kwargs["llm"] = OfflineLLM()
    return cls(**kwargs)


# -- pages ------------------------------------------------------------------------------------


def pages() -> dict[str, str]:
    """Every generated page: its path under docs/ and its Markdown."""
    entries = list(catalog())
    out = {entry.path: page(entry) for entry in entries}
    out["catalog/index.md"] = index(entries)
    return out


def index(entries: list[Entry]) -> str:
    lines = [
        "# Catalog",
        "",
        "Every step and task synthflow ships, one page each, generated from the class: its",
        "columns, runtime parameters, the paper it implements and an example.",
    ]
    for family, title in (("steps", "Steps"), ("tasks", "Tasks")):
        lines += ["", f"## {title}", "", "| name | kind | what it does |", "| --- | --- | --- |"]
        for entry in entries:
            if entry.family == family:
                link = f"[{entry.name}]({family}/{entry.name}.md)"
                lines.append(f"| {link} | {entry.kind} | {_cell(entry.summary)} |")
    return "\n".join(lines) + "\n"


def page(entry: Entry) -> str:
    cls = entry.cls
    package = "synthflow.steps.tasks" if entry.family == "tasks" else "synthflow.steps"
    doc = _doc(cls)
    lines = [
        f"# {entry.name}",
        "",
        f"`from {package} import {entry.name}` · {entry.kind} · defined in `{cls.__module__}`",
        "",
        markdown(doc),
        "",
        "## Input columns",
        "",
        "As the example below builds it (its arguments may change them: see above).",
        "",
        *_columns(entry.inputs, doc, _no_inputs(entry)),
        "",
        "## Output columns",
        "",
        *_columns(
            entry.outputs,
            doc,
            "The columns of the data it reads."
            if entry.outputs is None
            else "None of its own: rows go on with the columns they came with.",
        ),
        "",
        "## Runtime parameters",
        "",
        *_parameters(entry),
        "",
    ]
    papers = ARXIV.findall(doc)
    if papers:
        lines += ["## Paper", ""]
        for paragraph in doc.split("\n\n"):
            if ARXIV.search(paragraph):
                text = ARXIV.sub(r"[arXiv:\1](https://arxiv.org/abs/\1)", paragraph)
                lines += [_code(" ".join(text.split())), ""]
    lines += ["## Example", "", "```python", example(entry), "```", ""]
    return "\n".join(lines)


def example(entry: Entry) -> str:
    from synthflow.steps.base import GeneratorStep

    cls = entry.cls
    package = "synthflow.steps.tasks" if entry.family == "tasks" else "synthflow.steps"
    arguments = EXAMPLE_ARGUMENTS.get(entry.name, "")
    imports = []
    if "llm" in cls.model_fields:
        imports.append("from synthflow.models.llms import OpenAILLM")
        arguments = ", ".join(a for a in (f"llm={EXAMPLE_LLM}", arguments) if a)
    if "SentenceTransformerEmbeddings" in arguments:
        imports.append("from synthflow.models.embeddings import SentenceTransformerEmbeddings")
    imports.append("from synthflow.pipeline import Pipeline")
    source = issubclass(cls, GeneratorStep)
    if not source:
        imports.append("from synthflow.steps import LoadDataFromDicts")
    imports.append(f"from {package} import {entry.name}")
    variable = re.sub(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])", "_", entry.name).lower()
    body = [f'with Pipeline(name="{variable.replace("_", "-")}-example") as pipeline:']
    if not source:
        row = ", ".join(f'"{column}": ...' for column in entry.inputs or [])
        body.append(f"    rows = LoadDataFromDicts(data=[{{{row}}}])  # your rows")
    body.append(f"    {variable} = {entry.name}({arguments})")
    if not source:
        body.append(f"    rows >> {variable}")
    return "\n".join([*sorted(imports), "", *body, "", "distiset = pipeline.run()"])


def _no_inputs(entry: Entry) -> str:
    from synthflow.steps.base import GeneratorStep

    if issubclass(entry.cls, GeneratorStep):
        return "None: it is a source of rows."
    return "None declared: it works on whatever columns its rows have."


def _columns(columns: list[str] | None, doc: str, otherwise: str) -> list[str]:
    if not columns:
        return [otherwise]
    described = _described_columns(doc)
    rows = ["| column | type | description |", "| --- | --- | --- |"]
    for column in columns:
        kind, text = described.get(column, ("", ""))
        rows.append(f"| `{column}` | {_cell(kind)} | {_cell(text)} |")
    return rows


def _described_columns(doc: str) -> dict[str, tuple[str, str]]:
    """Columns the docstring lists as ``- name (type): description``."""
    found: dict[str, tuple[str, str]] = {}
    for line in doc.splitlines():
        match = COLUMN_BULLET.match(line)
        if match and match.group(1) not in found:
            found[match.group(1)] = (match.group(2) or "", match.group(3))
    return found


def _parameters(entry: Entry) -> list[str]:
    rows = ["| parameter | default | description |", "| --- | --- | --- |"]
    for path, default, description in entry.parameters:
        rows.append(f"| `{path}` | `{_cell(default)}` | {_cell(description)} |")
    if "llm" in entry.cls.model_fields:
        rows.append("| `llm.*` | | those of the LLM it is given (`generation_kwargs`, ...) |")
    return rows if len(rows) > 2 else ["None."]


# -- docstrings to Markdown -------------------------------------------------------------------


def _doc(cls: type[Any]) -> str:
    return inspect.cleandoc(cls.__doc__ or "")


def _code(text: str) -> str:
    """reStructuredText's ``literal`` as Markdown's `code`."""
    return re.sub(r"``(.+?)``", r"`\1`", text)


def _cell(text: str) -> str:
    return _code(text).replace("|", "\\|").replace("\n", " ")


def markdown(doc: str) -> str:
    """A docstring as Markdown: a ``::`` block becomes fenced code, indented bullets a list
    (their continuation lines joined), ``literal`` becomes `code`."""
    lines = doc.splitlines()
    out: list[str] = []
    i = 0
    while i < len(lines):
        line = lines[i]
        if line.rstrip().endswith("::"):
            out.append(_code(line.rstrip()[:-1]))
            i += 1
            block: list[str] = []
            while i < len(lines) and (not lines[i].strip() or lines[i].startswith(" ")):
                block.append(lines[i])
                i += 1
            out += ["", "```python", *inspect.cleandoc("\n".join(block)).splitlines(), "```", ""]
            continue
        stripped = line.strip()
        if stripped.startswith("- "):
            if out and out[-1] and not out[-1].startswith("- "):
                out.append("")
            out.append(_code(stripped))
        elif stripped and line.startswith(" ") and out and out[-1].startswith("- "):
            out[-1] += " " + _code(stripped)  # a bullet's continuation
        else:
            if out and out[-1].startswith("- ") and stripped:
                out.append("")
            out.append(_code(line.strip() if line.startswith(" ") else line))
        i += 1
    return "\n".join(out)


# -- MkDocs hook and script -------------------------------------------------------------------


def on_files(files: Any, config: Any) -> Any:
    from mkdocs.structure.files import File

    for path, content in pages().items():
        files.append(File.generated(config, path, content=content))
    return files


def main(argv: list[str]) -> None:
    if len(argv) != 1:
        raise SystemExit("usage: python docs/gen_catalog.py OUT_DIR")
    root = Path(argv[0])
    generated = pages()
    for path, content in generated.items():
        target = root / path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(content)
    print(f"wrote {len(generated)} pages under {root}")


if __name__ == "__main__":
    main(sys.argv[1:])
