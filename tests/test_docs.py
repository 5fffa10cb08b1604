"""The documentation site's catalog: a page per exported step and task, generated from the class,
with its columns, runtime parameters, paper and an example (docs/gen_catalog.py)."""

from __future__ import annotations

import importlib.util
import inspect
import re
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

import synthflow.steps
import synthflow.steps.tasks
from synthflow.steps.base import _Step

GENERATOR = Path(__file__).resolve().parent.parent / "docs" / "gen_catalog.py"


def _load_generator() -> ModuleType:
    spec = importlib.util.spec_from_file_location("gen_catalog", GENERATOR)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


gen_catalog = _load_generator()


@pytest.fixture(scope="module")
def pages() -> dict[str, str]:
    generated: dict[str, str] = gen_catalog.pages()
    return generated


def exported() -> dict[str, type[Any]]:
    found = {}
    for package in (synthflow.steps, synthflow.steps.tasks):
        for name in package.__all__:
            value = getattr(package, name)
            if inspect.isclass(value) and issubclass(value, _Step):
                found[name] = value
    for base in ("Step", "GeneratorStep", "GlobalStep", "Task", "GeneratorTask", "ImageTask"):
        found.pop(base)  # the contracts, not catalog entries
    return found


def section(page: str, title: str) -> str:
    return page.split(f"## {title}\n", 1)[1].split("\n## ", 1)[0]


@pytest.mark.parametrize("name", sorted(exported()))
def test_every_exported_step_and_task_has_a_page_with_its_columns(
    name: str, pages: dict[str, str]
) -> None:
    cls = exported()[name]
    family = "tasks" if ".tasks." in cls.__module__ else "steps"
    page = pages.get(f"catalog/{family}/{name}.md")
    assert page is not None, (
        f"no page for {name}: if it can't be built without arguments, give it a line in "
        "EXAMPLE_ARGUMENTS (docs/gen_catalog.py)"
    )
    assert page.startswith(f"# {name}\n")
    assert f"({family}/{name}.md)" in pages["catalog/index.md"]
    if name in gen_catalog.DATA_COLUMNS:
        assert "The columns of the data it reads." in section(page, "Output columns")
        return
    step = gen_catalog.build(name, cls)
    for title, columns in (("Input columns", step.inputs), ("Output columns", step.outputs)):
        table = section(page, title)
        for column in columns:
            assert f"| `{column}` |" in table, f"{name}: {title} lacks {column!r}"
        if not columns:
            assert "None" in table


def test_a_page_holds_the_runtime_parameters_the_paper_and_an_example_that_compiles(
    pages: dict[str, str],
) -> None:
    page = pages["catalog/tasks/UltraFeedback.md"]
    assert "| `num_generations` | `1` |" in section(page, "Runtime parameters")
    assert "(https://arxiv.org/abs/2310.01377)" in section(page, "Paper")
    assert "| `ratings` | list[int \\| None] |" in section(page, "Output columns")
    for path, text in pages.items():
        for code in re.findall(r"```python\n(.*?)```", text, re.DOTALL):
            compile(code, path, "exec")
    example = section(page, "Example")
    assert "UltraFeedback(llm=OpenAILLM(" in example and "rows >> ultra_feedback" in example


def test_docstrings_become_markdown() -> None:
    doc = (
        "Does ``x``::\n\n    Step(a=1)\n\nInput columns:\n    - a (int): the first\n"
        "      line, continued.\n    - b: second.\n\nMore."
    )
    assert gen_catalog.markdown(doc) == (
        "Does `x`:\n\n```python\nStep(a=1)\n```\n\nInput columns:\n\n"
        "- a (int): the first line, continued.\n- b: second.\n\nMore."
    )
