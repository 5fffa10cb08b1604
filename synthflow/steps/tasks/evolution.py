"""Evolving instructions and responses over several rounds: EvolInstruct (WizardLM),
EvolComplexity and EvolQuality (DEITA).

Each row runs its rounds one after another (round n mutates round n-1's text), while rows run
concurrently like any task's: a row is sent on when its last round ends, with no batch barrier.
The mutation of each round is drawn from ``mutation_templates`` with a generator seeded by
``seed``, the row's text and the round, so a re-run draws the same mutations (and hits the
response cache) whatever order rows finish in.
"""

from __future__ import annotations

import random
import re
from typing import Any

import anyio
from pydantic import Field, field_validator

from synthflow.errors import OutputParseError
from synthflow.models.llms.base import ChatType, Usage
from synthflow.runtime_parameters import RuntimeParameter
from synthflow.steps.base import FAILED, Row
from synthflow.steps.tasks.base import Task
from synthflow.steps.tasks.parsing import after_marker, require_text

PROMPT_SLOT = "<PROMPT>"
RESPONSE_SLOT = "<RESPONSE>"

_IN_DEPTH = f"""\
You are a prompt rewriter. Rewrite the prompt below into a harder version of itself: one that \
makes well-known AI assistants such as ChatGPT and GPT-4 work harder, while a person can still \
understand it and answer it.

How to make it harder: {{method}}

Rules:
- Keep what the prompt asks for, and keep any table, code or other non-text part of it as it is.
- Add at most 10 to 20 words; stay as concise as the original.
- Write only the new prompt: don't explain the change or refer to the original.

Prompt:
{PROMPT_SLOT}

New prompt:"""

_IN_BREADTH = f"""\
You are a prompt creator. Taking the prompt below as inspiration, write a brand-new prompt in \
the same domain, on a rarer and more specialised topic. Make it about as long and as hard as the \
original, and something a person can understand and answer.

Write only the new prompt, without explaining it.

Prompt:
{PROMPT_SLOT}

New prompt:"""

IN_DEPTH_TEMPLATES: dict[str, str] = {
    "CONSTRAINTS": _IN_DEPTH.format(
        method="add one more constraint or requirement that the answer has to meet."
    ),
    "DEEPENING": _IN_DEPTH.format(
        method="where the prompt asks about a subject, ask about it in more depth and breadth."
    ),
    "CONCRETIZING": _IN_DEPTH.format(
        method="replace the general ideas in it with more specific ones."
    ),
    "INCREASED_REASONING_STEPS": _IN_DEPTH.format(
        method="if a few simple thoughts answer it, rewrite it so that it explicitly asks "
        "for reasoning in several steps."
    ),
}
"""WizardLM's in-depth evolution: the same task, made harder, one way per template."""

MUTATION_TEMPLATES: dict[str, str] = {**IN_DEPTH_TEMPLATES, "BREADTH": _IN_BREADTH}
"""EvolInstruct's default: the four in-depth mutations and the in-breadth one."""

_QUALITY = f"""\
You are improving an AI assistant's answer. Rewrite the response below into a better answer to \
the user's prompt: {{method}} It must stay a direct answer to the prompt, as the user would want \
to read it.

Write only the new response, without commenting on the change.

Prompt:
{PROMPT_SLOT}

Response:
{RESPONSE_SLOT}

New response:"""

QUALITY_TEMPLATES: dict[str, str] = {
    "HELPFULNESS": _QUALITY.format(method="make it more helpful, adding what the user needs."),
    "RELEVANCE": _QUALITY.format(method="make it more relevant to the prompt, and more accurate."),
    "DEEPENING": _QUALITY.format(method="make it go deeper into the subject."),
    "CREATIVITY": _QUALITY.format(method="make it more creative, where the prompt allows."),
    "DETAILS": _QUALITY.format(method="give it more concrete details."),
}
"""DEITA's quality evolution: the same response, improved one way per template."""

_LABEL = re.compile(
    r"#?\s*(?:new|rewritten|created|evolved|improved)\s+(?:prompt|instruction|response)"
    r"\s*#?\s*(?:\*\*)?\s*:(?:\s*\*\*)?",
    re.IGNORECASE,
)
_TEMPLATE_ECHO = re.compile(r"given prompt|rewritten prompt|#\s*prompt\s*#", re.IGNORECASE)


