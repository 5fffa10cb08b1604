"""The ``synthflow`` console script (and ``python -m synthflow``).

``synthflow pipeline info --config PATH|URL`` is answered here, before typer's app is built:
typer checks every option's value with pydantic, whose import alone takes longer than
importing typer, and the answer needs neither (``synthflow.pipeline_info``). Every other
command line goes to the typer app, ``synthflow.cli``.
"""

from __future__ import annotations

import sys


def main() -> None:
    from synthflow.pipeline_info import answered

    if not answered(sys.argv[1:]):
        from synthflow.cli import app

        app(prog_name="synthflow")
