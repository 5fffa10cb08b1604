"""DEITA's scorers: an LLM ranks and scores all of a row's instructions (complexity) or
responses (quality) in one call, so the scores within a row are comparable."""

from __future__ import annotations

import re
from typing import Any

from synthflow.errors import OutputParseError
from synthflow.models.llms.base import ChatType
from synthflow.steps.base import Row
from synthflow.steps.tasks._judging import (
    JudgeTask,
    items_of,
    json_object,
    on_scale,
    present,
    spread,
)

MIN_TOP_SCORE = 6
"""The top of the scale when a row has six items or fewer (DEITA scores six variants, 1-6)."""

# "[2] Score: 4", "**[2] Score:** 4.5", "2. Score: 4", "Instruction 2: 4", "- (2) 4"
_INDEXED = re.compile(
    r"^[ \t*#>-]*(?:(?:instruction|response|pair|item|text|question|query)\s*)?"
    r"[\[(]?(\d+)[\])]?[ \t]*[.:)]?[ \t*]*(?:score[ \t*]*[:=]?)?[ \t*:=]*(-?\d+(?:\.\d+)?)",
    re.IGNORECASE | re.MULTILINE,
)
_UNINDEXED = re.compile(r"\bscore[ \t*]*[:=][ \t*]*(-?\d+(?:\.\d+)?)", re.IGNORECASE)


def top_score(k: int) -> int:
    return max(k, MIN_TOP_SCORE)


def read_scores(output: str, k: int, top: int, what: str) -> list[float]:
    """``k`` scores from 1 to ``top`` in an answer: ``[i] Score: x`` lines (any order, each
    index once), plain ``Score: x`` lines in order, or JSON ``{"scores": [...]}``."""
    data = json_object(output)
    if data is not None and "scores" in data:
        values = data["scores"]
        if not isinstance(values, list) or len(values) != k:
            raise OutputParseError(f"'scores' must be a list of {k} numbers")
        return [
            on_scale(v, 1, top, what=f"{what} {i}'s score", integer=False)
            for i, v in enumerate(values, 1)
        ]
    by_index: dict[int, str] = {}
    for match in _INDEXED.finditer(output):
        index = int(match.group(1))
        if index in by_index:
            raise OutputParseError(f"{what} {index} is scored twice")
        by_index[index] = match.group(2)
    if by_index:
        if sorted(by_index) != list(range(1, k + 1)):
            raise OutputParseError(f"expected scores for {what}s 1 to {k}, got {sorted(by_index)}")
        found = [by_index[i] for i in range(1, k + 1)]
    else:
        found = _UNINDEXED.findall(output)
        if len(found) != k:
            raise OutputParseError(f"expected {k} scores, found {len(found)}")
    return [
        on_scale(v, 1, top, what=f"{what} {i}'s score", integer=False)
        for i, v in enumerate(found, 1)
    ]


def _answer_format(k: int, top: int) -> str:
    lines = "\n".join(f"[{i}] Score: <score>" for i in range(1, min(k, 3) + 1))
    more = f"\n... and so on, up to [{k}]." if k > 3 else ""
    return (
        f"Answer with one line per item, in order, in this format and nothing else (a score is "
        f"a number from 1 to {top}):\n{lines}{more}"
    )


def scores_schema(title: str) -> dict[str, Any]:
    """The JSON answer ``use_default_structured_output`` asks for: distilabel's
    ``{"scores": [...]}``, which the parser reads as it reads scored lines. One schema serves
    every row, so it holds scores to the scale of rows of up to six items (a row with more
    gets scores from the same range: they still rank its items)."""
    score = {"type": "integer", "minimum": 1, "maximum": MIN_TOP_SCORE}
    return {
        "title": title,
        "type": "object",
        "properties": {"scores": {"type": "array", "items": score}},
        "required": ["scores"],
    }


class _Scorer(JudgeTask):
    """What the two scorers share: distilabel's ``use_default_structured_output``."""

    def get_structured_output(self) -> dict[str, Any]:
        """A JSON answer, ``{"scores": [...]}``, asked of the LLM with
        ``use_default_structured_output=True``."""
        return scores_schema(type(self).__name__)


