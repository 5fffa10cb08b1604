"""Instructions evolved from scratch: EvolInstructGenerator (WizardLM) and EvolComplexityGenerator
(DEITA), the sources of the evolution family (``evolution.py`` evolves a column instead).

Each of the ``num_instructions`` rows is a chain of its own: a first call writes a question from a
few random seed words (the ``FRESH_START`` template), then each round mutates the last round's
text with a template drawn from the others, until the text's length falls within
``min_length``..``max_length``. A text that grows past ``max_length`` starts over from new seed
words. The chains run concurrently; the seed words and the mutations are drawn from a generator
seeded by ``seed`` and the row's number, so a re-run draws the same ones (and hits the response
cache) whatever order the calls finish in.
"""

from __future__ import annotations

import random
from collections.abc import AsyncGenerator, Callable
from typing import Any, ClassVar

from pydantic import Field, field_validator

from synthflow.errors import OutputParseError
from synthflow.models.llms.base import GenerateOutput, Usage
from synthflow.runtime_parameters import RuntimeParameter
from synthflow.steps.base import METADATA_COLUMN, ROW_ID, Row
from synthflow.steps.tasks.evolution import (
    _TEMPLATE_ECHO,
    IN_DEPTH_TEMPLATES,
    MUTATION_TEMPLATES,
    PROMPT_SLOT,
    _clean,
)
from synthflow.steps.tasks.generator_task import GeneratorTask
from synthflow.steps.tasks.typing import ChatType

FRESH_START = "FRESH_START"
"""The template that writes a first instruction from seed words (in place of ``<PROMPT>``)."""

_FRESH_START_TEMPLATE = f"""\
Make up one question or request that a person could put to an AI assistant. Build it around at \
least one of these words: {PROMPT_SLOT}

Write only the question or request, with no introduction."""

GENERATION_MUTATION_TEMPLATES: dict[str, str] = {
    FRESH_START: _FRESH_START_TEMPLATE,
    **MUTATION_TEMPLATES,
}
"""EvolInstructGenerator's default: a fresh start, WizardLM's in-depth and in-breadth mutations."""

COMPLEXITY_GENERATION_TEMPLATES: dict[str, str] = {
    FRESH_START: _FRESH_START_TEMPLATE,
    **IN_DEPTH_TEMPLATES,
}
"""EvolComplexityGenerator's default: a fresh start and the in-depth mutations only."""

# Seed words for fresh starts: everyday and technical nouns across many domains.
_NOUNS = """
    account airport algebra algorithm allergy anchor apartment apple archive argument army
    asteroid atom auction battery beach bicycle biology blanket budget bridge calendar camera
    carbon castle catalog cathedral cell chemistry chess circuit climate cloud coffee comet
    compiler contract cooking crystal currency database debt democracy desert diagram diet
    dinosaur disease drought earthquake economy editor election electricity engine enzyme
    equation essay exercise factory farm fever film forest fossil fraction friendship galaxy
    garden gene geometry glacier grammar gravity guitar habit harbor harvest hospital hotel
    hurricane insurance interview invoice island journal jury keyboard kitchen ladder language
    laptop lawyer lecture library lighthouse loan magnet manuscript marathon market medicine
    memory metaphor microscope migration molecule monastery mortgage mountain museum music
    negotiation network newspaper novel ocean opera orchestra oxygen painting pandemic parliament
    password patent pension philosophy photograph piano planet poem pollution portfolio pottery
    probability protein puzzle pyramid quarantine railway recipe refugee reservoir restaurant
    robot satellite scholarship sculpture semiconductor server shipwreck software soil spreadsheet
    stadium startup statistics storm submarine subway symphony tariff telescope theorem tourism
    tournament translation treaty tsunami umbrella university vaccine valley vineyard violin
    virus volcano voyage wallet warehouse weather website wedding wetland whale wind wine yoga
"""
SEED_WORDS: tuple[str, ...] = tuple(_NOUNS.split())


def _check_templates(templates: dict[str, str]) -> dict[str, str]:
    if FRESH_START not in templates:
        raise ValueError(
            f"mutation_templates has no {FRESH_START!r} template: add one that writes a first "
            f"instruction from the seed words at '{PROMPT_SLOT}'"
        )
    for name, template in templates.items():
        if PROMPT_SLOT not in template:
            raise ValueError(
                f"mutation template {name!r} has no '{PROMPT_SLOT}': mark where the text goes"
            )
    return templates


