"""CLAIR: contrastive revisions, for preference pairs that differ only where it matters."""

from __future__ import annotations

import re
from typing import Any

from pydantic import Field

from synthflow.errors import OutputParseError
from synthflow.models.llms.base import ChatType
from synthflow.steps.base import Row
from synthflow.steps.tasks.base import Task
from synthflow.steps.tasks.parsing import require_text

SYSTEM_PROMPT = (
    "You are a teacher who improves a student's answer to a task with as few changes as "
    "possible. Fix what is wrong, unclear or missing, and make the answer more engaging where it "
    "falls flat, but copy every part that needs no correction word for word. The improved answer "
    "must read as an answer to the task in its own right: never mention that it is a revision, a "
    "correction or the work of a student."
)

# The heading of the revision, as asked for and as models reword it (bold, Markdown headings,
# the placeholder-style labels of other CLAIR prompts).
_REVISION = re.compile(
    r"^[ \t]*(?:#+[ \t]*)?\**[ \t]*\{?(?:revised[ \t_]+answer|improved[ \t_]+answer|revision|"
    r"corrected[ \t_]+(?:student[ \t_]+)?(?:solution|answer))\}?"
    r"(?:[ \t]*\**[ \t]*:[ \t]*\**|[ \t]*\**[ \t]*$)",  # a colon, or the heading alone on its line
    re.IGNORECASE | re.MULTILINE,
)
_REASONING = re.compile(
    r"^[ \t]*(?:#+[ \t]*)?\**[ \t]*\{?(?:reasoning|teacher[ \t_]+reasoning|rationale)\}?"
    r"[ \t]*\**[ \t]*:?[ \t]*\**",
    re.IGNORECASE,
)


class CLAIR(Task):
    """Revises a student's answer minimally, giving a preference pair (revision over original)
    whose difference is only the improvement: Contrastive Learning from AI Revisions, from
    D'Oosterlinck, Xu, Develder, Demeester, Singh, Potts, Kiela and Mehri, "Anchored Preference
    Optimization and Contrastive Revisions: Addressing Underspecification in Alignment"
    (arXiv:2408.06266).

    A stronger model reasons about what the answer (``student_solution``) gets wrong, then
    rewrites it with as few changes as possible, so the pair is contrastive: training with APO
    learns the revision's improvements rather than unrelated differences in style.

    Input columns:
        - task (``str``): the task or instruction.
        - student_solution (``str``): the answer to revise.

    Output columns:
        - revision (``str``): the minimally revised answer.
        - rational (``str``): the teacher's reasoning about what to change (distilabel's name).
        - model_name (``str``): the model that revised it.

    Fields: ``system_prompt`` (the teacher's instructions).

    Runtime parameters: ``num_generations``, ``concurrency`` and ``input_batch_size`` (the
    task's, see ``Task``).

    The parser splits the answer at its last "Revised answer:" heading (bold, as a Markdown
    heading, or reworded as "Revision", "Improved answer", "Corrected solution"): what comes
    after is the revision, what comes before the reasoning (its "Reasoning:" label dropped). An
    answer without that heading, or with nothing after it, is a row failure
    (``OutputParseError``).
    """

    system_prompt: str = Field(
        default=SYSTEM_PROMPT, description="The system message: the teacher's instructions."
    )

    @property
    def inputs(self) -> list[str]:
        return ["task", "student_solution"]

    @property
    def outputs(self) -> list[str]:
        return ["revision", "rational", "model_name"]

    def format_input(self, row: Row) -> ChatType:
        content = (
            f"Task:\n{row['task']}\n\n"
            f"Student's answer:\n{row['student_solution']}\n\n"
            "First explain, step by step, what in the student's answer should change and why, "
            'under the heading "Reasoning:". Then write the improved answer under the heading '
            '"Revised answer:", and nothing after it.'
        )
        return [
            {"role": "system", "content": self.system_prompt},
            {"role": "user", "content": content},
        ]

    def format_output(self, output: str | None, row: Row) -> dict[str, Any]:
        text = require_text(output, 'a "Revised answer:" section')
        headings = list(_REVISION.finditer(text))
        if not headings:
            raise OutputParseError('the answer has no "Revised answer:" section')
        last = headings[-1]
        revision = text[last.end() :].strip()
        if not revision:
            raise OutputParseError('the answer\'s "Revised answer:" section is empty')
        reasoning = text[: last.start()].strip()
        label = _REASONING.match(reasoning)
        if label:
            reasoning = reasoning[label.end() :].strip()
        return {"revision": revision, "rational": reasoning}
