"""The column rule, error rules and fan-in rule, against an independent reference model.

Each case is a random small DAG (chains, fan-out, fan-in) of LLM tasks and Python steps with
random input and output mappings, run on scripted LLMs that fail some prompts. A reference model
written from the rules in the README (not from the engine's code) predicts every prompt each
LLM sees, every final column of every leaf, and whether the pipeline is refused at build time:

- a step reads its inputs through ``input_mappings``; reading changes no column;
- its outputs, renamed by ``output_mappings``, overwrite columns of the same name; no other
  column changes;
- a failed row keeps its columns, gets null outputs and ``synthflow_error`` naming the step; a
  row that failed upstream and lacks a step's input keeps its first error: a task passes it
  untouched but for the outputs a failure in it writes (no call is made), any other step
  processes it as any row, and where that step raises on it, it passes untouched but for null
  outputs; a step's outputs that it also reads keep their values;
- a fan-in keeps, for each column, the value of the branch that wrote it after the paths split;
  two branches writing it is refused before the run;
- a mapping whose key is not a column the step reads (input) or writes (output) is refused
  before the run, naming the step and the key (distilabel refuses it too).
"""

from __future__ import annotations

import random
import re
import zlib
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from synthflow.errors import PipelineValidationError
from synthflow.pipeline import Pipeline
from synthflow.steps import LoadDataFromDicts, Step, StepInput
from synthflow.steps.base import Row
from synthflow.steps.tasks import ERROR_COLUMN, METADATA_COLUMN, TextGeneration
from synthflow.testing import FunctionLLM

SOURCE_COLUMNS = ["instruction", "a", "b"]
NAMES = ["instruction", "generation", "a", "b", "critique", "text", "out", "model_name"]
ROWS = 5
# Mapping keys no step of a case reads or writes: a typo of a real one, or another step's name.
UNKNOWN_INPUTS = ["txt", "instructions", "prompt"]
UNKNOWN_OUTPUTS = ["outt", "generations", "c"]


def fails(step: str, value: Any) -> bool:
    return zlib.crc32(f"{step}|{value}".encode()) % 6 == 0


def answer(step: str, value: Any) -> str:
    return f"{step}<{value}>"


class Tag(Step):
    """Writes ``out`` = "<name>(<text>)"; raises on the rows ``fails`` picks."""

    @property
    def inputs(self) -> list[str]:
        return ["text"]

    @property
    def outputs(self) -> list[str]:
        return ["out"]

    def process(self, inputs: StepInput) -> Iterator[list[Row]]:
        for row in inputs:
            if fails(self.name, row["text"]):
                raise ValueError("tag refused")
            row["out"] = f"{self.name}({row['text']})"
        yield inputs


# -- the case: a random DAG ---------------------------------------------------------------------


@dataclass
class Node:
    name: str
    kind: str  # "source", "task" or "tag"
    preds: list[str]
    input_mappings: dict[str, str] = field(default_factory=dict)
    output_mappings: dict[str, str] = field(default_factory=dict)
    batch: int = 2

    @property
    def reads(self) -> str:
        own = "instruction" if self.kind == "task" else "text"
        return self.input_mappings.get(own, own)

    def writes(self) -> list[str]:
        own = {"task": ["generation", "model_name"], "tag": ["out"], "source": SOURCE_COLUMNS}
        return [self.output_mappings.get(c, c) for c in own[self.kind]]

    def unknown_keys(self) -> list[tuple[str, str]]:
        """(mapping, key) for each key naming no column the step reads or writes."""
        reads = {"task": ["instruction", "system_prompt"], "tag": ["text"], "source": []}
        writes = {"task": ["generation", "model_name"], "tag": ["out"], "source": SOURCE_COLUMNS}
        return [("input_mappings", k) for k in self.input_mappings if k not in reads[self.kind]] + [
            ("output_mappings", k) for k in self.output_mappings if k not in writes[self.kind]
        ]