class EvolInstructGenerator(GeneratorTask):
    """Writes ``num_instructions`` instructions from scratch and evolves each until its length is
    within ``min_length``..``max_length`` characters; optionally answers them.

    Evol-Instruct from Xu, Sun, Zheng, Geng, Zhao, Feng, Tao and Jiang, "WizardLM: Empowering
    Large Language Models to Follow Complex Instructions" (arXiv:2304.12244), started from seed
    words instead of a dataset. A source: it needs no input column. Each row's first call fills
    the ``FRESH_START`` template of ``mutation_templates`` with one to four random words from
    ``SEED_WORDS``; each later round applies a mutation drawn from the other templates (by
    default WizardLM's four in-depth mutations and its in-breadth one, the prompts that
    ``EvolInstruct`` uses) to the last round's text. A text longer than ``max_length`` starts
    over from new seed words. A row whose text isn't within the bounds after ``num_evolutions``
    mutation rounds fails (null outputs, the reason in ``synthflow_error``); so does one whose
    call failed.

    Fields:
        num_instructions: how many instructions (rows) to write.
        generate_answers: also answer each instruction, with the same LLM.
        mutation_templates: the templates by name; ``FRESH_START`` is required, and ``<PROMPT>``
            marks where the seed words or the text go.
        num_evolutions: the most mutation rounds a row gets to reach the length bounds.

    Output columns:
        - instruction (str): the evolved instruction.
        - answer (str): its answer (``generate_answers=True``).
        - model_name (str): the model that wrote them.

    Runtime parameters:
        - min_length: the fewest characters an accepted instruction has (default 512).
        - max_length: the most characters an accepted instruction has (default 1024).
        - seed: seeds the draw of seed words and mutations.

    The parser takes the text after a ``New prompt:`` style label when the model wrote one, and
    drops surrounding quotes and a code fence. WizardLM's elimination rules make a round's answer
    unreadable (the row then tries another mutation of the same text): an empty answer, one of
    only punctuation, a short one that says sorry, one that echoes the template, or one equal to
    its input.
    """

    num_instructions: int = Field(ge=1, description="How many instructions (rows) to write.")
    generate_answers: bool = Field(
        default=False, description="Also answer each instruction, with the same LLM."
    )
    mutation_templates: dict[str, str] = Field(
        default_factory=lambda: dict(GENERATION_MUTATION_TEMPLATES),
        description="The templates by name: 'FRESH_START' writes a first instruction from seed "
        "words, the others mutate it; '<PROMPT>' marks where the text goes.",
    )
    num_evolutions: int = Field(
        default=10,
        ge=0,
        description="The most mutation rounds a row gets to reach min_length..max_length.",
    )
    min_length: RuntimeParameter[int] = Field(
        default=512, ge=0, description="The fewest characters an accepted instruction has."
    )
    max_length: RuntimeParameter[int] = Field(
        default=1024, ge=1, description="The most characters an accepted instruction has."
    )
    seed: RuntimeParameter[int] = Field(
        default=42, description="Seeds the draw of seed words and mutations."
    )

    @field_validator("mutation_templates")
    @classmethod
    def _validate_templates(cls, templates: dict[str, str]) -> dict[str, str]:
        return _check_templates(templates)

    @property
    def outputs(self) -> list[str]:
        columns = ["instruction", "model_name"]
        if self.generate_answers:
            columns.append("answer")
        return columns

    def format_input(self, row: Row) -> ChatType:
        """The first call of row ``row[ROW_ID]`` (0 by default): a fresh start from seed words."""
        slot = row.get(ROW_ID, 0)
        return self._fresh_start(self._random(slot if isinstance(slot, int) else 0))

    def format_output(self, output: str | None, row: Row) -> dict[str, Any]:
        """The instruction in one round's answer (the length bounds are checked by ``process``)."""
        return {"instruction": self.parse_instruction(output, None)}

    def parse_instruction(self, output: str | None, previous: str | None) -> str:
        """The instruction in one round's answer; ``previous`` is the text it mutated."""
        text = _clean(output, "the new instruction")
        if _TEMPLATE_ECHO.search(text):
            raise OutputParseError("the answer repeats the rewriting template, not a new prompt")
        if previous is not None and " ".join(text.split()) == " ".join(previous.split()):
            raise OutputParseError("the rewritten instruction is the same as its input")
        return text

    # -- the chains ----------------------------------------------------------------------------

    def _random(self, slot: int) -> random.Random:
        return random.Random(f"{self.seed}\x00{slot}")

    def _fresh_start(self, rng: random.Random) -> ChatType:
        words = rng.sample(SEED_WORDS, k=rng.randint(1, 4))
        prompt = self.mutation_templates[FRESH_START].replace(PROMPT_SLOT, ", ".join(words))
        return [{"role": "user", "content": prompt}]

    def _mutate(self, rng: random.Random, text: str) -> ChatType | None:
        names = sorted(name for name in self.mutation_templates if name != FRESH_START)
        if not names:
            return None
        prompt = self.mutation_templates[rng.choice(names)].replace(PROMPT_SLOT, text)
        return [{"role": "user", "content": prompt}]

    makes_rows_by_id: ClassVar[bool] = True  # each row is seeded by its number alone

    def process(  # type: ignore[override]
        self, offset: int = 0, wanted: Callable[[int], bool] | None = None
    ) -> AsyncGenerator[list[Row]]:
        # Rows are independent: a resumed run starts at row ``offset``, a shard makes its own.
        return self._rows_by_slot(self._chain, offset, self.num_instructions, wanted)

    async def _chain(self, slot: int) -> Row:
        rng = self._random(slot)
        usage = Usage()
        text: str | None = None  # the last round's instruction; None: start from seed words
        reason = "no round ran"
        unreadable: str | None = None
        for round_no in range(self.num_evolutions + 1):
            messages = self._fresh_start(rng) if text is None else self._mutate(rng, text)
            if messages is None:  # no mutation templates: every round starts over
                messages = self._fresh_start(rng)
            # Each round's sample is the row's own, in the response cache.
            result = await self.generate_messages(messages, {ROW_ID: f"{slot}:{round_no}"})
            usage += result.usage
            answer = result.generations[0]
            try:
                candidate = self.parse_instruction(answer, text)
            except OutputParseError as exc:
                reason, unreadable = f"OutputParseError: {exc}", answer
                continue
            unreadable = None
            if len(candidate) > self.max_length:
                text, reason = None, f"the instruction grew past max_length={self.max_length}"
            elif len(candidate) < self.min_length:
                text, reason = candidate, f"the instruction is under min_length={self.min_length}"
            else:
                return await self._accepted(slot, candidate, usage)
        row = self._failed(
            {},
            f"no instruction of {self.min_length}..{self.max_length} characters after "
            f"{self.num_evolutions} mutation rounds ({reason})",
        )
        if unreadable is not None:  # the answer that stopped the row stays, to see why
            row[METADATA_COLUMN] = {f"raw_output_{self.name}": unreadable}
        return row

    async def _accepted(self, slot: int, instruction: str, usage: Usage) -> Row:
        row: Row = {"instruction": instruction, "model_name": self.llm.model_name}
        if self.generate_answers:
            messages: ChatType = [{"role": "user", "content": instruction}]
            result = await self.generate_messages(messages, {ROW_ID: f"{slot}:answer"})
            usage += result.usage
            row["answer"] = result.generations[0]
        metadata = self._metadata({}, GenerateOutput(generations=[], usage=usage))
        if metadata is not None:
            row[METADATA_COLUMN] = metadata
        return row


