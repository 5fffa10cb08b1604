from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(autouse=True)
def _cache_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """Every test gets its own synthflow cache directory, and no live progress display."""
    cache = tmp_path / "synthflow-cache"
    monkeypatch.setenv("SYNTHFLOW_CACHE_DIR", str(cache))
    monkeypatch.setenv("CI", "1")
    yield cache
