"""The sources of embedding-model training data (Wang et al., "Improving Text Embeddings with Large
Language Models", arXiv:2401.00368): tasks that need no input column.

The paper writes its data in two stages. For asymmetric tasks (retrieval, classification, matching)
an LLM first brainstorms task descriptions (``EmbeddingTaskGenerator``), then writes an example for
each (``GenerateTextRetrievalData`` and its siblings, which read a ``task`` column). For symmetric
tasks (semantic similarity, bitext retrieval) one prompt, filled with a sampled unit, difficulty and
pair of similarity scores, writes a whole triplet (``MonolingualTripletGenerator``,
``BitextRetrievalGenerator``). Each answer is JSON.
"""

from __future__ import annotations

import ast
import random
import re
from typing import Any, Literal

from pydantic import Field, PrivateAttr

from synthflow.errors import OutputParseError
from synthflow.models.llms.base import ChatType, GenerateOutput
from synthflow.steps.base import Row
from synthflow.steps.tasks.generator_task import GeneratorTask
from synthflow.steps.tasks.parsing import json_object, json_value, list_items, require_text

_LANGUAGE_HELP = (
    "A language, by its English name; the paper samples from the languages of XLM-R "
    "(Conneau et al., 2020, Appendix A)."
)

# -- brainstorming tasks ---------------------------------------------------------------------------

Category = Literal[
    "text-retrieval", "text-matching-short", "text-matching-long", "text-classification"
]

_BRAINSTORM_SCOPE: dict[str, str] = {
    "text-retrieval": (
        "text retrieval tasks. In each one a user writes a query and a system must find the "
        "documents that answer it or are relevant to it. Vary the domains, the kinds of query "
        "(questions, keywords, claims, descriptions of a need) and the kinds of document (web "
        "pages, scientific articles, reviews, forum threads, manuals, legal texts, ...)"
    ),
    "text-matching-short": (
        "short text matching tasks. In each one the query and the text to find are both short "
        "(a phrase or a sentence), and the goal is a text that corresponds to the query: a "
        "paraphrase, a duplicate question, a title, a translation of an idiom, and so on"
    ),
    "text-matching-long": (
        "long text matching tasks. In each one the query and the text to find are both long "
        "(a paragraph or more), and the goal is a text that corresponds to the query: an article "
        "on the same event, an answer to a detailed question, an abstract for a paper, and so on"
    ),
    "text-classification": (
        "text classification tasks. In each one a text must be given one of a fixed set of "
        "labels: its sentiment, its topic, its intent, its tone, whether it is spam, and so on. "
        "Vary the domains and the kinds of text"
    ),
}

_BRAINSTORM_EXAMPLE: dict[str, str] = {
    "text-retrieval": "Given a question about a medication, retrieve leaflets that answer it.",
    "text-matching-short": "Given a news headline, find another headline about the same story.",
    "text-matching-long": "Given a patent abstract, find the abstract of a patent it cites.",
    "text-classification": "Classify a restaurant review by the dish it complains about.",
}


class EmbeddingTaskGenerator(GeneratorTask):
    """Brainstorms task descriptions for one ``category`` of embedding task, the first stage of
    Wang et al., "Improving Text Embeddings with Large Language Models" (arXiv:2401.00368).

    A source: it needs no input column. One call (``num_generations`` completions) asks for a
    JSON list of about 20 one-sentence task descriptions; each description then feeds
    ``GenerateTextRetrievalData`` and its siblings through their ``task`` column.

    Fields:
        category: ``"text-retrieval"``, ``"text-matching-short"``, ``"text-matching-long"`` or
            ``"text-classification"``.
        flatten_tasks: one row per task description (column ``task``) instead of one row per
            completion holding the list (column ``tasks``).

    Output columns:
        - tasks (``list[str]``): the task descriptions of one completion (``flatten_tasks=False``).
        - task (``str``): one task description (``flatten_tasks=True``).
        - model_name (``str``): the model that wrote them.

    Runtime parameters: ``num_generations`` (completions, each a list) and ``batch_size``.

    The parser reads a JSON list (in a code fence or prose too), a list under a key of a JSON
    object, a Python list literal, or a numbered or bulleted list; anything else is a row
    failure (``OutputParseError``).
    """

    category: Category = Field(description="The kind of embedding task to brainstorm.")
    flatten_tasks: bool = Field(
        default=False,
        description="One row per task description ('task') instead of one row per completion "
        "with the list ('tasks').",
    )

    @property
    def outputs(self) -> list[str]:
        return ["task" if self.flatten_tasks else "tasks", "model_name"]

    def format_input(self, row: Row) -> ChatType:
        content = (
            f"Brainstorm a list of {_BRAINSTORM_SCOPE[self.category]}. These tasks will be "
            "used to write training data for a text embedding model, so make them diverse and "
            "realistic.\n\n"
            "Describe each task in one sentence of at most 20 words that says what the input "
            f'is and what to do with it, for example: "{_BRAINSTORM_EXAMPLE[self.category]}"\n\n'
            "Answer with a JSON list of about 20 strings and nothing else."
        )
        return [{"role": "user", "content": content}]

    def format_output(self, output: str | None, row: Row) -> dict[str, Any]:
        return {self.outputs[0]: task_list(output)}

    def rows_from_output(self, row: Row, result: GenerateOutput) -> list[Row]:
        rows = super().rows_from_output(row, result)
        if not self.flatten_tasks or self.group_generations:
            return rows
        flat: list[Row] = []
        for each in rows:
            tasks = each.get("task")
            if isinstance(tasks, list):
                flat.extend({**each, "task": task} for task in tasks)
            else:  # an answer that couldn't be read: its row stays, with a null task
                flat.append(each)
        return flat


