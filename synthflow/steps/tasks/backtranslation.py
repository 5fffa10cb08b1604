"""Instruction backtranslation's self-curation: rating how well an answer fits its instruction,
to keep the best (instruction, answer) pairs of a backtranslated corpus."""

from __future__ import annotations

import re
from typing import Any

from synthflow.errors import OutputParseError
from synthflow.models.llms.base import ChatType
from synthflow.steps.base import Row
from synthflow.steps.tasks.base import Task
from synthflow.steps.tasks.parsing import require_text

PROMPT = """\
Below are a user's instruction and a candidate answer. Rate how good the answer is as the reply \
a helpful AI assistant would give, on a scale of 1 to 5:

1: incomplete, vague, off-topic or contradicting the instruction; or not a reply at all (web page \
text, ads, a personal story).
2: covers most of what was asked, but not directly: a general method instead of the solution, \
say.
3: helpful and on point, but it reads like an excerpt from a blog or a web page rather than an \
assistant's reply.
4: a clear, complete, well-organised assistant's reply; it could only be a little more concise or \
focused.
5: a perfect assistant's reply: focused on the instruction, expert, well written, logical and \
engaging, with nothing irrelevant.

Instruction:
{instruction}

Answer:
{generation}

Explain your rating in a few sentences, then give it on the last line as "Score: <1-5>"."""

_SCORE = re.compile(
    r"(?:\*\*)?\b(?:score|rating)\b(?:\*\*)?\s*[:=]?\s*(?:\*\*)?\s*\[?(\d+(?:\.\d+)?)\]?"
    r"(?:\s*(?:/|out of)\s*5)?",
    re.IGNORECASE,
)


class InstructionBacktranslation(Task):
    """Rates, from 1 to 5, how well the ``generation`` answers the ``instruction`` as an AI
    assistant's reply should, with the model's ``reason``.

    The self-curation step of Li, Yu, Zhou, Schick, Levy, Zettlemoyer, Weston and Lewis,
    "Self-Alignment with Instruction Backtranslation" (arXiv:2308.06259): after instructions are
    written for web documents, the model rates each pair on the paper's five-point scale and only
    the best are kept for fine-tuning. The scale is described in a prompt written for synthflow.

    Input columns:
        - instruction (str): the instruction.
        - generation (str): the answer to rate.

    Output columns:
        - score (int): the rating, 1 to 5.
        - reason (str): the model's explanation.
        - model_name (str): the model that rated it.

    The parser takes the last ``Score: N`` (also ``Rating``, bold, ``N/5``, ``N out of 5``) and
    the text before it as the reason; an answer with no score from 1 to 5 is a row failure.
    """

    @property
    def inputs(self) -> list[str]:
        return ["instruction", "generation"]

    @property
    def outputs(self) -> list[str]:
        return ["score", "reason", "model_name"]

    def format_input(self, row: Row) -> ChatType:
        prompt = PROMPT.format(instruction=row["instruction"], generation=row["generation"])
        return [{"role": "user", "content": prompt}]

    def format_output(self, output: str | None, row: Row) -> dict[str, Any]:
        text = require_text(output, 'a reason and "Score: <1-5>"')
        found = list(_SCORE.finditer(text))
        if not found:
            raise OutputParseError('the answer has no "Score: <1-5>"')
        last = found[-1]
        value = float(last.group(1))
        if not value.is_integer() or not 1 <= value <= 5:
            raise OutputParseError(f"the score {last.group(1)} is not a whole number from 1 to 5")
        return {"score": int(value), "reason": _reason(text, last)}


def _reason(text: str, score: re.Match[str]) -> str | None:
    """The answer without its score: the score's line goes too when little else is on it (a
    lone "Final" or "Overall")."""
    start = text.rfind("\n", 0, score.start()) + 1
    end = text.find("\n", score.end())
    end = len(text) if end == -1 else end
    rest = _trim(text[start : score.start()] + text[score.end() : end])
    line = rest if len(rest.split()) > 2 else ""
    return _trim(f"{text[:start]}{line}{text[end:]}") or None


def _trim(text: str) -> str:
    """Without the punctuation a removed score leaves at the start, and blanks or bold marks."""
    return text.lstrip(" \t\n*.,;:-").rstrip(" \t\n*")
