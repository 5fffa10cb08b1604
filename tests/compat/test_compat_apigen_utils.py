"""An APIGen pipeline's helpers where distilabel users import them:
``synthflow.steps.tasks.apigen.utils.PrepareExamples`` and ``load_module_from_path``."""

from __future__ import annotations

from pathlib import Path

from synthflow.pipeline import Pipeline
from synthflow.steps import LoadDataFromDicts
from synthflow.steps.tasks.apigen.utils import PrepareExamples, load_module_from_path

TOOLS = '''
def add(a: int, b: int) -> int:
    """Adds two numbers."""
    return a + b


def get_tools():
    return {"add": {"name": "add", "description": add.__doc__}}
'''


def test_load_module_from_path_gives_the_files_functions(tmp_path: Path) -> None:
    library = tmp_path / "lib_tools.py"
    library.write_text(TOOLS)
    module = load_module_from_path(library)
    assert module.add(2, 3) == 5
    assert module.get_tools()["add"]["description"] == "Adds two numbers."


def test_prepare_examples_writes_the_sampled_pairs_as_one_text() -> None:
    sampled = {
        "query": ["What is 2 plus 3?", "Add 10 and 5."],
        "answers": [
            '[{"name": "add", "arguments": {"a": 2, "b": 3}}]',
            '[{"name": "add", "arguments": {"a": 10, "b": 5}}]',
        ],
    }
    with Pipeline(name="apigen-examples") as pipeline:
        LoadDataFromDicts(data=[sampled]) >> PrepareExamples(template="Q: {query}\nA: {answers}")
    rows = list(pipeline.run(use_cache=False)["default"]["train"])
    assert rows == [
        {
            "examples": 'Q: What is 2 plus 3?\nA: [{"name": "add", "arguments": {"a": 2, "b": 3}}]'
            '\n\nQ: Add 10 and 5.\nA: [{"name": "add", "arguments": {"a": 10, "b": 5}}]'
        }
    ]