class ComplexityScorer(_Scorer):
    """Scores the complexity of each instruction in ``instructions``, all in one call: the
    judge ranks them against each other and gives each a score from 1 (simplest) up.

    The scale is 1 to 6 (the paper scores an instruction and five evolved variants together),
    or 1 to the number of instructions when a row has more. Scores are aligned with
    ``instructions``: a null instruction is not shown to the judge and gets a null score. An
    answer that doesn't score every shown instruction on the scale is a parse failure (the row
    keeps null outputs and the raw answer).

    Input columns:
        - instructions (list[str | None]): the instructions to score.

    Output columns:
        - scores (list[float | None]): one complexity score per instruction.
        - model_name (str): the judge's model.

    Runtime parameters: those of every task (``num_generations``, ``concurrency``) and of its
    LLM.

    Paper: Wei Liu, Weihao Zeng, Keqing He, Yong Jiang, Junxian He, "What Makes Good Data for
    Alignment? A Comprehensive Study of Automatic Data Selection in Instruction Tuning"
    (DEITA), arXiv:2312.15685: the rank-and-score prompting behind EVOL COMPLEXITY.
    """

    @property
    def inputs(self) -> list[str]:
        return ["instructions"]

    @property
    def outputs(self) -> list[str]:
        return ["scores", "model_name"]

    def nothing_to_judge(self, row: Row) -> bool:
        return not present(items_of(row, "instructions"))

    def format_input(self, row: Row) -> ChatType:
        shown = [t for t in items_of(row, "instructions") if t is not None]
        k, top = len(shown), top_score(len(shown))
        listed = "\n\n".join(
            f"<instruction {i}>\n{t}\n</instruction {i}>" for i, t in enumerate(shown, 1)
        )
        prompt = (
            f"Rank the following {k} instruction{'s' if k > 1 else ''} by how difficult and "
            f"complex {'they are' if k > 1 else 'it is'} to answer well, and give each a "
            f"complexity score from 1 (the simplest) to {top} (the most complex). Consider the "
            "knowledge and the reasoning each one needs, the number of steps, and the "
            "constraints it sets. Instructions of equal complexity may share a score.\n\n"
            f"{listed}\n\n{_answer_format(k, top)}"
        )
        return [{"role": "user", "content": prompt}]

    def format_output(self, output: str | None, row: Row) -> dict[str, Any]:
        instructions = items_of(row, "instructions")
        positions = present(instructions)
        if output is None or not positions:
            return {"scores": [None] * len(instructions)}
        k = len(positions)
        scores = read_scores(output, k, top_score(k), "instruction")
        return {"scores": spread(scores, positions, len(instructions))}


class QualityScorer(_Scorer):
    """Scores the quality of each response in ``responses`` to ``instruction``, all in one
    call: the judge ranks them against each other and gives each a score from 1 (worst) up.

    The scale is 1 to 6 (the paper scores a response and five evolved variants together), or
    1 to the number of responses when a row has more. Scores are aligned with ``responses``:
    a null response is not shown to the judge and gets a null score. An answer that doesn't
    score every shown response on the scale is a parse failure (the row keeps null outputs and
    the raw answer).

    Input columns:
        - instruction (str): the instruction the responses answer.
        - responses (list[str | None]): the responses to score.

    Output columns:
        - scores (list[float | None]): one quality score per response.
        - model_name (str): the judge's model.

    Runtime parameters: those of every task (``num_generations``, ``concurrency``) and of its
    LLM.

    Paper: Wei Liu, Weihao Zeng, Keqing He, Yong Jiang, Junxian He, "What Makes Good Data for
    Alignment? A Comprehensive Study of Automatic Data Selection in Instruction Tuning"
    (DEITA), arXiv:2312.15685: the rank-and-score prompting behind EVOL QUALITY.
    """

    @property
    def inputs(self) -> list[str]:
        return ["instruction", "responses"]

    @property
    def outputs(self) -> list[str]:
        return ["scores", "model_name"]

    def nothing_to_judge(self, row: Row) -> bool:
        return row["instruction"] is None or not present(items_of(row, "responses"))

    def format_input(self, row: Row) -> ChatType:
        instruction = row["instruction"]
        if not isinstance(instruction, str):
            raise TypeError(f"'instruction' must be a string, got {type(instruction).__name__}")
        shown = [t for t in items_of(row, "responses") if t is not None]
        k, top = len(shown), top_score(len(shown))
        listed = "\n\n".join(
            f"<response {i}>\n{t}\n</response {i}>" for i, t in enumerate(shown, 1)
        )
        prompt = (
            f"Rank the following {k} response{'s' if k > 1 else ''} to the instruction by "
            f"quality, and give each a quality score from 1 (the worst) to {top} (the best). "
            "Judge how helpful, relevant, accurate, deep and creative each response is, and "
            "its level of detail. Responses of equal quality may share a score.\n\n"
            f"<instruction>\n{instruction}\n</instruction>\n\n{listed}\n\n"
            f"{_answer_format(k, top)}"
        )
        return [{"role": "user", "content": prompt}]

    def format_output(self, output: str | None, row: Row) -> dict[str, Any]:
        responses = items_of(row, "responses")
        positions = present(responses)
        if output is None or not positions or row["instruction"] is None:
            return {"scores": [None] * len(responses)}
        k = len(positions)
        scores = read_scores(output, k, top_score(k), "response")
        return {"scores": spread(scores, positions, len(responses))}
