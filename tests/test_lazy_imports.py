"""What the command line and a saved pipeline import: only what the command or the file needs.

Each check runs in a fresh interpreter and reads ``sys.modules`` at exit; how long that takes
is measured in benchmarks/cli_startup.py, not here.
"""

from __future__ import annotations

import ast
import importlib
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from synthflow.models.llms import OfflineLLM
from synthflow.pipeline import Pipeline
from synthflow.steps import KeepColumns, LoadDataFromDicts
from synthflow.steps.tasks import TextGeneration

ROOT = Path(__file__).resolve().parents[1]
HEAVY = ("datasets", "pyarrow", "httpx", "rich", "numpy")


def imported_by(code: str, *argv: str) -> set[str]:
    """The modules a fresh interpreter holds when ``code`` (run with ``argv``) exits."""
    probe = textwrap.dedent(
        f"""
        import atexit, sys
        atexit.register(lambda: print("\\n".join(sys.modules), file=sys.stderr))
        sys.argv = ["synthflow", *{list(argv)!r}]
        """
    )
    result = subprocess.run(
        [sys.executable, "-c", probe + textwrap.dedent(code)],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    return set(result.stderr.split())


def heavy(modules: set[str]) -> list[str]:
    return sorted(m for m in modules if m.split(".")[0] in HEAVY)


def synthflow_modules(modules: set[str], prefix: str) -> list[str]:
    return sorted(m for m in modules if m.startswith(prefix))


RUN_CLI = "from synthflow.cli import main\nmain()\n"


@pytest.fixture(scope="module")
def config(tmp_path_factory: pytest.TempPathFactory) -> Path:
    with Pipeline(name="lazy") as pipeline:
        load = LoadDataFromDicts(name="load", data=[{"instruction": "hi"}])
        generate = TextGeneration(name="generate", llm=OfflineLLM())
        load >> generate >> KeepColumns(name="keep", columns=["generation"])
    return pipeline.save(tmp_path_factory.mktemp("lazy") / "pipeline.yaml")


@pytest.mark.parametrize("argv", [["--help"], ["pipeline", "run", "--help"]])
def test_help_imports_no_heavy_library_and_no_step(argv: list[str]) -> None:
    modules = imported_by(RUN_CLI, *argv)
    assert "synthflow.cli" in modules
    assert heavy(modules) == []
    assert synthflow_modules(modules, "synthflow.steps") == []
    assert synthflow_modules(modules, "synthflow.models") == []


RUN_CONSOLE = "from synthflow.console import main\nmain()\n"
TYPER_COMMAND_PATH = ("typer._adapters", "typer._click.decorators")
"""What running a typer command imports beyond ``import typer`` (with pydantic, which typer
0.29 checks option values with): together they take longer than the whole answer."""


@pytest.mark.parametrize("entry", [RUN_CONSOLE, RUN_CLI], ids=["console script", "cli.main"])
def test_pipeline_info_imports_no_class_the_file_names_nor_pydantic(
    config: Path, entry: str
) -> None:
    # info reads what the file's classes reach from its data (synthflow.exposure_rules).
    modules = imported_by(entry, "pipeline", "info", "--config", str(config))
    assert "synthflow.pipeline_info" in modules
    assert heavy(modules) == []
    assert synthflow_modules(modules, "synthflow.models") == []
    assert synthflow_modules(modules, "synthflow.steps") == []
    assert sorted(m for m in modules if m.split(".")[0] in ("pydantic", "pydantic_core")) == []
    assert [m for m in TYPER_COMMAND_PATH if m in modules] == []
    if entry == RUN_CONSOLE:
        assert "typer" not in modules


def test_the_typer_command_path_is_what_info_leaves_out() -> None:
    """The check above can fail: the other commands import what it leaves out."""
    modules = imported_by(RUN_CONSOLE, "pipeline", "info", "--script", "missing.py")
    assert all(m in modules for m in TYPER_COMMAND_PATH) and "pydantic" in modules


def test_loading_a_pipeline_imports_only_the_clients_it_names(config: Path) -> None:
    code = f"from synthflow.pipeline import Pipeline\nPipeline.from_file({str(config)!r})\n"
    modules = imported_by(code)
    assert "synthflow.models.llms.offline" in modules
    clients = synthflow_modules(modules, "synthflow.models.llms.")
    # The LLM base, its kwargs checker, Magpie's user-turn protocol, and the one client named.
    assert clients == [
        "synthflow.models.llms.base",
        "synthflow.models.llms.generation_kwargs",
        "synthflow.models.llms.magpie",
        "synthflow.models.llms.offline",
    ]
    assert "synthflow.models.embeddings.base" not in modules
    assert heavy(modules) == []


def test_the_typing_module_imports_no_heavy_library() -> None:
    assert heavy(imported_by("import synthflow.typing")) == []


LAZY_PACKAGES = ["synthflow.steps", "synthflow.models", "synthflow.models.llms"]


@pytest.mark.parametrize("package", LAZY_PACKAGES)
def test_a_lazy_package_exports_what_type_checkers_see(package: str) -> None:
    """``_HOMES`` (what runs) and the TYPE_CHECKING imports (what mypy and editors see) name
    the same classes, and every name in ``__all__`` resolves to the class its home defines."""
    module = importlib.import_module(package)
    homes: dict[str, str] = module._HOMES
    assert module.__file__ is not None
    tree = ast.parse(Path(module.__file__).read_text())
    checked: dict[str, str] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and getattr(node.test, "id", None) == "TYPE_CHECKING":
            for statement in node.body:
                assert isinstance(statement, ast.ImportFrom) and statement.module is not None
                checked.update({alias.name: statement.module for alias in statement.names})
    assert checked == homes
    assert sorted(module.__all__) == sorted(homes)
    for name in module.__all__:
        value = getattr(module, name)
        assert value is getattr(importlib.import_module(homes[name]), name)
        assert name in dir(module)
    with pytest.raises(AttributeError, match="has no attribute 'Nope'"):
        _ = module.Nope