def random_dag(rng: random.Random) -> list[Node]:
    nodes = [Node("load", "source", [])]
    if rng.random() < 0.02:
        nodes[0].output_mappings = {rng.choice(UNKNOWN_OUTPUTS): "zz"}
    available = {"load": set(SOURCE_COLUMNS)}
    for i in range(rng.randint(2, 6)):
        kind = rng.choice(["task", "tag"])
        name = f"{kind}{i}"
        candidates = [n.name for n in nodes]
        preds = [rng.choice(candidates)]
        if len(candidates) > 1 and rng.random() < 0.35:
            preds = rng.sample(candidates, 2)
        columns = set().union(*(available[p] for p in preds))
        node = Node(name, kind, preds, batch=rng.randint(1, 3))
        own_in = "instruction" if kind == "task" else "text"
        if kind == "tag" or rng.random() < 0.6:
            node.input_mappings = {own_in: rng.choice(sorted(columns))}
        if node.input_mappings.get(own_in) == own_in:
            node.input_mappings = {}
        for own_out in ["generation", "model_name"] if kind == "task" else ["out"]:
            if rng.random() < 0.6:
                target = rng.choice([*NAMES, f"{own_out}_{name}"])
                if target != own_out:
                    node.output_mappings[own_out] = target
        if rng.random() < 0.025:
            node.input_mappings[rng.choice(UNKNOWN_INPUTS)] = rng.choice(sorted(columns))
        if rng.random() < 0.025:
            node.output_mappings[rng.choice(UNKNOWN_OUTPUTS)] = rng.choice(NAMES)
        nodes.append(node)
        available[name] = columns | set(node.writes())
    return nodes


def describe(nodes: list[Node]) -> str:
    return "; ".join(
        f"{n.name}<-{n.preds} in={n.input_mappings} out={n.output_mappings} batch={n.batch}"
        for n in nodes
    )


# -- the reference model ------------------------------------------------------------------------


@dataclass(frozen=True)
class Cell:
    value: Any
    writers: tuple[str, ...]  # every step that wrote this column, in order


class Refused(Exception):
    pass


def merge(parts: list[dict[str, Cell]], join: str) -> dict[str, Cell]:
    out: dict[str, Cell] = {}
    for column in dict.fromkeys(k for p in parts for k in p):
        cells = [p[column] for p in parts if column in p]
        if column == ERROR_COLUMN:  # the error of the last branch (in connection order) with one
            out[column] = [c for c in cells if c.value is not None][-1]
            continue
        longest = max(cells, key=lambda c: len(c.writers))
        for cell in cells:
            if cell.writers != longest.writers[: len(cell.writers)]:
                raise Refused("both write column")
        out[column] = longest
    return out


def reference(nodes: list[Node], data: list[dict[str, Any]]) -> tuple[dict, Counter[str]]:
    """Final rows per leaf, and every prompt each task sent (as 'task|prompt')."""
    rows: dict[str, list[dict[str, Cell]]] = {}
    prompts: Counter[str] = Counter()
    unknown = [
        re.escape(f"step {node.name!r} has {mapping} for {key!r}")
        for node in nodes
        for mapping, key in node.unknown_keys()
    ]
    if unknown:  # any of them: each is the step's own mistake, found before the others
        raise Refused("|".join(unknown))
    if any(len(set(node.writes())) < len(node.writes()) for node in nodes):
        raise Refused("writes both")
    for node in nodes:
        if node.kind == "source":
            rows[node.name] = [{k: Cell(v, ("load",)) for k, v in d.items()} for d in data]
            continue
        out = []
        for i in range(len(data)):
            row = merge([rows[p][i] for p in node.preds], node.name)
            value = row[node.reads].value if node.reads in row else None
            outputs = node.writes()
            failed_before = row.get(ERROR_COLUMN, Cell(None, ())).value is not None
            # what a failure in this step writes; a row passed through keeps what the step reads
            on_failure = (
                {outputs[0]: None, outputs[1]: "function-llm"}
                if node.kind == "task"
                else dict.fromkeys(outputs)
            )
            passed = {c: v for c, v in on_failure.items() if c != node.reads}
            if failed_before and value is None and node.kind == "task":
                new = passed  # not sent: passes through with its first error
            elif failed_before and value is None:  # processed; where it raises, passed through
                new = passed if fails(node.name, None) else {outputs[0]: f"{node.name}(None)"}
            elif node.kind == "task":
                prompts[f"{node.name}|{value}"] += 1
                if fails(node.name, value):  # null outputs, but the model's name
                    new = {outputs[0]: None, outputs[1]: "function-llm"}
                    new[ERROR_COLUMN] = f"{node.name}: RuntimeError: llm refused"
                else:
                    values = [answer(node.name, value), "function-llm"]
                    new = dict(zip(outputs, values, strict=True))
            elif fails(node.name, value):
                new = dict.fromkeys(outputs)
                new[ERROR_COLUMN] = f"{node.name}: ValueError: tag refused"
            else:
                new = {outputs[0]: f"{node.name}({value})"}
            row = dict(row)
            for column, v in new.items():
                history = row[column].writers if column in row else ()
                row[column] = Cell(v, (*history, node.name))
            out.append(row)
        rows[node.name] = out
    has_successor = {p for n in nodes for p in n.preds}
    leaves = {n.name: rows[n.name] for n in nodes if n.name not in has_successor}
    return leaves, prompts


