"""Training data for text-embedding models (Wang et al., arXiv:2401.00368): sentence pairs and
triplets, and retrieval, matching and classification examples for a described task."""

from __future__ import annotations

import random
import re
from typing import Any, ClassVar, Literal, get_args

from pydantic import Field

from synthflow.errors import OutputParseError
from synthflow.models.llms.base import ChatType
from synthflow.steps.base import Row
from synthflow.steps.tasks.base import Task
from synthflow.steps.tasks.parsing import json_object, json_value, require_text

GenerationAction = Literal["paraphrase", "semantically-similar", "query", "answer"]

POSITIVES: dict[str, str] = {
    "paraphrase": "a paraphrase of the anchor: the same meaning, in other words",
    "semantically-similar": "a sentence close in meaning to the anchor",
    "query": "a search query for which the anchor would be a good result",
    "answer": "an answer to the anchor, read as a question",
}
NEGATIVES: dict[bool, str] = {
    False: "a negative: a sentence on an unrelated subject",
    True: (
        "a hard negative: a sentence that shares the anchor's subject and many of its words, so "
        "that it looks like a match, yet is not {positive}"
    ),
}

SYSTEM_PROMPT = """\
You write training data for text-embedding models. Given an anchor sentence, write {what}.
{context}Write natural sentences, as people write them; don't copy the anchor.

Answer in exactly this form, and nothing else:
{form}"""


def pair_schema(triplet: bool) -> dict[str, Any]:
    """The JSON schema of an answer: ``positive``, and ``negative`` for a triplet."""
    keys = ["positive", "negative"] if triplet else ["positive"]
    return {
        "title": "SentencePair",
        "type": "object",
        "properties": {key: {"type": "string"} for key in keys},
        "required": keys,
    }


_SECTION = re.compile(
    r"^\s*(?:#+\s*|\*\*)?(positive|negative)(?:\s+sentence)?\s*(?:\*\*)?\s*:?\s*(?:\*\*)?\s*",
    re.IGNORECASE | re.MULTILINE,
)


class GenerateSentencePair(Task):
    """Writes, for each ``anchor``, a positive (a paraphrase, a similar sentence, a query it
    answers, or its answer, per ``action``) and, with ``triplet=True``, a negative: an unrelated
    sentence, or with ``hard_negative=True`` one that looks related but isn't. ``context``
    describes the domain to the model.

    The synthetic pairs and hard negatives that Wang, Yang, Huang, Yang, Majumder and Wei train
    embedding models on in "Improving Text Embeddings with Large Language Models"
    (arXiv:2401.00368), for retrieval (``query``, ``answer``) and semantic similarity
    (``paraphrase``, ``semantically-similar``).

    Input columns:
        - anchor (str): the sentence to write a positive (and a negative) for.

    Output columns:
        - positive (str): the sentence related to the anchor.
        - negative (str, with ``triplet=True``): the unrelated or hard-negative sentence.
        - model_name (str): the model that wrote them.

    The model answers in ``## Positive`` / ``## Negative`` sections (``Positive:`` labels and
    bold headings are read too) or, with ``use_default_structured_output=True`` and an LLM that
    takes a schema, as a JSON object ``{"positive": ..., "negative": ...}``; JSON is accepted in
    either case. An answer without a positive (or, for a triplet, a negative) is a row failure.
    """

    triplet: bool = Field(default=False, description="Write a negative too.")
    action: GenerationAction = Field(
        description="What the positive is: 'paraphrase', 'semantically-similar', 'query' or "
        "'answer'."
    )
    hard_negative: bool = Field(
        default=False, description="Make the negative a hard one (close to the anchor)."
    )
    context: str = Field(default="", description="The domain of the anchors, told to the model.")

    def get_structured_output(self) -> dict[str, Any]:
        return pair_schema(self.triplet)

    @property
    def inputs(self) -> list[str]:
        return ["anchor"]

    @property
    def outputs(self) -> list[str]:
        return [*self._keys(), "model_name"]

    def _keys(self) -> list[str]:
        return ["positive", "negative"] if self.triplet else ["positive"]

    def format_input(self, row: Row) -> ChatType:
        positive = POSITIVES[self.action]
        what = f"{positive}"
        form = "## Positive\n<the positive>"
        if self.triplet:
            negative = NEGATIVES[self.hard_negative].format(positive=positive.split(":")[0])
            what = f"two sentences: {positive}; and {negative}"
            form += "\n## Negative\n<the negative>"
        context = f"The anchors come from this setting: {self.context}\n" if self.context else ""
        system = SYSTEM_PROMPT.format(what=what, context=context, form=form)
        return [
            {"role": "system", "content": system},
            {"role": "user", "content": f"## Anchor\n{row['anchor']}"},
        ]

    def format_output(self, output: str | None, row: Row) -> dict[str, Any]:
        keys = self._keys()
        found = self._from_json(output) or self._from_sections(output)
        missing = [key for key in keys if not found.get(key)]
        if missing:
            raise OutputParseError(
                f"the answer has no {' or '.join(missing)} sentence; expected '## Positive'"
                + (" and '## Negative' sections" if self.triplet else " section")
            )
        return {key: found[key] for key in keys}

    @staticmethod
    def _from_json(output: str | None) -> dict[str, str]:
        try:
            value = json_value(output)
        except OutputParseError:
            return {}
        if not isinstance(value, dict):
            return {}
        return {
            k: v.strip()
            for k, v in value.items()
            if k in ("positive", "negative") and isinstance(v, str)
        }

    @staticmethod
    def _from_sections(output: str | None) -> dict[str, str]:
        text = require_text(output, "'## Positive' and '## Negative' sections")
        heads = list(_SECTION.finditer(text))
        found: dict[str, str] = {}
        for i, head in enumerate(heads):
            end = heads[i + 1].start() if i + 1 < len(heads) else len(text)
            body = text[head.end() : end].strip().strip('"“”').strip()
            key = head.group(1).lower()
            if body and key not in found:
                found[key] = body
        return found