_MARKED_LINE = re.compile(r"^\s*(?:\(?\d+[.):\]]|[-*•])\s+\S", re.MULTILINE)


def task_list(output: str | None) -> list[str]:
    """The task descriptions in an answer (see ``EmbeddingTaskGenerator``)."""
    text = require_text(output, "a JSON list of task descriptions")
    value: Any = None
    try:
        value = json_value(text, "a JSON list of task descriptions")
    except OutputParseError:
        start, end = text.find("["), text.rfind("]")
        if 0 <= start < end:
            try:
                value = ast.literal_eval(text[start : end + 1])
            except (ValueError, SyntaxError, MemoryError, RecursionError):
                value = None
    if isinstance(value, dict):
        value = next((v for v in value.values() if isinstance(v, list)), None)
    if isinstance(value, list):
        tasks = [_task_text(item) for item in value]
        tasks = [task for task in tasks if task]
        if tasks:
            return tasks
        raise OutputParseError("the answer's list holds no task descriptions")
    if len(_MARKED_LINE.findall(text)) >= 2:
        return list_items(text, "a list of task descriptions")
    raise OutputParseError("found no list of task descriptions in the answer (expected JSON)")


def _task_text(item: Any) -> str:
    if isinstance(item, dict):  # [{"task": "..."}] and the like
        item = next((v for v in item.values() if isinstance(v, str)), "")
    return item.strip() if isinstance(item, str) else ""


# -- triplets ------------------------------------------------------------------------------------

Unit = Literal["sentence", "phrase", "passage"]
Difficulty = Literal["elementary school", "high school", "college"]
HighScore = Literal["4", "4.5", "5"]
LowScore = Literal["2.5", "3", "3.5"]

_UNITS: tuple[Unit, ...] = ("sentence", "phrase", "passage")
_DIFFICULTIES: tuple[Difficulty, ...] = ("elementary school", "high school", "college")
_HIGH_SCORES: tuple[HighScore, ...] = ("4", "4.5", "5")
_LOW_SCORES: tuple[LowScore, ...] = ("2.5", "3", "3.5")

_TRIPLET_KEYS = ("S1", "S2", "S3")


class _TripletGenerator(GeneratorTask):
    """What the two triplet sources share: the sampled attributes, the JSON triplet answer."""

    unit: Unit | None = Field(
        default=None,
        description="'sentence', 'phrase' or 'passage'; None samples one per call.",
    )
    difficulty: Difficulty | None = Field(
        default=None,
        description="Reading level: 'elementary school', 'high school' or 'college'; None "
        "samples one per call.",
    )
    high_score: HighScore | None = Field(
        default=None,
        description="Similarity of S1 and S2 on a 1-5 scale: '4', '4.5' or '5'; None samples "
        "one per call.",
    )
    low_score: LowScore | None = Field(
        default=None,
        description="Similarity of S1 and S3 on a 1-5 scale: '2.5', '3' or '3.5'; None samples "
        "one per call.",
    )
    seed: int = Field(default=42, description="Seed of the attributes sampled when None.")

    _random: random.Random = PrivateAttr(default_factory=random.Random)

    def load(self) -> None:
        super().load()
        self._random = random.Random(self.seed)

    @property
    def outputs(self) -> list[str]:
        return [*_TRIPLET_KEYS, "model_name"]

    def _attributes(self) -> tuple[str, str, str, str]:
        pick = self._random.choice
        return (
            self.unit or pick(_UNITS),
            self.difficulty or pick(_DIFFICULTIES),
            self.high_score or pick(_HIGH_SCORES),
            self.low_score or pick(_LOW_SCORES),
        )

    def format_output(self, output: str | None, row: Row) -> dict[str, Any]:
        return triplet(output)


