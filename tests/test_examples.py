"""The example scripts run end to end, offline (no OPENAI_API_KEY), as the README says."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


@pytest.mark.parametrize(
    ("script", "expected"),
    [
        ("quickstart.py", "-> "),
        ("answer_and_judge.py", "8 requests, 0 from the cache"),
        ("generate_from_files.py", "saved 6 rows to "),
    ],
)
def test_example_runs_offline(script: str, expected: str, tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "OPENAI_API_KEY"}
    result = subprocess.run(
        [sys.executable, str(EXAMPLES / script)],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env=env,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert expected in result.stdout
