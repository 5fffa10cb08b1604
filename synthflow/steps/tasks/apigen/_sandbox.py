"""The child process of ``APIGenExecutionChecker``: runs one generated function call.

Run as a script (``python -P _sandbox.py``), never imported by the engine: it reads
``{"libpath", "name", "arguments", "cpu_seconds", "memory_bytes", "check_is_dangerous"}`` as JSON
on stdin, caps its own CPU time and address space with ``resource.setrlimit`` before it loads the
user's module, calls the function, and writes ``{"keep": bool, "execution_result": str}`` as JSON
on stdout. What the function prints goes to stderr, so it can't garble the answer. Only the
standard library is used here, so the child starts without importing synthflow.
"""

from __future__ import annotations

import contextlib
import importlib.util
import inspect
import json
import sys
from pathlib import Path
from typing import Any

# Source fragments of functions that would reach outside the call (processes, the OS, the
# interpreter's exit), which the checker declines to run when check_is_dangerous is set.
DANGEROUS = (
    "subprocess.",
    "os.system(",
    "os.exec",
    "os.fork(",
    "os.kill(",
    "input(",
    "threading.Thread(",
    "multiprocessing.",
    "exec(",
    "sys.exit(",
    "exit(",
    "SystemExit",
    "shutil.rmtree(",
    "unittest.main(",
    ".setLevel(",
)


def _limit(cpu_seconds: int, memory_bytes: int) -> None:
    import resource

    if cpu_seconds > 0:
        resource.setrlimit(resource.RLIMIT_CPU, (cpu_seconds, cpu_seconds + 1))
    if memory_bytes > 0:
        resource.setrlimit(resource.RLIMIT_AS, (memory_bytes, memory_bytes))


def _function(libpath: str, name: str) -> Any:
    """The function ``name`` from the module file ``libpath``, or from ``<libpath>/<name>.py``
    when ``libpath`` is a folder; None when there is none."""
    path = Path(libpath)
    if path.is_dir():
        path = path / f"{name}.py"
        if not path.is_file():
            return None
    spec = importlib.util.spec_from_file_location("synthflow_apigen_toolbox", path)
    if spec is None or spec.loader is None:
        return None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    function = getattr(module, name, None)
    return function if callable(function) else None


def _dangerous(function: Any) -> str | None:
    try:
        source = inspect.getsource(function)
    except (OSError, TypeError):
        return None
    return next((fragment for fragment in DANGEROUS if fragment in source), None)


def run(request: dict[str, Any]) -> dict[str, Any]:
    _limit(int(request.get("cpu_seconds", 0)), int(request.get("memory_bytes", 0)))
    name = request.get("name")
    arguments = request.get("arguments")
    if not isinstance(name, str) or not name:
        return {"keep": False, "execution_result": "The call names no function."}
    if arguments is None:
        arguments = {}
    if not isinstance(arguments, dict):
        return {"keep": False, "execution_result": f"The arguments of '{name}' aren't an object."}
    try:
        function = _function(str(request["libpath"]), name)
    except MemoryError:
        return {"keep": False, "execution_result": "MemoryError while loading the functions."}
    except Exception as exc:
        return {
            "keep": False,
            "execution_result": f"Loading the functions failed: {type(exc).__name__}: {exc}",
        }
    if function is None:
        return {"keep": False, "execution_result": f"Function '{name}' not found."}
    if request.get("check_is_dangerous", True) and (fragment := _dangerous(function)):
        return {
            "keep": False,
            "execution_result": f"Function '{name}' was not run: its source uses {fragment!r}.",
        }
    try:
        result = function(**arguments)
    except MemoryError:
        return {"keep": False, "execution_result": "MemoryError: the call ran out of memory."}
    except Exception as exc:
        return {"keep": False, "execution_result": f"{type(exc).__name__}: {exc}"}
    return {"keep": True, "execution_result": str(result)}


def main() -> None:
    request = json.loads(sys.stdin.read())
    answer_to = sys.stdout
    with contextlib.redirect_stdout(sys.stderr):
        answer = run(request)
    answer_to.write(json.dumps(answer))
    answer_to.flush()


if __name__ == "__main__":
    main()
