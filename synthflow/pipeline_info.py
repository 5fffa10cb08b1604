"""``synthflow pipeline info --config``: what a pipeline file holds (steps, DAG, runtime
parameters) and what it reaches (``synthflow.audit``), read from the file's data.

It imports neither typer's command machinery nor pydantic: ``synthflow.console`` answers the
plain command line ``pipeline info --config PATH|URL`` with ``answered`` before the typer app is
imported, and the typer command (``synthflow.cli``) prints the same text.
"""

from __future__ import annotations

import sys
from typing import Any

from synthflow.errors import SynthflowError


def answered(argv: list[str]) -> bool:
    """Print ``pipeline info`` when ``argv`` is its plain form, and say whether it did. A file
    that can't be read is left to the typer command, which says why as for any command."""
    config = plain_info_config(argv)
    if config is None:
        return False
    try:
        text = file_info(config)
    except SynthflowError:
        return False
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        raise SystemExit(130) from None
    print(text)
    return True


def file_info(config: str) -> str:
    """What ``pipeline info --config`` prints, read from the file's data: no class it names is
    imported, nor pydantic (``synthflow.exposure_rules``), unless only building a step can
    tell what it reaches."""
    from synthflow.audit import file_exposures
    from synthflow.pipeline_file import parse_text, read_source
    from synthflow.trust import LoadedTrust

    text, fmt = read_source(config)
    data = parse_text(text, fmt, source=config)
    exposures, judged = file_exposures(data)
    needs = LoadedTrust.of_exposures(judged, config).problems_in(judged)
    return describe(data) + "\n\n" + "\n".join(render_exposures(exposures, needs))


def plain_info_config(argv: list[str]) -> str | None:
    """The PATH|URL of ``pipeline info --config PATH|URL`` (or ``-c PATH``,
    ``--config=PATH``), the form ``answered`` answers; None for any other command line."""
    if argv[:2] != ["pipeline", "info"]:
        return None
    rest = argv[2:]
    if len(rest) == 2 and rest[0] in ("--config", "-c"):
        value = rest[1]
    elif len(rest) == 1 and rest[0].startswith("--config="):
        value = rest[0].removeprefix("--config=")
    else:
        return None
    return value if value and not value.startswith("-") else None


def render_exposures(exposures: list[Any], needs: list[str]) -> list[str]:
    from synthflow.audit import render

    lines = render(exposures)
    if needs:
        lines += ["", "refused unless you allow it"]
        lines += [f"  {' '.join(line.split())}" for line in needs]
    return lines


def describe(data: dict[str, Any]) -> str:
    """The text ``synthflow pipeline info`` prints for a pipeline file's data."""
    from synthflow.pipeline_file import (
        connections_of,
        is_trusted,
        nested_models,
        pipeline_section,
    )

    body = pipeline_section(data, strict=False)
    specs = [s for s in body.get("steps") or [] if isinstance(s, dict)]
    lines = [f"pipeline   {body.get('name', '?')}"]
    if body.get("signature"):
        lines.append(f"signature  {body['signature']}")
    if body.get("description"):
        lines.append(f"about      {body['description']}")
    lines += ["", "steps"]
    width = max((len(str(s.get("name"))) for s in specs), default=4) + 2
    foreign: dict[str, None] = {}
    for spec in specs:
        info = spec.get("type_info") or {}
        module = str(info.get("module", "?"))
        line = f"  {spec.get('name')!s:<{width}}{info.get('name', '?')}  ({module})"
        if not is_trusted(module):
            foreign[module] = None
            line += "  [not synthflow]"
        lines.append(line)
        for cls, model, nested_module in nested_models(spec):
            line = " " * (width + 4) + f"llm: {cls}" + (f" ({model})" if model else "")
            if not is_trusted(nested_module):
                foreign[nested_module] = None
                line += f"  ({nested_module})  [not synthflow]"
            lines.append(line)
    names = [str(s.get("name")) for s in specs]
    lines += ["", "dag", *("  " + line for line in draw_dag(names, connections_of(body)))]
    lines += ["", "runtime parameters (set with --param STEP.NAME=VALUE)"]
    for spec in specs:
        for param in spec.get("runtime_parameters_info") or []:
            path = f"{spec.get('name')}.{param.get('name')}"
            lines.append(f"  {path} = {_show_value(spec, param)}")
            if param.get("description"):
                lines.append(f"      {param['description']}")
    # distilabel's classes resolve to synthflow's own (synthflow.distilabel_files); those left
    # here have no counterpart, and allowing their module wouldn't help.
    missing = [m for m in foreign if m.partition(".")[0] == "distilabel"]
    others = [m for m in foreign if m not in missing]
    if missing:
        lines += [
            "",
            f"distilabel classes synthflow doesn't have (from {', '.join(missing)}): replace "
            "them by synthflow classes in the file, or run it with distilabel",
        ]
    if others:
        allow = " ".join(f"--allow-module {m}" for m in others)
        lines += ["", f"classes outside synthflow: load them with {allow}"]
    return "\n".join(lines)


def _show_value(spec: dict[str, Any], param: dict[str, Any]) -> str:
    value: Any = spec
    for part in str(param.get("name")).split("."):
        if isinstance(value, list) and part.isdigit() and int(part) < len(value):
            value = value[int(part)]  # one of a list of models (MixtureOfAgentsLLM's proposers)
            continue
        if not isinstance(value, dict) or part not in value:
            value = param.get("value", _MISSING)
            break
        value = value[part]
    if value is _MISSING or (value is None and not param.get("optional", True)):
        return "(required)" if not param.get("optional", True) else "(not shown)"
    import orjson  # not at the top: --help goes through this module and needs none

    text = orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS, default=str).decode()
    return text if len(text) <= 80 else text[:77] + "..."


_MISSING = object()


def draw_dag(names: list[str], edges: list[tuple[str, str]]) -> list[str]:
    """The DAG as an indented tree from each source. A step with several inputs is drawn under
    its first one and marked "(see above)" under the others."""
    successors: dict[str, list[str]] = {n: [] for n in names}
    predecessors: dict[str, list[str]] = {n: [] for n in names}
    for a, b in edges:
        if a in successors and b in predecessors:
            successors[a].append(b)
            predecessors[b].append(a)
    lines: list[str] = []
    shown: set[str] = set()

    def visit(name: str, prefix: str, branch: str, below: str) -> None:
        if name in shown:
            lines.append(f"{prefix}{branch}{name}  (see above)")
            return
        shown.add(name)
        joins = predecessors[name]
        label = f"{name}  (joins {', '.join(joins)})" if len(joins) > 1 else name
        lines.append(f"{prefix}{branch}{label}")
        children = successors[name]
        for i, child in enumerate(children):
            last = i == len(children) - 1
            visit(child, prefix + below, "`-> " if last else "|-> ", "    " if last else "|   ")

    for name in names:
        if not predecessors[name]:
            visit(name, "", "", "")
    lines += [f"{name}  (in a cycle)" for name in names if name not in shown]
    return lines
