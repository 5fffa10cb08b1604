"""Self-Instruct: new instructions for an application, from a seed input."""

from __future__ import annotations

from typing import Any

from pydantic import Field

from synthflow.models.llms.base import ChatType
from synthflow.steps.base import Row
from synthflow.steps.tasks.base import Task
from synthflow.steps.tasks.parsing import list_items

DEFAULT_CRITERIA = (
    "Vary the verbs and the kinds of task; never reuse a phrasing.\n"
    "Each query stands on its own: it needs no earlier conversation, file or link.\n"
    'Mix questions ("Why does x happen?") with requests ("Summarize x in three points.").\n'
    "Keep each query to one or two sentences that a text-only AI model can answer."
)

PROMPT = """\
You are writing the queries that users will send to {application}. Write {n} new, diverse \
queries about the input below.

What makes a good query here:
{criteria}

Input:
{input}

Write exactly {n} queries, one per line, numbered 1. to {n}., and nothing else."""


class SelfInstruct(Task):
    """Generates ``num_instructions`` instructions from a seed ``input``, for the application
    in ``application_description``, following ``criteria_for_query_generation``.

    The instruction-generation step of Self-Instruct: Wang, Kordi, Mishra, Liu, Smith, Khashabi
    and Hajishirzi, "Self-Instruct: Aligning Language Models with Self-Generated Instructions"
    (arXiv:2212.10560). The seed input stands in for the paper's in-context example tasks.

    Input columns:
        - input (str): the seed: a topic, a document, an example task.

    Output columns:
        - instructions (list[str]): the generated instructions, at most ``num_instructions``.
        - model_name (str): the model that wrote them.

    The parser reads numbered (``1.``, ``1)``, ``**1.**``, ``Q1:``) or bulleted lists and drops a
    preamble or a closing remark; without list markers, each non-empty line is an instruction.
    An answer with no instruction in it is a row failure.
    """

    num_instructions: int = Field(default=5, ge=1, description="Instructions to ask for.")
    criteria_for_query_generation: str = Field(
        default=DEFAULT_CRITERIA, description="What makes a good query, one rule per line."
    )
    application_description: str = Field(
        default="AI assistant", description="The application the instructions are for."
    )

    @property
    def inputs(self) -> list[str]:
        return ["input"]

    @property
    def outputs(self) -> list[str]:
        return ["instructions", "model_name"]

    def format_input(self, row: Row) -> ChatType:
        prompt = PROMPT.format(
            application=self.application_description,
            n=self.num_instructions,
            criteria=self.criteria_for_query_generation,
            input=row["input"],
        )
        return [{"role": "user", "content": prompt}]

    def format_output(self, output: str | None, row: Row) -> dict[str, Any]:
        items = list_items(output, f"a numbered list of {self.num_instructions} instructions")
        return {"instructions": items[: self.num_instructions]}