def _refusal(text: str) -> bool:
    """WizardLM's elimination rule: a short answer that says sorry gave up on the task."""
    return "sorry" in text.lower() and len(text.split()) < 80


def _clean(output: str | None, what: str) -> str:
    text = after_marker(require_text(output, what), _LABEL)
    text = text.strip().strip('"“”').strip()
    if text.startswith("**") and text.endswith("**"):
        text = text[2:-2].strip()
    if not text or not any(ch.isalnum() for ch in text):
        raise OutputParseError(f"the answer holds no words; expected {what}")
    if _refusal(text):
        raise OutputParseError(f"the model declined ({text[:60]!r}); expected {what}")
    return text


class _Evolution(Task):
    """What the evolution tasks share: several rounds of a mutation drawn per round."""

    num_evolutions: int = Field(ge=1, description="Rounds of evolution per row.")
    store_evolutions: bool = Field(
        default=False, description="Keep every round's result as a list (True), or the last."
    )
    mutation_templates: dict[str, str] = Field(
        default_factory=lambda: dict(MUTATION_TEMPLATES),
        description="The mutations to draw from, by name; '<PROMPT>' marks where the text goes.",
    )
    seed: RuntimeParameter[int] = Field(
        default=42, description="Seeds the draw of each round's mutation."
    )

    @field_validator("mutation_templates")
    @classmethod
    def _check_templates(cls, templates: dict[str, str]) -> dict[str, str]:
        if not templates:
            raise ValueError("mutation_templates is empty: give at least one template")
        for name, template in templates.items():
            if PROMPT_SLOT not in template:
                raise ValueError(
                    f"mutation template {name!r} has no '{PROMPT_SLOT}': mark where the text goes"
                )
        return templates

    def _mutation(self, text: str, round_no: int) -> str:
        """The name of the mutation for ``text`` in round ``round_no``."""
        names = sorted(self.mutation_templates)
        return random.Random(f"{self.seed}\x00{round_no}\x00{text}").choice(names)

    def _ask(self, prompt: str) -> ChatType:
        return [{"role": "user", "content": prompt}]

    def _unreadable(
        self, row: Row, output: str | None, error: OutputParseError, usage: Usage
    ) -> list[Row]:
        """The row failed by a round whose answer can't be read: outputs null, the error
        marked for the engine's ``on_error`` policy, the answer kept in the metadata."""
        row[FAILED] = f"{type(error).__name__}: {error}"
        nulls = dict.fromkeys(c for c in self.outputs if c != "model_name")
        return [self._finish(row, nulls, usage, unreadable=output)]


