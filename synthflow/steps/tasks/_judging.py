"""What the judges and scorers share.

- Alignment: a judge is shown only a row's non-null items, numbered 1..k, and its verdicts are put
  back at those items' positions, so the n-th score always belongs to the n-th item and a null
  item gets a null score.
- Reading answers: code fences, JSON objects, numbers on a scale. A value off the scale is an
  ``OutputParseError`` (a row failure), never data.
- A row with nothing to judge (every item null, or a null instruction) gets null verdicts
  without an LLM call.
"""

from __future__ import annotations

import re
from abc import abstractmethod
from collections.abc import Sequence
from typing import Any, TypeVar

import orjson

from synthflow.errors import OutputParseError
from synthflow.models.llms.base import GenerateOutput
from synthflow.steps.base import Row
from synthflow.steps.tasks.base import Task

T = TypeVar("T")

_FENCE = re.compile(r"```[A-Za-z0-9_-]*[ \t]*\n?(.*?)```", re.DOTALL)
_NUMBER = re.compile(r"-?\d+(?:\.\d+)?")
_NOT_APPLICABLE = re.compile(r"^\W*(?:n/?a|none|null|not applicable)\b", re.IGNORECASE)


class JudgeTask(Task):
    """A task that judges a row's items: answers rows with nothing to judge without a call."""

    @abstractmethod
    def nothing_to_judge(self, row: Row) -> bool:
        """Whether ``row`` has nothing for the LLM to judge (its verdicts are then all null)."""

    async def generate(self, row: Row) -> GenerateOutput:
        if self.nothing_to_judge(row):
            return GenerateOutput(generations=[None] * self.num_generations)
        return await super().generate(row)


def items_of(row: Row, column: str) -> list[Any]:
    """The list in ``row[column]``, checked: a list whose entries are strings or null."""
    items = row[column]
    if not isinstance(items, list):
        raise TypeError(
            f"'{column}' must be a list of strings, got {type(items).__name__}; "
            "group the texts of a row into one list column first (e.g. with CombineColumns)"
        )
    for item in items:
        if item is not None and not isinstance(item, str):
            raise TypeError(f"'{column}' must hold strings (or nulls), got a {type(item).__name__}")
    return items


def present(items: Sequence[object]) -> list[int]:
    """The positions of the items that are not null: what the judge is shown, in order."""
    return [i for i, item in enumerate(items) if item is not None]


def spread(values: Sequence[T], positions: Sequence[int], size: int) -> list[T | None]:
    """``values`` (one per shown item) put back at ``positions`` in a list of ``size``."""
    out: list[T | None] = [None] * size
    for position, value in zip(positions, values, strict=True):
        out[position] = value
    return out


def unfence(text: str) -> str:
    """The answer without a surrounding Markdown code fence (the fence's content when the
    answer has one holding JSON; the answer as given otherwise)."""
    stripped = text.strip()
    for match in _FENCE.finditer(stripped):
        inner = match.group(1).strip()
        if inner.startswith(("{", "[")) or match.group(0) == stripped:
            return inner
    return stripped


def json_object(text: str) -> dict[str, Any] | None:
    """The JSON object the answer holds (fenced, or between prose), or None if it has none."""
    body = unfence(text)
    candidates = [body]
    start, end = body.find("{"), body.rfind("}")
    if 0 <= start < end:
        candidates.append(body[start : end + 1])
    for candidate in candidates:
        try:
            value = orjson.loads(candidate)
        except orjson.JSONDecodeError:
            continue
        if isinstance(value, dict):
            return value
    return None


def not_applicable(text: str) -> bool:
    """Whether a verdict says the scale doesn't apply ("N/A", "None")."""
    return bool(_NOT_APPLICABLE.match(text.strip()))


def on_scale(value: Any, low: float, high: float, *, what: str, integer: bool) -> float:
    """The first number in ``value`` (a string or a JSON number), checked against the scale.

    Raises ``OutputParseError`` when there is no number, when it is off the scale, or when an
    integer scale gets a fraction.
    """
    if isinstance(value, bool):  # JSON true/false are not scores
        raise OutputParseError(f"{what} is {value!r}, not a number from {low:g} to {high:g}")
    if isinstance(value, int | float):
        number = float(value)
    else:
        match = _NUMBER.search(str(value))
        if match is None:
            raise OutputParseError(f"{what} has no number: {str(value)[:60]!r}")
        number = float(match.group())
    if integer and not number.is_integer():
        raise OutputParseError(f"{what} is {number:g}, not a whole number from {low:g} to {high:g}")
    if not low <= number <= high:
        raise OutputParseError(f"{what} is {number:g}, off the scale {low:g} to {high:g}")
    return number
