"""Math-Shepherd: process-reward data without human labels (Wang et al., "Math-Shepherd: Verify
and Reinforce LLMs Step-by-step without Human Annotations", arXiv:2312.08935).

The paper labels each step of a solution by what it leads to: from the solution cut after that
step, a completer samples N continuations, and the step is good ("hard estimation") when at least
one of them reaches the golden answer. Three pieces here:

- ``MathShepherdGenerator`` writes the golden solution (``M`` unset) or ``M`` candidate solutions;
- ``MathShepherdCompleter`` labels every step of the candidates, with ``tags`` (``+``/``-``);
- ``FormatPRM`` turns labelled solutions into training rows (the paper's format, or TRL's).

Solutions are lists of steps (``"Step 1: ..."``) ending with the item ``"The answer is: X"``.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from fractions import Fraction
from typing import Any, Literal

import anyio
from pydantic import Field, PositiveInt

from synthflow.errors import OutputParseError
from synthflow.models.llms.base import ChatType, GenerateOutput, Usage
from synthflow.steps.base import METADATA_COLUMN, Row, Step, StepInput
from synthflow.steps.tasks.base import Task
from synthflow.steps.tasks.parsing import json_value, require_text

SYSTEM_PROMPT = """\
You are a math tutor who solves word problems step by step. Solve the problem you are given, or \
continue the partial solution you are given, following these rules:
- Write one step per line, numbered "Step 1:", "Step 2:", ... (continue the numbering of any \
steps you are given, without repeating them).
- Each step does one thing: say what it finds and why, and show its calculation.
- Keep steps short. Any valid approach is fine.
- End with a line "The answer is: <answer>", where <answer> is the final result alone.
{{ extra_rules }}{{ few_shots }}{{ structured_prompt }}"""

RULES_GSM8K = """\
- Use * for multiplication, / for division, + for addition and - for subtraction.
- Show each calculation inline as GSM8K solutions do: 12 * 3 = <<12*3=36>>36.
- The answer is a number, without units.
"""

FEW_SHOTS_GSM8K = """
Two problems solved in this format:

Problem: A baker makes 48 muffins and packs them in boxes of 6. She sells each box for $5. How \
much does she earn if she sells every box?
Step 1: The number of boxes is 48 / 6 = <<48/6=8>>8.
Step 2: She earns 8 * 5 = <<8*5=40>>40 dollars.
The answer is: 40

Problem: Tom reads 15 pages on Monday and twice as many on Tuesday. His book has 120 pages. How \
many pages are left to read?
Step 1: On Tuesday he reads 15 * 2 = <<15*2=30>>30 pages.
Step 2: So far he has read 15 + 30 = <<15+30=45>>45 pages.
Step 3: He has 120 - 45 = <<120-45=75>>75 pages left.
The answer is: 75
"""

RULES_MATH = """\
- Write mathematics in LaTeX between $ signs.
- Simplify the final answer fully: fractions in lowest terms, radicals simplified.
"""

FEW_SHOTS_MATH = """
Two problems solved in this format:

Problem: What is the sum of the first three positive multiples of 7?
Step 1: The first three positive multiples of 7 are $7$, $14$ and $21$.
Step 2: Their sum is $7 + 14 + 21 = 42$.
The answer is: 42

