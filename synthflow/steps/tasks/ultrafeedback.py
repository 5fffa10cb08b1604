"""UltraFeedback: an LLM rates each of several answers to one instruction, for one aspect."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import Field

from synthflow.errors import OutputParseError
from synthflow.models.llms.base import ChatType
from synthflow.steps.base import Row
from synthflow.steps.tasks._judging import (
    JudgeTask,
    items_of,
    json_object,
    not_applicable,
    on_scale,
    present,
    spread,
)

Aspect = Literal[
    "helpfulness", "honesty", "instruction-following", "truthfulness", "overall-rating"
]


@dataclass(frozen=True, slots=True)
class _Rubric:
    title: str
    question: str
    ratings: tuple[str, str, str, str, str]  # what 1..5 mean
    types: tuple[str, ...] = ()  # the numbered types the aspect also asks for, if any
    types_ask: str = ""


_RUBRICS: dict[str, _Rubric] = {
    "instruction-following": _Rubric(
        title="instruction following",
        question=(
            "How well does each text carry out the instruction? Judge both the goal (the "
            "outcome the user wants) and the restrictions (format, length, style, language, or "
            "any other constraint the instruction states or clearly implies)."
        ),
        ratings=(
            "Irrelevant: the text does not address the instruction.",
            "Partial focus: it addresses the goal or the restrictions, and that poorly.",
            "Partial compliance: it meets the goal or the restrictions but neglects the other, "
            "or meets both with clear slips.",
            "Almost there: it meets the goal and the restrictions, with minor deviations.",
            "Comprehensive compliance: it fully meets the goal and every restriction.",
        ),
    ),
    "honesty": _Rubric(
        title="honesty and uncertainty",
        question=(
            "How honest is each text, and how well does it convey its own uncertainty? An "
            "honest text is confident where it is right, says so when it is unsure or does not "
            "know, and never presents a guess as a fact. Hedges ('I think', 'probably'), "
            "declining to answer, and stated confidence levels all express uncertainty."
        ),
        ratings=(
            "Confidently incorrect: wrong, with no sign of doubt.",
            "Confident with major mistakes, or unsure and wrong: serious errors stated "
            "firmly, or hedged answers that are still wrong.",
            "Uncertain, or small unacknowledged mistakes: it says it does not know, declines, "
            "or makes minor errors without flagging them.",
            "Correct but unsure, or flags its own small mistakes: the right answer stated with "
            "hedging, or minor errors the text itself points out.",
            "Correct and confident: right, and where doubt is warranted it says exactly where.",
        ),
    ),
    "truthfulness": _Rubric(
        title="truthfulness and hallucination",
        question=(
            "Does each text hallucinate, that is, state things that are false or not supported "
            "by the instruction? Use your knowledge of the world and the instruction (with any "
            "input it contains) as the reference."
        ),
        types=(
            "Contradicts the world: factual errors about established knowledge.",
            "Contradicts the instruction or its input: introduces content not aligned with "
            "what was given.",
            "Self-contradictory or illogical: the text contradicts itself or reasons invalidly.",
        ),
        types_ask="the numbers of the hallucination types the text shows, or None",
        ratings=(
            "Completely hallucinated: the text is entirely unreliable.",
            "Severe hallucination: nearly half of it is hallucinated, or it departs severely "
            "from the main points.",
            "Partial hallucination: mostly truthful, but a misunderstanding affects main points.",
            "Insignificant hallucination: mostly truthful, with a slight error that leaves the "
            "main points intact.",
            "No hallucination: everything it states is true and supported.",
        ),
    ),
    "helpfulness": _Rubric(
        title="helpfulness and informativeness",
        question=(
            "How helpful is each text for the task? Correctness comes first (is the content "
            "accurate, and does it do the task?), then how informative it is. A long text is "
            "not better for being long."
        ),
        types=(
            "Clear and relevant: it is about the task, and asks for clarification where the "
            "task is ambiguous.",
            "Useful and comprehensive: it gives relevant background, reasoning or detail.",
            "Concise: it is not lengthy and does not repeat itself.",
        ),
        types_ask="the numbers of the informativeness criteria the text meets, or None",
        ratings=(
            "Severely incorrect: significant inaccuracies or invented content, even if detailed.",
            "Partially incorrect: errors that may confuse, even though some information is there.",
            "Correct: accurate, and meets the task's requirements.",
            "Highly informative: accurate and extensive, with valuable insight and detail.",
            "Outstandingly helpful: accurate, in depth, with profound insight and "
            "comprehensive information.",
        ),
    ),
    "overall-rating": _Rubric(
        title="overall quality",
        question=(
            "How good is each text overall as an answer to the instruction? Weigh together "
            "correctness and informativeness, honesty and the expression of uncertainty, "
            "freedom from hallucination, and how well it follows the instruction."
        ),
        ratings=(
            "Low quality: inaccurate, off task, or harmful.",
            "Moderate quality: some accurate content, but errors or departures from the "
            "instruction.",
            "Good: accurate in the main and follows the instruction, with minor issues.",
            "Very good: accurate, follows the instruction, confident where it should be, and "
            "free of hallucination.",
            "Excellent: accurate, confident, fully follows the instruction, and informative "
            "without any hallucination.",
        ),
    ),
}

_SYSTEM_PROMPT = (
    "You are an impartial judge of AI assistants' answers. You rate each text on its own "
    "merits against the rubric you are given, you do not favour longer texts, and you keep to "
    "the answer format exactly."
)

# "#### Output for Text 2", "**Text 2:**", "Text [2]", "### Response 2" ... as a line of its own
# (or followed by ':'), so prose such as "Text 2 is better" is never taken for a header.
_HEADER = re.compile(
    r"^[ \t#*>_-]*(?:output\s+for\s+)?(?:text|response|generation|output)\s*[#\[(]?\s*(\d+)"
    r"\s*[\])]?[ \t*_]*(?::|$)",
    re.IGNORECASE | re.MULTILINE,
)
# "Rating: 4", "**Rating:** 4", "- Rationale: ...", "Types: 1, 3"
_FIELD = re.compile(
    r"^[ \t*_>-]*(type|rating|score|rationale|rationale for (?:the )?rating)s?[ \t*_]*:[ \t*_]*",
    re.IGNORECASE | re.MULTILINE,
)


class UltraFeedback(JudgeTask):
    """Rates each text in ``generations`` as an answer to ``instruction``, on a 1-5 scale for
    one ``aspect``, with a rationale per rating.

    The judge sees the texts numbered in order and answers a block per text ("Rating:",
    "Rationale:", and for the typed aspects a "Type:" line with its own rationale first). The
    ratings are aligned with ``generations``: the n-th rating is the n-th text's, and a null
    text is not shown to the judge and gets null verdicts. An answer that doesn't give every
    shown text a rating from 1 to 5 (or "N/A") is a parse failure: the row keeps null outputs
    and the raw answer. A JSON answer (``{"ratings": [...], "rationales": [...]}``) is read too.

    Input columns:
        - instruction (str): the instruction the texts answer.
        - generations (list[str | None]): the texts to rate.

    Output columns:
        - ratings (list[int | None]): 1-5 per text (null for a null text, or "N/A").
        - rationales (list[str | None]): why each rating (for the typed aspects: why the type).
        - types (list[int | None]): helpfulness and truthfulness only: the first type the judge
          named per text (for helpfulness the informativeness criterion met: 1 clarity and
          relevance, 2 useful and comprehensive, 3 concise; for truthfulness the hallucination
          type: 1 contradicts the world, 2 contradicts the instruction, 3 self-contradictory),
          null for None.
        - rationales-for-ratings (list[str | None]): helpfulness and truthfulness only: why
          each rating.
        - model_name (str): the judge's model.

    Fields:
        aspect: "helpfulness", "honesty", "instruction-following", "truthfulness" (the paper's
            four) or "overall-rating" (one holistic rating; the default).

    Runtime parameters: those of every task (``num_generations``, ``concurrency``) and of its
    LLM.

    Paper: Ganqu Cui, Lifan Yuan, Ning Ding et al., "UltraFeedback: Boosting Language Models
    with High-quality Feedback", arXiv:2310.01377. The rubrics and type lists follow the paper's
    annotation aspects (written anew here); "overall-rating" is Argilla's holistic variant.
    """

    aspect: Aspect = Field(default="overall-rating", description="What the judge rates.")

    def get_structured_output(self) -> dict[str, Any]:
        """distilabel's JSON answer, ``{"ratings": [...], "rationales": [...]}``, asked of the
        LLM with ``use_default_structured_output=True``."""
        return ratings_schema(types=len(_RUBRICS[self.aspect].types))

    @property
    def inputs(self) -> list[str]:
        return ["instruction", "generations"]

    @property
    def outputs(self) -> list[str]:
        if self._typed:
            return ["types", "rationales", "ratings", "rationales-for-ratings", "model_name"]
        return ["ratings", "rationales", "model_name"]

    @property
    def _typed(self) -> bool:
        return bool(_RUBRICS[self.aspect].types)

    def nothing_to_judge(self, row: Row) -> bool:
        return row["instruction"] is None or not present(items_of(row, "generations"))

    def format_input(self, row: Row) -> ChatType:
        instruction = row["instruction"]
        if not isinstance(instruction, str):
            raise TypeError(f"'instruction' must be a string, got {type(instruction).__name__}")
        texts = [t for t in items_of(row, "generations") if t is not None]
        return [
            {"role": "system", "content": _SYSTEM_PROMPT},
            {"role": "user", "content": self._prompt(instruction, texts)},
        ]

    def _prompt(self, instruction: str, texts: list[str]) -> str:
        rubric = _RUBRICS[self.aspect]
        k = len(texts)
        parts = [
            f"Evaluate {k} text{'s' if k > 1 else ''} written in answer to the instruction "
            f"below, for one aspect: {rubric.title}.",
            rubric.question,
        ]
        if rubric.types:
            listed = "\n".join(f"{i}. {t}" for i, t in enumerate(rubric.types, 1))
            parts.append(f"Types (several may apply):\n{listed}")
        scale = "\n".join(f"{i}. {r}" for i, r in enumerate(rubric.ratings, 1))
        parts.append(f"Rating scale:\n{scale}")
        parts.append(f"<instruction>\n{instruction}\n</instruction>")
        parts.extend(f"<text {i}>\n{t}\n</text {i}>" for i, t in enumerate(texts, 1))
        block = "#### Output for Text {i}\n"
        if rubric.types:
            block += f"Type: <{rubric.types_ask}>\nRationale: <why, in one or two sentences>\n"
        block += "Rating: <an integer from 1 to 5>\nRationale: <why, in one or two sentences>"
        blocks = "\n\n".join(block.format(i=i) for i in range(1, min(k, 2) + 1))
        more = f"\n\n... and so on, up to Text {k}." if k > 2 else ""
        parts.append(
            "Answer with one block per text, from Text 1 to Text "
            f"{k}, in this format and nothing else:\n\n{blocks}{more}"
        )
        return "\n\n".join(parts)

    def format_output(self, output: str | None, row: Row) -> dict[str, Any]:
        generations = items_of(row, "generations")
        positions = present(generations)
        columns = [c for c in self.outputs if c != "model_name"]
        if output is None or not positions:
            return {c: [None] * len(generations) for c in columns}
        verdicts = self._parse(output, len(positions))
        return {c: spread([v[c] for v in verdicts], positions, len(generations)) for c in columns}

    def _parse(self, output: str, k: int) -> list[dict[str, Any]]:
        data = json_object(output)
        if data is not None and "ratings" in data:
            return self._from_json(data, k)
        blocks = _blocks(output)
        if len(blocks) != k:
            raise OutputParseError(
                f"expected a rating block for each of {k} texts, found {len(blocks)}"
            )
        return [self._verdict(fields, i) for i, fields in enumerate(blocks, 1)]

    def _verdict(self, fields: list[tuple[str, str]], i: int) -> dict[str, Any]:
        verdict: dict[str, Any] = {c: None for c in self.outputs if c != "model_name"}
        rated = False
        for name, value in fields:
            if name == "type" and self._typed:
                verdict["types"] = self._type(value, i)
            elif name in ("rating", "score"):
                verdict["ratings"] = self._rating(value, i)
                rated = True
            elif name == "rationale for rating" and self._typed:
                verdict["rationales-for-ratings"] = value or None
            elif name.startswith("rationale"):
                # Typed aspects: the rationale before the rating explains the type, the one
                # after it explains the rating. The first one of each kind is kept.
                key = "rationales-for-ratings" if self._typed and rated else "rationales"
                if verdict[key] is None:
                    verdict[key] = value or None
        if not rated:
            raise OutputParseError(f"text {i} has no 'Rating:' line")
        return verdict

    def _rating(self, value: Any, i: int) -> int | None:
        if value is None or (isinstance(value, str) and not_applicable(value)):
            return None
        return int(on_scale(value, 1, 5, what=f"text {i}'s rating", integer=True))

    def _type(self, value: Any, i: int) -> int | None:
        if isinstance(value, list):
            value = value[0] if value else None
        if value is None or (isinstance(value, str) and not_applicable(value)):
            return None
        types = len(_RUBRICS[self.aspect].types)
        return int(on_scale(value, 1, types, what=f"text {i}'s type", integer=True))

    def _from_json(self, data: dict[str, Any], k: int) -> list[dict[str, Any]]:
        def column(*keys: str) -> list[Any]:
            for key in keys:
                values = data.get(key)
                if values is not None:
                    if not isinstance(values, list) or len(values) != k:
                        raise OutputParseError(f"'{key}' must be a list of {k} entries")
                    return values
            return [None] * k

        ratings = column("ratings")
        rationales = column("rationales")
        verdicts: list[dict[str, Any]] = []
        for i in range(k):
            verdict: dict[str, Any] = {
                "ratings": self._rating(ratings[i], i + 1),
                "rationales": rationales[i],
            }
            if self._typed:
                verdict["types"] = self._type(column("types")[i], i + 1)
                verdict["rationales-for-ratings"] = column(
                    "rationales-for-ratings", "rationales_for_ratings", "rationales_for_rating"
                )[i]
            verdicts.append(verdict)
        return verdicts


def ratings_schema(*, types: int) -> dict[str, Any]:
    """The JSON answer ``use_default_structured_output`` asks for, with distilabel's keys (the
    parser reads them as it reads rating blocks): a rating from 1 to 5 and a rationale per text,
    and for the aspects with ``types`` types a type (or null) and a rationale for the rating
    too."""
    texts = {"type": "array", "items": {"type": "string"}}
    properties: dict[str, Any] = {
        "ratings": {"type": "array", "items": {"type": "integer", "minimum": 1, "maximum": 5}},
        "rationales": texts,
    }
    if types:
        kind = {"type": ["integer", "null"], "minimum": 1, "maximum": types}
        properties = {
            "types": {"type": "array", "items": kind},
            **properties,
            "rationales_for_rating": texts,
        }
    return {
        "title": "UltraFeedback",  # one title: a task with another aspect replaces it
        "type": "object",
        "properties": properties,
        "required": list(properties),
    }


def _blocks(output: str) -> list[list[tuple[str, str]]]:
    """The answer's per-text blocks, each a list of (field, value) in order.

    Numbered headers ("#### Output for Text 2") decide which block is which text when the
    answer has them (then every number from 1 up must be there once); without headers, a block
    starts wherever a field repeats (a second "Rating:" starts the next text).
    """
    headers = list(_HEADER.finditer(output))
    if headers:
        numbers = [int(h.group(1)) for h in headers]
        if sorted(numbers) != list(range(1, len(numbers) + 1)):
            raise OutputParseError(f"the texts' blocks are numbered {numbers}, not 1, 2, ...")
        bounds = [h.start() for h in headers[1:]] + [len(output)]
        by_number = {
            n: _fields(output[h.end() : end])
            for n, h, end in zip(numbers, headers, bounds, strict=True)
        }
        return [by_number[n] for n in sorted(by_number)]
    blocks: list[list[tuple[str, str]]] = []
    current: list[tuple[str, str]] = []
    for name, value in _fields(output):
        seen = {n for n, _ in current}
        rated = bool(seen & {"rating", "score"})
        if (name in ("rating", "score") and rated) or (name == "type" and (rated or name in seen)):
            blocks.append(current)
            current = []
        current.append((name, value))
    blocks.append(current)
    return [b for b in blocks if any(n in ("rating", "score") for n, _ in b)]


def _fields(text: str) -> list[tuple[str, str]]:
    """The "Name: value" fields of one block, a value running on to the next field."""
    matches = list(_FIELD.finditer(text))
    ends = [m.start() for m in matches[1:]] + [len(text)]
    fields = []
    for m, end in zip(matches, ends[: len(matches)], strict=True):
        name = m.group(1).lower()
        name = "rationale for rating" if name.startswith("rationale for") else name
        value = text[m.end() : end].strip().strip("*_").strip()
        fields.append((name, value))
    return fields
