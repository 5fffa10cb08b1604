"""Training data for text-embedding models: pairs and triplets of related sentences."""

from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import Field, model_validator

from synthflow.errors import OutputParseError
from synthflow.llms.base import ChatType
from synthflow.steps.base import Row
from synthflow.steps.tasks.base import Task
from synthflow.steps.tasks.parsing import json_value, require_text
from synthflow.steps.tasks.structured_generation import with_default_schema

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
    use_default_structured_output: bool = Field(
        default=False,
        description="Ask the LLM for the answer's JSON schema when it takes one and has none.",
    )

    @model_validator(mode="before")
    @classmethod
    def _ask_for_schema(cls, data: Any) -> Any:
        if not isinstance(data, dict) or not data.get("use_default_structured_output", False):
            return data
        return with_default_schema(data, pair_schema(bool(data.get("triplet", False))))

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