def triplet(output: str | None) -> dict[str, str]:
    """``S1``, ``S2`` and ``S3`` from a JSON object (keys in any case, in a code fence or prose
    too); raises ``OutputParseError`` when one is missing or not a text."""
    found = json_object(output, 'a JSON object with the keys "S1", "S2" and "S3"')
    by_key = {str(key).strip().upper(): value for key, value in found.items()}
    columns: dict[str, str] = {}
    for key in _TRIPLET_KEYS:
        value = by_key.get(key)
        if not isinstance(value, str) or not value.strip():
            raise OutputParseError(f'the answer\'s JSON has no text under "{key}"')
        columns[key] = value.strip()
    return columns


_SCALE = "on a scale from 1 (unrelated) to 5 (the same meaning)"


class MonolingualTripletGenerator(_TripletGenerator):
    """Writes triplets for semantic similarity in one language, the symmetric-task prompt of
    Wang et al., "Improving Text Embeddings with Large Language Models" (arXiv:2401.00368).

    A source: it needs no input column. Each completion is a JSON object with three texts in
    ``language``: ``S2`` means nearly what ``S1`` means (similarity ``high_score``), ``S3``
    resembles ``S1`` on the surface but means less of it (similarity ``low_score``).

    Fields: ``language`` (default ``"English"``); ``unit``, ``difficulty``, ``high_score``,
    ``low_score``, each sampled per call when None (with ``seed``).

    Output columns:
        - S1 (``str``): the anchor text.
        - S2 (``str``): a text close in meaning to S1.
        - S3 (``str``): a text that looks like S1 but is further from it in meaning.
        - model_name (``str``): the model that wrote them.

    Runtime parameters: ``num_generations`` (completions, one row each) and ``batch_size``.

    The parser reads the JSON object in the answer (bare, fenced or inside prose; keys in any
    case); a missing or empty text is a row failure (``OutputParseError``).
    """

    language: str = Field(default="English", description=_LANGUAGE_HELP)

    def format_input(self, row: Row) -> ChatType:
        unit, difficulty, high, low = self._attributes()
        content = (
            f"Write three {unit}s in {self.language} for training a model that measures how "
            f"similar two texts are in meaning, with similarity {_SCALE}.\n\n"
            f'- "S1": any {unit}.\n'
            f'- "S2": a {unit} whose similarity to S1 is {high}: it says (nearly) the same '
            "thing in other words.\n"
            f'- "S3": a {unit} whose similarity to S1 is {low}: it shares words or a topic with '
            "S1, but its meaning differs.\n\n"
            f"A {difficulty} student should understand all three. Pick an original topic.\n\n"
            'Answer with a JSON object with the keys "S1", "S2" and "S3" and nothing else.'
        )
        return [{"role": "user", "content": content}]


class BitextRetrievalGenerator(_TripletGenerator):
    """Writes triplets for bitext retrieval across two languages, the symmetric-task prompt of
    Wang et al., "Improving Text Embeddings with Large Language Models" (arXiv:2401.00368).

    A source: it needs no input column. Each completion is a JSON object: ``S1`` in
    ``source_language``, ``S2`` its translation into ``target_language`` (similarity
    ``high_score``), and ``S3`` a text in ``target_language`` that looks like a translation of
    ``S1`` but isn't one (similarity ``low_score``): a hard negative.

    Fields: ``source_language`` (default ``"English"``), ``target_language`` (required);
    ``unit``, ``difficulty``, ``high_score``, ``low_score``, each sampled per call when None
    (with ``seed``).

    Output columns:
        - S1 (``str``): the text in the source language.
        - S2 (``str``): its translation into the target language.
        - S3 (``str``): a near miss in the target language.
        - model_name (``str``): the model that wrote them.

    Runtime parameters: ``num_generations`` (completions, one row each) and ``batch_size``.

    The parser reads the JSON object in the answer (bare, fenced or inside prose; keys in any
    case); a missing or empty text is a row failure (``OutputParseError``).
    """

    source_language: str = Field(default="English", description=_LANGUAGE_HELP)
    target_language: str = Field(description=_LANGUAGE_HELP)

    def format_input(self, row: Row) -> ChatType:
        unit, difficulty, high, low = self._attributes()
        source, target = self.source_language, self.target_language
        content = (
            f"Write three {unit}s for training a model that finds the translation of a text "
            f"among many candidates, with similarity {_SCALE}.\n\n"
            f'- "S1": a {unit} in {source}.\n'
            f'- "S2": a translation of S1 into {target}; its similarity to S1 is {high}.\n'
            f'- "S3": a {unit} in {target} that looks like a translation of S1 but changes its '
            f"meaning; its similarity to S1 is {low}.\n\n"
            f"A {difficulty} student should understand all three. Pick an original topic.\n\n"
            'Answer with a JSON object with the keys "S1", "S2" and "S3" and nothing else.'
        )
        return [{"role": "user", "content": content}]