class EvolInstruct(_Evolution):
    """Evolves the ``instruction`` column over ``num_evolutions`` rounds, each round applying a
    mutation drawn from ``mutation_templates`` to the last round's instruction; optionally
    answers the evolved instructions too.

    Evol-Instruct from Xu, Sun, Zheng, Geng, Zhao, Feng, Tao and Jiang, "WizardLM: Empowering
    Large Language Models to Follow Complex Instructions" (arXiv:2304.12244). The default
    templates are the paper's in-depth mutations (add constraints, deepening, concretizing,
    increased reasoning steps) and its in-breadth mutation, in prompts written for synthflow. The
    paper's elimination rules make a round fail: an empty answer, one of only punctuation, a short
    one that says sorry, one that echoes the template, or one equal to its input. A failed round
    fails the row (outputs null, the error in ``synthflow_error``). ``num_generations`` is not
    used: each row is evolved once.

    Input columns:
        - instruction (str): the instruction to evolve.

    Output columns:
        - evolved_instruction (str): the last round's instruction (``store_evolutions=False``).
        - evolved_instructions (list[str]): every round's instruction, the original first with
          ``include_original_instruction`` (``store_evolutions=True``).
        - answer (str): the answer to ``evolved_instruction`` (``generate_answers=True``).
        - answers (list[str]): the answers to ``evolved_instructions`` (``generate_answers``
          with ``store_evolutions``).
        - model_name (str): the model that evolved them.

    Runtime parameters:
        - seed: seeds the draw of each round's mutation.

    The parser takes the text after a ``New prompt:`` style label when the model wrote one, and
    drops surrounding quotes and a code fence.
    """

    generate_answers: bool = Field(
        default=False, description="Also answer the evolved instruction(s), with the same LLM."
    )
    include_original_instruction: bool = Field(
        default=False,
        description="Put the original instruction first in 'evolved_instructions'.",
    )

    @property
    def inputs(self) -> list[str]:
        return ["instruction"]

    @property
    def outputs(self) -> list[str]:
        columns = ["evolved_instructions" if self.store_evolutions else "evolved_instruction"]
        columns.append("model_name")
        if self.generate_answers:
            columns.append("answers" if self.store_evolutions else "answer")
        return columns

    def format_input(self, row: Row) -> ChatType:
        """The first round's messages (the later rounds mutate the previous round's result)."""
        instruction = _text_column(row, "instruction")
        mutation = self._mutation(instruction, 0)
        return self._ask(self.mutation_templates[mutation].replace(PROMPT_SLOT, instruction))

    def parse_evolution(self, output: str | None, previous: str) -> str:
        """The evolved instruction in one round's answer."""
        text = _clean(output, "the rewritten instruction")
        if _TEMPLATE_ECHO.search(text):
            raise OutputParseError("the answer repeats the rewriting template, not a new prompt")
        if " ".join(text.split()) == " ".join(previous.split()):
            raise OutputParseError("the rewritten instruction is the same as its input")
        return text

    def format_output(self, output: str | None, row: Row) -> dict[str, Any]:
        """The columns for one round's answer, as if it were the last round."""
        evolved = self.parse_evolution(output, str(row.get("instruction", "")))
        return self._columns([evolved], None)

    def _columns(self, chain: list[str], answers: list[str | None] | None) -> dict[str, Any]:
        if self.store_evolutions:
            columns: dict[str, Any] = {"evolved_instructions": chain}
            if answers is not None:
                columns["answers"] = answers
        else:
            columns = {"evolved_instruction": chain[-1]}
            if answers is not None:
                columns["answer"] = answers[-1]
        return columns

    async def process_row(self, row: Row) -> list[Row]:
        instruction = _text_column(row, "instruction")
        chain, usage = [instruction], Usage()
        for round_no in range(self.num_evolutions):
            previous = chain[-1]
            template = self.mutation_templates[self._mutation(previous, round_no)]
            result = await self.generate_messages(
                self._ask(template.replace(PROMPT_SLOT, previous)), row
            )
            usage += result.usage
            try:
                chain.append(self.parse_evolution(result.generations[0], previous))
            except OutputParseError as exc:
                return self._unreadable(row, result.generations[0], exc, usage)
        kept = chain if self.include_original_instruction else chain[1:]
        answers = None
        if self.generate_answers:
            targets = kept if self.store_evolutions else kept[-1:]
            answers, answer_usage = await self._answer(targets, row)
            usage += answer_usage
        return [self._finish(row, self._columns(kept, answers), usage)]

    async def _answer(self, instructions: list[str], row: Row) -> tuple[list[str | None], Usage]:
        answers: list[str | None] = [None] * len(instructions)
        usages = [Usage() for _ in instructions]

        async def one(i: int) -> None:
            result = await self.generate_messages(self._ask(instructions[i]), row)
            answers[i], usages[i] = result.generations[0], result.usage

        async with anyio.create_task_group() as tg:
            for i in range(len(instructions)):
                tg.start_soon(one, i)
        return answers, sum(usages, Usage())


class EvolComplexity(EvolInstruct):
    """EvolInstruct with in-depth mutations only: each round makes the ``instruction`` more
    complex, as DEITA does to build instructions of graded complexity (score them with
    ``ComplexityScorer``).

    From Liu, Zeng, He, Jiang and He, "What Makes Good Data for Alignment? A Comprehensive Study
    of Automatic Data Selection in Instruction Tuning" (DEITA, arXiv:2312.15685), which takes its
    mutations from WizardLM (Xu et al., arXiv:2304.12244). Everything else is as in EvolInstruct.

    Input columns:
        - instruction (str): the instruction to evolve.

    Output columns:
        - evolved_instruction (str): the last round's instruction (``store_evolutions=False``).
        - evolved_instructions (list[str]): every round's instruction (``store_evolutions``).
        - answer (str) / answers (list[str]): their answers, with ``generate_answers=True``.
        - model_name (str): the model that evolved them.

    Runtime parameters:
        - seed: seeds the draw of each round's mutation.
    """

    mutation_templates: dict[str, str] = Field(
        default_factory=lambda: dict(IN_DEPTH_TEMPLATES),
        description="The mutations to draw from, by name; '<PROMPT>' marks where the text goes.",
    )


