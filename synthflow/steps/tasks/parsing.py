"""Reading what models write: the tolerant parsers that catalog tasks share.

Real answers come with extra prose, code fences, numbering styles and trailing text. Each function
here takes what it can and raises ``OutputParseError`` (one line, saying what was expected) when
nothing usable is left, which the task turns into a row failure.
"""

from __future__ import annotations

import json
import re
from typing import Any

from synthflow.errors import OutputParseError

_FENCE_RE = re.compile(r"```[A-Za-z0-9_+-]*[ \t]*\n?(.*?)(?:\n?```|$)", re.DOTALL)
_ITEM_RE = re.compile(
    r"""^\s*(?:
        \*\*\s*\d+\s*[.):]\s*\*\*(?=\s|$)                  # **1.**
      | \(?\d+[.):\]](?=\s|$)                             # 1.  1)  (1)  1:  1]
      | [-*•+](?=\s)                                     # - item  * item  • item
      | (?:Q|Query|Question|Instruction|Task|Prompt|Item)\s*\#?\s*\d+\s*[.:)-](?=\s|$)
    )\s*""",
    re.VERBOSE | re.IGNORECASE,
)


def require_text(output: str | None, what: str = "an answer") -> str:
    """``output`` stripped of whitespace and of a code fence around all of it; raises when
    there is no text."""
    if output is None or not output.strip():
        raise OutputParseError(f"the model returned no text; expected {what}")
    text = output.strip()
    fenced = _FENCE_RE.fullmatch(text)
    if fenced:
        text = fenced.group(1).strip()
    if not text:
        raise OutputParseError(f"the model returned an empty code block; expected {what}")
    return text


def list_items(output: str | None, what: str = "a list") -> list[str]:
    """The items of a list the model wrote: numbered (``1.``, ``1)``, ``**1.**``, ``Q1:``) or
    bulleted. When any line is an item, other prose (a preamble, a closing remark after a blank
    line) is dropped, and a line right after an item continues it. Without markers, every
    non-empty line is an item."""
    text = require_text(output, what)
    lines = text.splitlines()
    if not any(_ITEM_RE.match(line) for line in lines):
        return _non_empty([_unquote(line) for line in lines], what)
    items: list[str] = []
    continuing = False
    for line in lines:
        match = _ITEM_RE.match(line)
        if match:
            items.append(line[match.end() :].strip())
            continuing = True
        elif not line.strip() or line.strip().startswith("```"):
            continuing = False
        elif continuing:
            items[-1] = f"{items[-1]} {line.strip()}".strip()
    return _non_empty([_unquote(item) for item in items], what)


def json_value(output: str | None, what: str = "a JSON object") -> Any:
    """The first JSON object or array in the answer: the whole text, a fenced block, or the
    first one embedded in prose. Raw newlines and tabs inside strings, which models often
    write in long texts, are accepted."""
    text = require_text(output, what)
    decoder = json.JSONDecoder(strict=False)
    candidates = [text, *(m.group(1) for m in _FENCE_RE.finditer(text))]
    for candidate in candidates:
        try:
            return decoder.decode(candidate.strip())
        except ValueError:
            pass
    for match in re.finditer(r"[{\[]", text):
        try:
            value, _ = decoder.raw_decode(text, match.start())
        except ValueError:
            continue
        return value
    raise OutputParseError(f"found no JSON in the answer; expected {what}")


def json_object(output: str | None, what: str = "a JSON object") -> dict[str, Any]:
    """``json_value`` that must be an object."""
    value = json_value(output, what)
    if not isinstance(value, dict):
        raise OutputParseError(f"the answer's JSON is a {type(value).__name__}; expected {what}")
    return value


def after_marker(text: str, marker: re.Pattern[str]) -> str:
    """The text after the last match of ``marker`` (a label like ``New prompt:``), or all of
    it when the model left the label out."""
    found = list(marker.finditer(text))
    return text[found[-1].end() :].strip() if found else text


def _unquote(item: str) -> str:
    item = item.strip()
    if item.startswith("**") and item.endswith("**") and len(item) > 4:
        item = item[2:-2].strip()
    for left, right in (('"', '"'), ("“", "”"), ("'", "'"), ("`", "`")):
        if len(item) > 1 and item.startswith(left) and item.endswith(right):
            item = item[1:-1].strip()
    return item


def _non_empty(items: list[str], what: str) -> list[str]:
    kept = [item for item in items if item]
    if not kept:
        raise OutputParseError(f"the answer's list is empty; expected {what}")
    return kept