QueryType = Literal["extremely long-tail", "long-tail", "common"]
QueryLength = Literal["less than 5 words", "5 to 15 words", "at least 10 words"]
Difficulty = Literal["high school", "college", "PhD"]
Clarity = Literal["clear", "understandable with some effort", "ambiguous"]
NumWords = Literal[50, 100, 200, 300, 400, 500]


def example_schema(title: str, keys: tuple[str, ...]) -> dict[str, Any]:
    """The JSON schema of one example: a string under each of ``keys``."""
    return {
        "title": title,
        "type": "object",
        "properties": {key: {"type": "string"} for key in keys},
        "required": list(keys),
    }


_ANSWER = "Answer with only the JSON object, and write every value in {language}."


class _EmbeddingData(Task):
    """One training example, as a JSON object with ``keys``, for the embedding task described
    in the row's ``task`` column. Attributes left unset are drawn per row, seeded by ``seed`` and
    the task, so a re-run asks the same prompts."""

    keys: ClassVar[tuple[str, ...]] = ()

    language: str = Field(default="English", description="The language to write the data in.")
    seed: int = Field(default=42, description="Seeds the draw of the attributes left unset.")

    def get_structured_output(self) -> dict[str, Any]:
        return example_schema(type(self).__name__, self.keys)

    @property
    def inputs(self) -> list[str]:
        return ["task"]

    @property
    def outputs(self) -> list[str]:
        return [*self.keys, "model_name"]

    def format_input(self, row: Row) -> ChatType:
        task = row["task"]
        if not isinstance(task, str):
            raise TypeError(f"'task' must be a string, got {type(task).__name__}")
        rng = random.Random(f"{self.seed}\x00{type(self).__name__}\x00{task}")
        return [{"role": "user", "content": self._prompt(task, rng)}]

    def _prompt(self, task: str, rng: random.Random) -> str:
        raise NotImplementedError

    def _draw(self, value: Any, options: Any, rng: random.Random) -> Any:
        """``value`` when set, else one of ``options`` (a Literal's arguments)."""
        choices = get_args(options)
        drawn = rng.choice(choices)  # always drawn, so one setting doesn't shift the others
        return drawn if value is None else value

    def format_output(self, output: str | None, row: Row) -> dict[str, Any]:
        keys = ", ".join(f'"{k}"' for k in self.keys)
        value = json_object(output, f"a JSON object with {keys}")
        found = {key: _as_text(value.get(key)) for key in self.keys}
        missing = [key for key, text in found.items() if not text]
        if missing:
            raise OutputParseError(f"the answer's JSON has no text for {missing}; expected {keys}")
        return found


def _as_text(value: Any) -> str | None:
    if isinstance(value, str):
        return value.strip() or None
    if isinstance(value, int | float) and not isinstance(value, bool):
        return str(value)
    return None


class GenerateTextRetrievalData(_EmbeddingData):
    """Writes a retrieval example for the row's ``task``: a user query, a document that answers
    it, and a hard negative document that looks relevant but doesn't.

    The asymmetric retrieval data of Wang, Yang, Huang, Yang, Majumder and Wei, "Improving Text
    Embeddings with Large Language Models" (arXiv:2401.00368): each example varies the query's
    type, length, clarity and difficulty and the documents' length; the ones left unset are
    drawn per row. Feed it tasks such as "Retrieve recipes that match a list of ingredients".

    Input columns:
        - task (str): the retrieval task the example is for.

    Output columns:
        - user_query (str): the query.
        - positive_document (str): a document that answers it.
        - hard_negative_document (str): a document that looks relevant but doesn't answer it.
        - model_name (str): the model that wrote them.

    The parser reads the JSON object from the whole answer, a code fence or the prose around it
    (raw line breaks inside strings are accepted); an answer without all three texts is a row
    failure.
    """

    keys: ClassVar[tuple[str, ...]] = ("user_query", "positive_document", "hard_negative_document")

    query_type: QueryType | None = Field(default=None, description="How common the query is.")
    query_length: QueryLength | None = Field(default=None, description="The query's length.")
    difficulty: Difficulty | None = Field(
        default=None, description="The education needed to understand the query."
    )
    clarity: Clarity | None = Field(default=None, description="How clear the query is.")
    num_words: NumWords | None = Field(
        default=None, description="About how many words each document has."
    )

    def _prompt(self, task: str, rng: random.Random) -> str:
        query_type = self._draw(self.query_type, QueryType, rng)
        length = self._draw(self.query_length, QueryLength, rng)
        difficulty = self._draw(self.difficulty, Difficulty, rng)
        clarity = self._draw(self.clarity, Clarity, rng)
        words = self._draw(self.num_words, NumWords, rng)
        return (
            f"You are writing one example for this retrieval task: {task}\n\n"
            "Write a JSON object with these keys:\n"
            f'- "user_query": a {query_type} query for the task, {length} long, {clarity}, '
            f"that takes a {difficulty} level of education to understand.\n"
            f'- "positive_document": a document of about {words} words that answers the query '
            "well.\n"
            f'- "hard_negative_document": a document of about {words} words on the same subject, '
            "with many of the same words, that looks relevant but doesn't answer the query.\n\n"
            "The documents stand on their own: they don't mention the query or each other.\n"
            + _ANSWER.format(language=self.language)
        )