Problem: Solve for $x$: $3x - 5 = 10$.
Step 1: Add $5$ to both sides: $3x = 15$.
Step 2: Divide both sides by $3$: $x = 5$.
The answer is: 5
"""

_STRUCTURED_SOLUTIONS = """
Answer with JSON only: a list with one object per solution, each of the form \
{"solution": "Step 1: ...\\nStep 2: ...\\nThe answer is: ..."}.
"""

_STRUCTURED_CONTINUATION = """
Answer with JSON only, of the form {"solution": "Step k: ...\\nThe answer is: ..."}, holding \
the steps you add.
"""


def render_system_prompt(
    template: str, *, extra_rules: str | None, few_shots: str | None, structured: str = ""
) -> str:
    """``template`` with its ``{{ extra_rules }}``, ``{{ few_shots }}`` and
    ``{{ structured_prompt }}`` slots filled (the Jinja2 names distilabel users write)."""
    values = {
        "extra_rules": extra_rules or "",
        "few_shots": few_shots or "",
        "structured_prompt": structured,
    }
    return re.sub(
        r"\{\{\s*(extra_rules|few_shots|structured_prompt)\s*\}\}",
        lambda m: values[m.group(1)],
        template,
    )


# -- reading solutions -------------------------------------------------------------------------

_STEP = re.compile(
    r"^[ \t>#*-]*\**[ \t]*step[ \t]*(\d+)[ \t]*\**[ \t]*[:.)\-\u2013]+[ \t]*\**[ \t]*",
    re.IGNORECASE | re.MULTILINE,
)
_ANSWER = re.compile(
    r"(?:the[ \t]+(?:final[ \t]+)?answer[ \t]+is|final[ \t]+answer)[ \t]*\**[ \t]*:?[ \t]*\**"
    r"[ \t]*(.+)",
    re.IGNORECASE,
)
_BOXED = re.compile(r"\\boxed\{((?:[^{}]|\{[^{}]*\})*)\}")
_NUMBERED = re.compile(r"^\s*(?:\d+[.)]|[-*•])\s+")
_SEPARATOR = re.compile(r"^[ \t]*(?:-{3,}|\*{3,}|={3,})[ \t]*$", re.MULTILINE)
_SOLUTION_HEADING = re.compile(
    r"^[ \t#*]*solution[ \t]*\d+[ \t]*\**[ \t]*:?[ \t]*\**[ \t]*$", re.IGNORECASE | re.MULTILINE
)
ANSWER_PREFIX = "The answer is: "


def final_answer(text: str) -> str | None:
    """The final answer a solution states ("The answer is: X", "Final answer: X", or the last
    ``\\boxed{X}``), or None."""
    found = list(_ANSWER.finditer(text))
    if found:
        answer = found[-1].group(1)
        boxed = _BOXED.search(answer)
        answer = (boxed.group(1) if boxed else answer).strip(" \t*.")  # **18**.
        return answer or None
    boxes = _BOXED.findall(text)
    return boxes[-1].strip() or None if boxes else None


def solution_steps(text: str) -> list[str]:
    """One solution as a list of ``"Step N: ..."`` items ending with ``"The answer is: X"``.
    Steps are read from their ``Step N:`` labels (bold or as headings too), or, without labels,
    from the lines (numbered or not) before the answer. Raises ``OutputParseError`` when the
    solution states no final answer."""
    answer = final_answer(text)
    if answer is None:
        raise OutputParseError("the solution states no final answer ('The answer is: ...')")
    answer_at = [m.start() for m in _ANSWER.finditer(text)]
    body = text[: answer_at[-1]] if answer_at else text
    markers = list(_STEP.finditer(body))
    steps: list[str] = []
    if markers:
        for i, marker in enumerate(markers):
            end = markers[i + 1].start() if i + 1 < len(markers) else len(body)
            content = " ".join(body[marker.end() : end].split())
            if content:
                steps.append(f"Step {marker.group(1)}: {content}")
    else:
        lines = [_NUMBERED.sub("", line).strip() for line in body.splitlines()]
        lines = [line for line in lines if line and not line.startswith("```")]
        steps = [f"Step {i}: {line}" for i, line in enumerate(lines, 1)]
    return [*steps, ANSWER_PREFIX + answer]


def _solution_texts(output: str | None, structured: bool) -> list[str]:
    text = require_text(output, "a step-by-step solution")
    if structured:
        try:
            value = json_value(text, 'JSON solutions ({"solution": "..."})')
        except OutputParseError:
            value = None  # fall back on reading the text
        if isinstance(value, dict):
            value = value.get("solutions", [value])
        if isinstance(value, list):
            texts = [item.get("solution") if isinstance(item, dict) else item for item in value]
            found = [t for t in texts if isinstance(t, str) and t.strip()]
            if found:
                return found
    chunks = _SEPARATOR.split(text)
    if len(chunks) == 1:
        chunks = _SOLUTION_HEADING.split(text)
    return [chunk for chunk in chunks if chunk.strip()]


def _same_answer(a: str, b: str) -> bool:
    return _canonical(a) == _canonical(b)


def _canonical(answer: str) -> str | Fraction:
    text = _BOXED.sub(lambda m: m.group(1), answer)
    text = re.sub(r"\\text\{[^{}]*\}|\\[,!;]|\\dfrac|\\frac|[$\s]", "", text)
    text = re.sub(r"(?<=\d),(?=\d{3}\b)", "", text).rstrip(".")
    fraction = re.fullmatch(r"\{?(-?\d+)\}?\{(\d+)\}", text)  # what is left of \frac{a}{b}
    if fraction:
        text = f"{fraction.group(1)}/{fraction.group(2)}"
    try:
        return Fraction(text)
    except (ValueError, ZeroDivisionError):
        return text.lower()


# -- the tasks ---------------------------------------------------------------------------------


class MathShepherdGenerator(Task):
    """Writes step-by-step solutions to math problems for Math-Shepherd: the golden solution
    (``M`` unset) or ``M`` candidate solutions to label (Wang, Li, Shao, Xu, Dai, Li, Chen, Wu
    and Sui, "Math-Shepherd: Verify and Reinforce LLMs Step-by-step without Human
    Annotations", arXiv:2312.08935). Use a strong model for golden solutions: they are the
    reference the completer checks against.

    Input columns:
        - instruction (``str``): the problem.

    Output columns:
        - golden_solution (``list[str]``): the steps of one solution, ending with
          ``"The answer is: X"`` (``M`` unset).
        - solutions (``list[list[str]]``): ``M`` solutions in that form (``M`` set).
        - model_name (``str``): the model that wrote them.

    Fields: ``system_prompt`` (its ``{{ extra_rules }}``, ``{{ few_shots }}`` and
    ``{{ structured_prompt }}`` slots are filled from the fields of those names; the defaults
    suit GSM8K, and ``RULES_MATH``/``FEW_SHOTS_MATH`` in this module suit MATH), ``M`` and
    ``use_default_structured_output`` (ask for JSON).

    Runtime parameters: ``num_generations``, ``concurrency`` and ``input_batch_size`` (the
    task's, see ``Task``).

    The parser splits solutions at lines of ``---`` (or "Solution 2" headings, or reads the
    JSON list), reads steps from their ``Step N:`` labels (bold or as headings too; numbered
    lines otherwise) and the final answer from "The answer is: X", "Final answer: X" or
    ``\\boxed{X}``. Solutions without a final answer are left out; an answer with none is a row
    failure (``OutputParseError``).
    """

    system_prompt: str | None = Field(
        default=SYSTEM_PROMPT,
        description="The system message, with {{ extra_rules }}, {{ few_shots }} and "
        "{{ structured_prompt }} slots; None sends none.",
    )
    extra_rules: str | None = Field(
        default=RULES_GSM8K, description="Rules for the dataset, put in the system prompt."
    )
    few_shots: str | None = Field(
        default=FEW_SHOTS_GSM8K, description="Worked examples, put in the system prompt."
    )
    M: PositiveInt | None = Field(
        default=None,
        description="Candidate solutions per problem (column 'solutions'); None writes one "
        "golden solution (column 'golden_solution').",
    )

    @property
    def inputs(self) -> list[str]:
        return ["instruction"]

    @property
    def outputs(self) -> list[str]:
        return ["solutions" if self.M else "golden_solution", "model_name"]

    def format_input(self, row: Row) -> ChatType:
        if self.M:
            content = (
                f"Write {self.M} different solutions to the problem below, each complete and in "
                "the format described, separated by a line with only ---. Vary the approach; "
                "a solution may turn out wrong.\n\n"
                f"Problem: {row['instruction']}"
            )
        else:
            content = f"Problem: {row['instruction']}"
        messages: ChatType = []
        if self.system_prompt:
            structured = _STRUCTURED_SOLUTIONS if self.use_default_structured_output else ""
            system = render_system_prompt(
                self.system_prompt,
                extra_rules=self.extra_rules,
                few_shots=self.few_shots,
                structured=structured,
            )
            messages.append({"role": "system", "content": system})
        messages.append({"role": "user", "content": content})
        return messages

    def format_output(self, output: str | None, row: Row) -> dict[str, Any]:
        texts = _solution_texts(output, self.use_default_structured_output)
        solutions: list[list[str]] = []
        for text in texts:
            try:
                solutions.append(solution_steps(text))
            except OutputParseError:
                continue  # one unfinished solution among several: leave it out
        if not solutions:
            raise OutputParseError("no solution in the answer states a final answer")
        if self.M:
            return {"solutions": solutions[: self.M]}
        return {"golden_solution": solutions[0]}


class MathShepherdCompleter(Task):
    """Labels every step of candidate solutions by hard estimation, the automatic process
    annotation of Math-Shepherd (Wang, Li, Shao, Xu, Dai, Li, Chen, Wu and Sui, "Math-Shepherd:
    Verify and Reinforce LLMs Step-by-step without Human Annotations", arXiv:2312.08935).

    For each step but the last of each solution, the model continues the solution from that step
    ``N`` times (``N`` completions of one prompt); the step is good (``tags[0]``, ``+``) when
    at least one continuation reaches the golden answer, and bad (``tags[1]``, ``-``) otherwise.
    The last step is labelled by the solution's own answer. The calls for a row run concurrently.

    Input columns:
        - instruction (``str``): the problem.
        - solutions (``list[list[str]]``): candidate solutions, from ``MathShepherdGenerator``
          with ``M`` set.
        - golden_solution (``list[str]``): the reference solution, from
          ``MathShepherdGenerator`` with ``M`` unset.

    Output columns:
        - solutions (``list[list[str]]``): the same solutions, each step ending with its tag
          and the final answer joined to the last step (``"Step 3: ... The answer is: 18 +"``).
          distilabel lists only ``model_name`` as its output and changes ``solutions`` in place;
          here the change is declared, so ``output_mappings`` can keep the original column.
        - model_name (``str``): the model that wrote the continuations.

    Fields: ``system_prompt``, ``extra_rules``, ``few_shots`` (as ``MathShepherdGenerator``),
    ``N``, ``tags`` and ``use_default_structured_output``.

    Runtime parameters: ``concurrency`` and ``input_batch_size`` (the task's, see ``Task``).

    A continuation counts when its final answer ("The answer is: X", "Final answer: X" or
    ``\\boxed{X}``) equals the golden one (as numbers when both are numbers); one without an
    answer counts as not reaching it. A golden solution without an answer, or solutions that
    aren't lists, are a row failure.
    """

    system_prompt: str | None = Field(
        default=SYSTEM_PROMPT,
        description="The system message, with {{ extra_rules }}, {{ few_shots }} and "
        "{{ structured_prompt }} slots; None sends none.",
    )
    extra_rules: str | None = Field(
        default=RULES_GSM8K, description="Rules for the dataset, put in the system prompt."
    )
    few_shots: str | None = Field(
        default=FEW_SHOTS_GSM8K, description="Worked examples, put in the system prompt."
    )
    N: PositiveInt = Field(default=1, description="Continuations sampled per step.")
    tags: list[str] = Field(
        default_factory=lambda: ["+", "-"],
        min_length=2,
        max_length=2,
        description="The labels of a good and of a bad step.",
    )

    @property
    def inputs(self) -> list[str]:
        return ["instruction", "solutions", "golden_solution"]

    @property
    def outputs(self) -> list[str]:
        return ["solutions", "model_name"]

    def format_input(self, row: Row) -> ChatType:
        """The prompt that continues ``row["steps"]`` (none: a whole solution) for the problem
        in ``row["instruction"]``."""
        steps: list[str] = list(row.get("steps") or [])
        if steps:
            content = (
                f"Problem: {row['instruction']}\n\n"
                "The first steps of a solution:\n" + "\n".join(steps) + "\n\n"
                f"Continue this solution from Step {len(steps) + 1} to the final answer, "
                "without repeating or changing the steps above."
            )
        else:
            content = f"Problem: {row['instruction']}"
        messages: ChatType = []
        if self.system_prompt:
            structured = _STRUCTURED_CONTINUATION if self.use_default_structured_output else ""
            system = render_system_prompt(
                self.system_prompt,
                extra_rules=self.extra_rules,
                few_shots=self.few_shots,
                structured=structured,
            )
            messages.append({"role": "system", "content": system})
        messages.append({"role": "user", "content": content})
        return messages

    def format_output(self, output: str | None, row: Row) -> dict[str, Any]:
        """The completer writes its column in ``process_row``; one continuation makes none."""
        return {}

    def continuation_answer(self, output: str | None) -> str | None:
        """The final answer of one continuation, or None when it states none."""
        if not output:
            return None
        for text in _solution_texts(output, self.use_default_structured_output) or [output]:
            answer = final_answer(text)
            if answer is not None:
                return answer
        return None

    async def process_row(self, row: Row) -> list[Row]:
        golden = _as_steps(row.get("golden_solution"), "golden_solution")
        golden_answer = final_answer("\n".join(golden))
        if golden_answer is None:
            raise ValueError("'golden_solution' states no final answer ('The answer is: ...')")
        solutions = row.get("solutions")
        if not isinstance(solutions, list):
            raise TypeError("'solutions' must be a list of solutions, each a list of steps")
        parsed = [_split_answer(_as_steps(s, "solutions")) for s in solutions]

        # One call per step but the last of each solution, all at once.
        reached: dict[tuple[int, int], bool] = {}
        results: list[GenerateOutput] = []

        async def estimate(i: int, k: int, prefix: list[str]) -> None:
            result = await self._complete(self.format_input({**row, "steps": prefix}))
            results.append(result)
            answers = [self.continuation_answer(text) for text in result.generations]
            reached[i, k] = any(a is not None and _same_answer(a, golden_answer) for a in answers)

        async with anyio.create_task_group() as tg:
            for i, (steps, _) in enumerate(parsed):
                for k in range(len(steps) - 1):
                    tg.start_soon(estimate, i, k, steps[: k + 1])

        good, bad = self.tags
        labelled: list[list[str]] = []
        for i, (steps, answer) in enumerate(parsed):
            if not steps and answer is None:
                labelled.append([])  # nothing to label (an empty solution)
                continue
            out = [f"{step} {good if reached[i, k] else bad}" for k, step in enumerate(steps[:-1])]
            right = answer is not None and _same_answer(answer, golden_answer)
            stated = "" if answer is None else ANSWER_PREFIX + answer
            last = f"{steps[-1]} {stated}".strip() if steps else stated
            out.append(f"{last} {good if right else bad}")
            labelled.append(out)

        row["solutions"] = labelled
        row["model_name"] = self.llm.model_name
        usage = Usage(
            sum(r.usage.input_tokens for r in results), sum(r.usage.output_tokens for r in results)
        )
        metadata = self._metadata(row, GenerateOutput([], usage, raw=[r.raw for r in results]))
        if metadata is not None:
            row[METADATA_COLUMN] = metadata
        return [row]

    async def _complete(self, messages: ChatType) -> GenerateOutput:
        # Task.generate, for messages of our own and N completions (the row's prompt is one of
        # many here); through the run's cache and accounting when bound.
        if self._calls is None:
            return await self.llm.agenerate(messages, num_generations=self.N)
        return await self._calls.generate(
            self.llm, messages, self.N, self._call_stats, use_cache=self.use_cache
        )


def _as_steps(value: Any, column: str) -> list[str]:
    """A solution as a list of step texts: a list as given, or a text split into steps."""
    if isinstance(value, str):
        try:
            return solution_steps(value)
        except OutputParseError:
            return [line.strip() for line in value.splitlines() if line.strip()]
    if isinstance(value, list) and all(isinstance(step, str) for step in value):
        return [step.strip() for step in value if step.strip()]
    raise TypeError(f"'{column}' must hold solutions as lists of step texts, got {value!r:.80}")


def _split_answer(steps: list[str]) -> tuple[list[str], str | None]:
    """The steps of a solution without its answer, and its final answer (None if it states
    none). An answer stated inside the last step is cut off it: it is joined back labelled."""
    if not steps:
        return [], None
    last = steps[-1]
    found = list(_ANSWER.finditer(last))
    if not found:
        return steps, final_answer(last)  # a \boxed{} answer stays in its step
    before = last[: found[-1].start()].strip()
    return ([*steps[:-1], before] if before else steps[:-1]), final_answer(last)


# -- training rows -----------------------------------------------------------------------------


class FormatPRM(Step):
    """Turns a labelled solution into a training row for a process reward model, in the format
    of Math-Shepherd's dataset (``format="math-shepherd"``) or of TRL's PRM trainer
    (``format="trl"``). From Wang, Li, Shao, Xu, Dai, Li, Chen, Wu and Sui, "Math-Shepherd:
    Verify and Reinforce LLMs Step-by-step without Human Annotations" (arXiv:2312.08935).

    One solution per row: ``MathShepherdCompleter`` writes a list of solutions, so expand the
    column first (one row per solution).

    Input columns:
        - instruction (``str``): the problem.
        - solutions (``list[str]``): one labelled solution, each step ending with a tag.

    Output columns (``format="math-shepherd"``):
        - input (``str``): the problem and the steps, each tag replaced by ``step_token``.
        - label (``str``): the problem and the steps with their tags.

    Output columns (``format="trl"``):
        - prompt (``str``): the problem.
        - completions (``list[str]``): the steps without their tags.
        - labels (``list[bool]``): whether each step is good (its tag is ``tags[0]``).

    Fields: ``format``, ``step_token`` (default ``"ки"``, the token of the paper's dataset) and
    ``tags`` (default ``["+", "-"]``).

    Runtime parameters: ``input_batch_size`` (see ``Step``).

    A row whose ``solutions`` is null (a failed row upstream) gets null outputs; a step without
    a tag is an error.
    """

    format: Literal["math-shepherd", "trl"] = Field(
        default="math-shepherd", description="'math-shepherd' (input/label) or 'trl'."
    )
    step_token: str = Field(
        default="ки", description="The token that replaces each step's tag in 'input'."
    )
    tags: list[str] = Field(
        default_factory=lambda: ["+", "-"],
        min_length=2,
        max_length=2,
        description="The labels of a good and of a bad step.",
    )

    @property
    def inputs(self) -> list[str]:
        return ["instruction", "solutions"]

    @property
    def outputs(self) -> list[str]:
        if self.format == "math-shepherd":
            return ["input", "label"]
        return ["prompt", "completions", "labels"]

    def process(self, inputs: StepInput) -> Iterator[list[Row]]:
        for row in inputs:
            row.update(self.format_row(row))
        yield inputs

    def format_row(self, row: Row) -> dict[str, Any]:
        """The output columns of one row."""
        solution = row.get("solutions")
        if solution is None:
            return dict.fromkeys(self.outputs)
        if not isinstance(solution, list) or any(not isinstance(s, str) for s in solution):
            raise TypeError(
                "'solutions' must be one solution per row (a list of step texts): expand the "
                "completer's list of solutions into rows first"
            )
        instruction = str(row["instruction"])
        steps = [self._untag(step, n) for n, step in enumerate(solution, 1)]
        if self.format == "trl":
            return {
                "prompt": instruction,
                "completions": [text for text, _ in steps],
                "labels": [tag == self.tags[0] for _, tag in steps],
            }
        return {
            "input": f"{instruction} " + "\n".join(f"{t} {self.step_token}" for t, _ in steps),
            "label": f"{instruction} " + "\n".join(f"{t} {tag}" for t, tag in steps),
        }

    def _untag(self, step: str, number: int) -> tuple[str, str]:
        text = step.rstrip()
        for tag in self.tags:
            if text.endswith(tag):
                return text[: -len(tag)].rstrip(), tag
        raise ValueError(
            f"step {number} of a solution ends with no tag {self.tags}: {text[-60:]!r}; label the "
            "solutions with MathShepherdCompleter first"
        )
