from __future__ import annotations

import http.server
import os
import threading
from collections.abc import Iterator
from functools import partial
from pathlib import Path
from typing import Any

import pytest

# Ray reads this once, when it is imported (at collection, before any fixture runs): without it,
# a node given 127.0.0.1 is handed the machine's network address, which these machines can't
# reach, and connecting to the cluster hangs. Every Ray test here keeps to loopback.
os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(autouse=True)
def _cache_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """Every test gets its own synthflow cache directory, and no live progress display."""
    cache = tmp_path / "synthflow-cache"
    monkeypatch.setenv("SYNTHFLOW_CACHE_DIR", str(cache))
    monkeypatch.setenv("CI", "1")
    # No low-free-space warning line in tests' stderr on a nearly full machine
    # (tests/test_run_outcome.py turns it on where it is the subject).
    monkeypatch.setenv("SYNTHFLOW_MIN_FREE_GB", "0")
    # The test servers are on 127.0.0.1: never route them through a proxy the machine has set.
    for name in ("NO_PROXY", "no_proxy"):
        monkeypatch.setenv(name, "127.0.0.1,localhost")
    yield cache


@pytest.fixture(params=["httpx2", "aiohttp"])
def transport(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Run a test over each HTTP transport (see synthflow/models/callpath/_http.py)."""
    monkeypatch.setenv("SYNTHFLOW_HTTP", request.param)
    return str(request.param)


PRIVATE_TOKEN = "hf_private_test_token"


@pytest.fixture
def http_root(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """A static file server on 127.0.0.1 for loading pipelines from URLs: (base URL, its root)."""
    root = tmp_path / "www"
    root.mkdir()

    class Quiet(http.server.SimpleHTTPRequestHandler):
        """Files under /private/ need ``Authorization: Bearer {PRIVATE_TOKEN}``, as a private
        Hub repo does; /echo-authorization answers with the header it got (or "none")."""

        def do_GET(self) -> None:
            auth = self.headers.get("authorization")
            if self.path == "/echo-authorization":
                body = (auth or "none").encode()
                self.send_response(200)
                self.send_header("content-length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)
            elif self.path.startswith("/private/") and auth != f"Bearer {PRIVATE_TOKEN}":
                self.send_error(401)
            else:
                super().do_GET()

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), partial(Quiet, directory=str(root)))
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", root
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """A Ray cluster on this machine for a test module: every Ray process binds to 127.0.0.1
    and keeps its files in a temporary directory of the module's own; ``ray.shutdown()`` stops
    only what it started. Five logical CPUs: shards take one each, and so do the model servers
    a test starts on CPU bundles."""
    ray = pytest.importorskip("ray")
    os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"  # else 127.0.0.1 is rewritten
    root = Path(__file__).resolve().parents[1]
    ray.init(
        num_cpus=5,
        _node_ip_address="127.0.0.1",
        _temp_dir=str(tmp_path_factory.mktemp("ray")),
        include_dashboard=False,
        log_to_driver=False,
        # Steps defined in tests pickle by reference to their module, imported as pytest did.
        runtime_env={
            "env_vars": {
                "PYTHONPATH": f"{root}{os.pathsep}{root / 'tests'}",
                # A served model's tokenizer is looked for on the Hub: no network in tests.
                "HF_HUB_OFFLINE": "1",
            }
        },
    )
    try:
        yield
    finally:
        ray.shutdown()


@pytest.fixture
def tests_on_path(monkeypatch: pytest.MonkeyPatch) -> None:
    """``tests`` importable in the processes a test starts (stand-in servers run as
    ``python -m tests.servers....``)."""
    root = Path(__file__).resolve().parents[1]
    monkeypatch.setenv("PYTHONPATH", f"{root}{os.pathsep}{os.environ.get('PYTHONPATH', '')}")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