class EvolQuality(_Evolution):
    """Evolves the ``response`` to an ``instruction`` over ``num_evolutions`` rounds, each round
    rewriting the last round's response to improve it one way (helpfulness, relevance, depth,
    creativity, details), drawn from ``mutation_templates``.

    The quality evolution of Liu, Zeng, He, Jiang and He, "What Makes Good Data for Alignment? A
    Comprehensive Study of Automatic Data Selection in Instruction Tuning" (DEITA,
    arXiv:2312.15685), in prompts written for synthflow. Templates mark the instruction with
    ``<PROMPT>`` and the response with ``<RESPONSE>``. An empty answer, one of only punctuation,
    or a short one that says sorry fails the row. ``num_generations`` is not used.

    Input columns:
        - instruction (str): the instruction the response answers.
        - response (str): the response to evolve.

    Output columns:
        - evolved_response (str): the last round's response (``store_evolutions=False``).
        - evolved_responses (list[str]): every round's response, the original first with
          ``include_original_response`` (``store_evolutions=True``).
        - model_name (str): the model that evolved them.

    Runtime parameters:
        - seed: seeds the draw of each round's mutation.

    The parser takes the text after a ``New response:`` style label when the model wrote one.
    """

    mutation_templates: dict[str, str] = Field(
        default_factory=lambda: dict(QUALITY_TEMPLATES),
        description="The mutations to draw from, by name; '<PROMPT>' marks the instruction and "
        "'<RESPONSE>' the response.",
    )
    include_original_response: bool = Field(
        default=False, description="Put the original response first in 'evolved_responses'."
    )

    @field_validator("mutation_templates")
    @classmethod
    def _check_response_slot(cls, templates: dict[str, str]) -> dict[str, str]:
        for name, template in templates.items():
            if RESPONSE_SLOT not in template:
                raise ValueError(
                    f"mutation template {name!r} has no '{RESPONSE_SLOT}': mark where the "
                    "response goes"
                )
        return templates

    @property
    def inputs(self) -> list[str]:
        return ["instruction", "response"]

    @property
    def outputs(self) -> list[str]:
        return ["evolved_responses" if self.store_evolutions else "evolved_response", "model_name"]

    def _prompt(self, instruction: str, response: str, round_no: int) -> ChatType:
        template = self.mutation_templates[self._mutation(response, round_no)]
        text = template.replace(PROMPT_SLOT, instruction).replace(RESPONSE_SLOT, response)
        return self._ask(text)

    def format_input(self, row: Row) -> ChatType:
        """The first round's messages (the later rounds rewrite the previous round's result)."""
        return self._prompt(_text_column(row, "instruction"), _text_column(row, "response"), 0)

    def parse_evolution(self, output: str | None) -> str:
        """The rewritten response in one round's answer."""
        return _clean(output, "the rewritten response")

    def format_output(self, output: str | None, row: Row) -> dict[str, Any]:
        """The columns for one round's answer, as if it were the last round."""
        return self._columns([self.parse_evolution(output)])

    def _columns(self, chain: list[str]) -> dict[str, Any]:
        if self.store_evolutions:
            return {"evolved_responses": chain}
        return {"evolved_response": chain[-1]}

    async def process_row(self, row: Row) -> list[Row]:
        instruction = _text_column(row, "instruction")
        chain, usage = [_text_column(row, "response")], Usage()
        for round_no in range(self.num_evolutions):
            messages = self._prompt(instruction, chain[-1], round_no)
            result = await self.generate_messages(messages, row)
            usage += result.usage
            try:
                chain.append(self.parse_evolution(result.generations[0]))
            except OutputParseError as exc:
                return self._unreadable(row, result.generations[0], exc, usage)
        kept = chain if self.include_original_response else chain[1:]
        return [self._finish(row, self._columns(kept), usage)]


def _text_column(row: Row, column: str) -> str:
    value = row[column]
    if not isinstance(value, str):
        raise TypeError(f"{column!r} must be a string, got {type(value).__name__}")
    return value
