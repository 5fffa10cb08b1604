"""The README documents every step and task synthflow ships: a row of its catalog tables each,
with the arguments the class requires."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

import synthflow.steps
import synthflow.steps.tasks
from synthflow.steps.base import GeneratorStep, GlobalStep, Step, _Step
from synthflow.steps.tasks import GeneratorTask, ImageTask, Task

README = Path(__file__).resolve().parents[1] / "README.md"
BASES = {Step, GeneratorStep, GlobalStep, Task, GeneratorTask, ImageTask}


def table_rows() -> dict[str, str]:
    """Each class named in the first cell of a README table row, with its row."""
    rows: dict[str, str] = {}
    for line in README.read_text().splitlines():
        if line.startswith("| `"):
            first = line.split("|")[1]
            for name in re.findall(r"`(\w+)`", first):
                rows[name] = line
    return rows


def shipped() -> list[str]:
    names = []
    for module in (synthflow.steps, synthflow.steps.tasks):
        for name in module.__all__:
            value = getattr(module, name)
            if isinstance(value, type) and issubclass(value, _Step) and value not in BASES:
                names.append(name)
    return sorted(set(names))


@pytest.mark.parametrize("name", shipped())
def test_every_shipped_step_and_task_has_a_readme_row_with_its_required_arguments(
    name: str,
) -> None:
    rows = table_rows()
    assert name in rows, f"add a row for {name} to the catalog tables in README.md"
    cls = getattr(synthflow.steps, name, None) or getattr(synthflow.steps.tasks, name)
    base_fields = set(Task.model_fields) | set(GeneratorStep.model_fields)
    required = [f for f, info in cls.model_fields.items() if info.is_required()]
    for field in required:
        if field not in base_fields:
            assert f"**`{field}`**" in rows[name], f"README: mark {name}'s `{field}` as required"