class GenerateShortTextMatchingData(_EmbeddingData):
    """Writes a short-text matching example for the row's ``task``: an input and a short text
    that matches it (a sentence or phrase each), for symmetric tasks such as paraphrase
    detection.

    The short-short matching data of Wang, Yang, Huang, Yang, Majumder and Wei, "Improving Text
    Embeddings with Large Language Models" (arXiv:2401.00368).

    Input columns:
        - task (str): the matching task the example is for.

    Output columns:
        - input (str): the input text.
        - positive_document (str): a short text that matches it.
        - model_name (str): the model that wrote them.

    The parser reads the JSON object as GenerateTextRetrievalData's does.
    """

    keys: ClassVar[tuple[str, ...]] = ("input", "positive_document")

    def _prompt(self, task: str, rng: random.Random) -> str:
        return (
            f"You are writing one example for this text matching task: {task}\n\n"
            "Write a JSON object with these keys:\n"
            '- "input": a short text for the task: a sentence or a phrase.\n'
            '- "positive_document": a short text that matches the input as the task means it; '
            "don't copy the input's words.\n\n" + _ANSWER.format(language=self.language)
        )


class GenerateLongTextMatchingData(_EmbeddingData):
    """Writes a long-text matching example for the row's ``task``: an input passage and a
    passage that matches it, for tasks such as matching articles to their abstracts.

    The long-long matching data of Wang, Yang, Huang, Yang, Majumder and Wei, "Improving Text
    Embeddings with Large Language Models" (arXiv:2401.00368).

    Input columns:
        - task (str): the matching task the example is for.

    Output columns:
        - input (str): the input passage.
        - positive_document (str): a passage that matches it.
        - model_name (str): the model that wrote them.

    The parser reads the JSON object as GenerateTextRetrievalData's does.
    """

    keys: ClassVar[tuple[str, ...]] = ("input", "positive_document")

    def _prompt(self, task: str, rng: random.Random) -> str:
        return (
            f"You are writing one example for this text matching task: {task}\n\n"
            "Write a JSON object with these keys:\n"
            '- "input": a long text for the task, of at least a paragraph.\n'
            '- "positive_document": a long text that matches the input as the task means it, '
            "written independently of it.\n\n" + _ANSWER.format(language=self.language)
        )


class GenerateTextClassificationData(_EmbeddingData):
    """Writes a classification example for the row's ``task``: a text, its correct label, and
    a misleading label that a careless reader might pick.

    The classification data of Wang, Yang, Huang, Yang, Majumder and Wei, "Improving Text
    Embeddings with Large Language Models" (arXiv:2401.00368); the difficulty and clarity left
    unset are drawn per row.

    Input columns:
        - task (str): the classification task, with its labels.

    Output columns:
        - input_text (str): the text to classify.
        - label (str): its correct label.
        - misleading_label (str): a plausible wrong label.
        - model_name (str): the model that wrote them.

    The parser reads the JSON object as GenerateTextRetrievalData's does.
    """

    keys: ClassVar[tuple[str, ...]] = ("input_text", "label", "misleading_label")

    difficulty: Difficulty | None = Field(
        default=None, description="The education needed to understand the text."
    )
    clarity: Clarity | None = Field(default=None, description="How clear the text is.")

    def _prompt(self, task: str, rng: random.Random) -> str:
        difficulty = self._draw(self.difficulty, Difficulty, rng)
        clarity = self._draw(self.clarity, Clarity, rng)
        return (
            f"You are writing one example for this classification task: {task}\n\n"
            "Write a JSON object with these keys:\n"
            f'- "input_text": a text to classify, {clarity}, that takes a {difficulty} level '
            "of education to understand; at least 10 words.\n"
            '- "label": the text\'s correct label for the task.\n'
            '- "misleading_label": a label of the task that a careless reader might choose, '
            "but that is wrong.\n\n" + _ANSWER.format(language=self.language)
        )