# -- running the case on synthflow ---------------------------------------------------------------


def build(nodes: list[Node], data: list[dict[str, Any]], seen: Counter[str], tmp: Path) -> Pipeline:
    def llm_for(name: str) -> FunctionLLM:
        def fn(messages: list[dict[str, str]]) -> str:
            prompt = messages[-1]["content"]
            seen[f"{name}|{prompt}"] += 1
            if fails(name, prompt):
                raise RuntimeError("llm refused")
            return answer(name, prompt)

        return FunctionLLM(fn=fn)

    with Pipeline(name="rules", cache_dir=tmp) as pipeline:
        steps: dict[str, Any] = {}
        for node in nodes:
            mappings = {
                "input_mappings": node.input_mappings,
                "output_mappings": node.output_mappings,
            }
            if node.kind == "source":
                steps[node.name] = LoadDataFromDicts(
                    name="load", data=data, batch_size=2, output_mappings=node.output_mappings
                )
            elif node.kind == "task":
                steps[node.name] = TextGeneration(
                    name=node.name, llm=llm_for(node.name), add_statistics=False, **mappings
                )
            else:
                steps[node.name] = Tag(
                    name=node.name, on_error="null", input_batch_size=node.batch, **mappings
                )
            for pred in node.preds:
                steps[pred] >> steps[node.name]
    return pipeline


SEEDS = range(300)


@pytest.mark.parametrize("seed", SEEDS)
def test_random_dags_follow_the_column_rules(seed: int, tmp_path: Path) -> None:
    rng = random.Random(seed)
    nodes = random_dag(rng)
    data = [{"instruction": f"i{k}", "a": f"a{k}", "b": f"b{k}"} for k in range(ROWS)]
    seen: Counter[str] = Counter()
    case = describe(nodes)
    try:
        expected, prompts = reference(nodes, data)
    except Refused as refused:
        with pytest.raises(PipelineValidationError, match=str(refused)):
            build(nodes, data, seen, tmp_path).run(use_cache=False, progress=False)
        assert not seen, case
        return
    distiset = build(nodes, data, seen, tmp_path).run(use_cache=False, progress=False)
    assert seen == prompts, case
    for leaf, ref_rows in expected.items():
        name = "default" if len(expected) == 1 else leaf
        got = distiset[name]["train"].to_list()
        assert len(got) == len(ref_rows), case
        for k, (row, ref) in enumerate(zip(got, ref_rows, strict=True)):
            row.pop(METADATA_COLUMN, None)
            want = {column: cell.value for column, cell in ref.items()}
            columns = set(row) | set(want)
            assert {c: row.get(c) for c in columns} == {c: want.get(c) for c in columns}, (
                f"{case}: leaf {leaf} row {k}"
            )
