"""Labels for texts: one label, or ``n`` of them, free or from a given set."""

from __future__ import annotations

import re
from typing import Any

from pydantic import Field, PositiveInt

from synthflow.errors import OutputParseError
from synthflow.models.llms.base import ChatType
from synthflow.steps.base import Row
from synthflow.steps.tasks.base import Task
from synthflow.steps.tasks.parsing import json_value, require_text

DEFAULT_SYSTEM_PROMPT = (
    "You label texts. Read the text you are given and answer only with the labels that "
    "classify it, in the format asked for."
)
DEFAULT_CONTEXT = (
    "Choose short labels that name the text's main topic, theme or category accurately."
)


def label_schema(n: int, choices: list[str] | None = None) -> dict[str, Any]:
    """The JSON schema of an answer with one label (``n == 1``) or a list of ``n``, each one of
    ``choices`` when given."""
    label: dict[str, Any] = {"type": "string"}
    if choices:
        label["enum"] = list(dict.fromkeys(choices))
    labels: dict[str, Any] = (
        label if n == 1 else {"type": "array", "items": label, "minItems": 1, "maxItems": n}
    )
    return {
        "title": "Labels",
        "type": "object",
        "properties": {"labels": labels},
        "required": ["labels"],
    }


class TextClassification(Task):
    """Classifies the ``text`` column: one label, or the ``n`` labels that best describe it,
    chosen from ``available_labels`` when given (a list, or a dict of label to description).

    The model answers with a JSON object ``{"labels": ...}``. With
    ``use_default_structured_output`` (the default) an LLM that takes a ``structured_output``
    and has none is asked for that schema, so APIs with a JSON-schema mode enforce it; the
    structured answer follows "Let Me Speak Freely? A Study on the Impact of Format Restrictions
    on Performance of Large Language Models" (Tam et al., arXiv:2408.02442), section 4.1.

    Input columns:
        - text (str): the text to classify.

    Output columns:
        - labels (str, or list[str] when ``n > 1``): the label(s).
        - model_name (str): the model that chose them.

    The parser reads the JSON object from the whole answer, a code fence or prose around it (a
    ``label`` key, or a bare JSON string or list, is accepted too); without JSON, an answer that
    names exactly one of ``available_labels`` gives that label. Labels are matched to
    ``available_labels`` regardless of case and surrounding quotes; a label outside them is
    kept as written. An answer with no label is a row failure.
    """

    system_prompt: str | None = Field(
        default=DEFAULT_SYSTEM_PROMPT, description="The system message; None sends none."
    )
    n: PositiveInt = Field(default=1, description="How many labels to ask for.")
    context: str | None = Field(
        default=DEFAULT_CONTEXT, description="What the labels are for, told to the model."
    )
    examples: list[str] | None = Field(
        default=None, description="Example texts with their labels, shown to the model."
    )
    available_labels: list[str] | dict[str, str] | None = Field(
        default=None,
        description="The labels to choose from, or a dict of label to its description.",
    )
    default_label: str | list[str] | None = Field(
        default="Unclassified",
        description="The label for a text too ambiguous or short to classify.",
    )
    query_title: str = Field(
        default="User Query", description="The heading of the text in the prompt."
    )
    use_default_structured_output: bool = Field(
        default=True,
        description="Ask the LLM for the labels' JSON schema when it takes one and has none.",
    )

    def get_structured_output(self) -> dict[str, Any]:
        available, default = self.available_labels, self.default_label
        choices = None
        if available:
            extra = [default] if isinstance(default, str) else list(default or [])
            choices = [*map(str, available), *map(str, extra)]
        return label_schema(self.n, choices)

    @property
    def inputs(self) -> list[str]:
        return ["text"]

    @property
    def outputs(self) -> list[str]:
        return ["labels", "model_name"]

    def format_input(self, row: Row) -> ChatType:
        messages: ChatType = []
        if self.system_prompt:
            messages.append({"role": "system", "content": self.system_prompt})
        messages.append({"role": "user", "content": self._prompt(row["text"])})
        return messages

    def _prompt(self, text: Any) -> str:
        parts = ["# Task", "Classify the text below."]
        if self.context:
            parts.append(self.context)
        parts.append(
            "Give the one label that describes the text best."
            if self.n == 1
            else f"Give a list of the {self.n} labels that describe the text best."
        )
        if isinstance(self.available_labels, dict):
            parts.append("\n## Labels\nChoose from these labels, read with their meaning:")
            parts.extend(
                f"- {label}: {meaning}" for label, meaning in self.available_labels.items()
            )
        elif self.available_labels:
            parts.append("\n## Labels\nChoose from these labels:")
            parts.extend(f"- {label}" for label in self.available_labels)
        else:
            parts.append("Use plain, widely understood words for labels.")
        if self.examples:
            parts.append("\n## Examples")
            parts.extend(f"- {example}" for example in self.examples)
        if self.default_label:
            default = (
                self.default_label
                if isinstance(self.default_label, str)
                else ", ".join(self.default_label)
            )
            parts.append(
                f"\nIf the text is too ambiguous or too short to classify, answer {default}."
            )
        shape = '"label"' if self.n == 1 else "[" + ", ".join(['"label"'] * self.n) + "]"
        parts.append(f'\n## Answer\nAnswer with only this JSON object: {{"labels": {shape}}}')
        parts.append(f"\n## {self.query_title}\n{text}")
        return "\n".join(parts)

    def format_output(self, output: str | None, row: Row) -> dict[str, Any]:
        labels = self._labels(output)
        canonical = [self._canonical(label) for label in labels]
        canonical = [label for label in canonical if label]
        if not canonical:
            raise OutputParseError("the answer's 'labels' is empty; expected at least one label")
        return {"labels": canonical[0] if self.n == 1 else canonical[: self.n]}

    def _labels(self, output: str | None) -> list[Any]:
        try:
            value = json_value(output, 'a JSON object {"labels": ...}')
        except OutputParseError:
            found = self._label_named_in(require_text(output, "a label"))
            if found is None:
                raise
            return [found]
        if isinstance(value, dict):
            value = value.get("labels", value.get("label"))
        if isinstance(value, str):
            return [value]
        if isinstance(value, list) and all(isinstance(v, str) for v in value):
            return value
        raise OutputParseError('the answer\'s JSON has no "labels" string or list of strings')

    def _canonical(self, label: str) -> str:
        label = label.strip().strip("\"'`*").strip()
        for known in self.available_labels or ():
            if known.lower() == label.lower():
                return known
        return label

    def _label_named_in(self, text: str) -> str | None:
        """The one available label that a free-text answer names, if exactly one."""
        named = [
            label
            for label in self.available_labels or ()
            if re.search(rf"(?<!\w){re.escape(label)}(?!\w)", text, re.IGNORECASE)
        ]
        return named[0] if len(named) == 1 else None