class EvolComplexityGenerator(EvolInstructGenerator):
    """EvolInstructGenerator with in-depth mutations only: instructions written from seed words,
    then made more complex round after round until their length is within
    ``min_length``..``max_length``, as DEITA does to build instructions of graded complexity.

    From Liu, Zeng, He, Jiang and He, "What Makes Good Data for Alignment? A Comprehensive Study
    of Automatic Data Selection in Instruction Tuning" (DEITA, arXiv:2312.15685), which takes its
    mutations from WizardLM (Xu et al., arXiv:2304.12244). A source: it needs no input column.
    Everything else is as in ``EvolInstructGenerator``.

    Output columns:
        - instruction (str): the evolved instruction.
        - answer (str): its answer (``generate_answers=True``).
        - model_name (str): the model that wrote them.

    Runtime parameters:
        - min_length: the fewest characters an accepted instruction has (default 512).
        - max_length: the most characters an accepted instruction has (default 1024).
        - seed: seeds the draw of seed words and mutations.
    """

    mutation_templates: dict[str, str] = Field(
        default_factory=lambda: dict(COMPLEXITY_GENERATION_TEMPLATES),
        description="The templates by name: 'FRESH_START' writes a first instruction from seed "
        "words, the others mutate it; '<PROMPT>' marks where the text goes.",
    )
