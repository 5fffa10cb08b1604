"""ArgillaLabeller: suggestions for an Argilla dataset's questions, from its records' fields.

Argilla's objects are read in the shapes its Python SDK writes them (``Record.to_dict()``,
``question.serialize()``, ``field.serialize()``), or are those objects themselves: the SDK is not
needed. A question is one of four types, each with its answer's JSON shape:

    label_selection         {"label": "<one of the options>"}
    multi_label_selection   {"labels": ["<option>", ...]}   (none, one or several)
    rating                  {"rating": <one of the options' values>}
    text                    {"text": "<free text>"}
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from pydantic import Field, field_validator

from synthflow.errors import OutputParseError
from synthflow.models.llms.base import ChatType
from synthflow.runtime_parameters import RuntimeParameter
from synthflow.steps.base import Row
from synthflow.steps.tasks.base import Task
from synthflow.steps.tasks.parsing import json_value

DEFAULT_SYSTEM_PROMPT = (
    "You annotate the records of a dataset. Read each record's fields, follow the annotation "
    "guidelines and the examples annotated by people, and answer the question about the "
    "record with one JSON object and nothing else."
)

DEFAULT_INSTRUCTIONS = {
    "label_selection": "Choose the one option that fits the record best.",
    "multi_label_selection": "Choose every option that applies to the record: none, one or "
    "several.",
    "rating": "Rate the record with one of the values offered.",
    "text": "Write the answer to the question about the record.",
}

_KEYS = {
    "label_selection": "label",
    "multi_label_selection": "labels",
    "rating": "rating",
    "text": "text",
}


def as_plain(value: Any) -> Any:
    """An Argilla SDK object as the dict its SDK writes (``serialize()`` or ``to_dict()``);
    anything else as it is."""
    for method in ("serialize", "to_dict"):
        convert = getattr(value, method, None)
        if callable(convert) and not isinstance(value, dict):
            return convert()
    return value


def answer_schema(question: dict[str, Any]) -> dict[str, Any]:
    """The JSON schema of an answer to ``question`` (see the module docstring)."""
    kind = question_type(question)
    values = option_values(question)
    value: dict[str, Any]
    if kind == "label_selection":
        value = {"type": "string", "enum": values}
    elif kind == "multi_label_selection":
        value = {"type": "array", "items": {"type": "string", "enum": values}}
    elif kind == "rating":
        value = {"type": "integer", "enum": values}
    else:
        value = {"type": "string"}
    key = _KEYS[kind]
    return {
        "title": "ArgillaSuggestion",
        "type": "object",
        "properties": {key: value},
        "required": [key],
    }


def question_type(question: dict[str, Any]) -> str:
    settings = question.get("settings") if isinstance(question, dict) else None
    kind = settings.get("type") if isinstance(settings, dict) else None
    if kind not in _KEYS:
        name = question.get("name") if isinstance(question, dict) else None
        raise ValueError(
            f"ArgillaLabeller can't answer question {name!r} of type {kind!r}: it answers "
            f"{', '.join(_KEYS)} questions (give one as question.serialize() or its dict)"
        )
    return str(kind)


def option_values(question: dict[str, Any]) -> list[Any]:
    options = question.get("settings", {}).get("options") or []
    return [option["value"] if isinstance(option, dict) else option for option in options]


class ArgillaLabeller(Task):
    """Suggests answers to an Argilla dataset's questions for its records, from the records'
    fields, the annotation guidelines and records people have answered (few-shot examples).

    ``fields``, ``question``, ``example_records`` and ``guidelines`` are set on the task (for
    every row) or come with each row, in the columns of the same names; a row's own wins. The
    question is a label, multi-label, rating or text question, and the answer's JSON shape
    follows its type; with ``use_default_structured_output`` (the default) and the question
    set on the task, an LLM that takes a ``structured_output`` and has none is held to that
    shape. An answer outside the question's options is a row failure, as is one that isn't
    JSON. ``question_to_label_instruction`` words the instruction for each question type.

    Input columns:
        - record (dict): the record to label: its ``fields`` as the SDK's ``to_dict()`` gives
          them (or a dict of field name to value, or an ``argilla.Record``).
        - fields (list[dict], optional): the fields to show, as ``field.serialize()``.
        - question (dict, optional): the question to answer, as ``question.serialize()``.
        - example_records (list[dict], optional): records answered by people; one without an
          answer to the question is left out.
        - guidelines (str, optional): the dataset's annotation guidelines.

    Output columns:
        - suggestion (dict): ``{"value", "question_name", "type": "model", "agent"}``, the
          keyword arguments of ``argilla.Suggestion`` (``agent`` is the model).
        - model_name (str): the model that answered.

    Runtime parameters: ``fields``, ``question``, ``example_records`` and ``guidelines``.

    Argilla: https://github.com/argilla-io/argilla
    """

    system_prompt: str | None = Field(
        default=DEFAULT_SYSTEM_PROMPT, description="The system message; None sends none."
    )
    question_to_label_instruction: dict[str, str] = Field(
        default_factory=lambda: dict(DEFAULT_INSTRUCTIONS),
        description="The instruction for each question type: label_selection, "
        "multi_label_selection, rating and text.",
    )
    fields: RuntimeParameter[list[dict[str, Any]] | None] = Field(
        default=None, description="The fields to show, as field.serialize() writes them."
    )
    question: RuntimeParameter[dict[str, Any] | None] = Field(
        default=None, description="The question to answer, as question.serialize() writes it."
    )
    example_records: RuntimeParameter[list[dict[str, Any]] | None] = Field(
        default=None, description="Records answered by people, shown as examples."
    )
    guidelines: RuntimeParameter[str | None] = Field(
        default=None, description="The dataset's annotation guidelines."
    )
    use_default_structured_output: bool = Field(
        default=True,
        description="Hold the LLM to the question's answer schema when it takes one and has "
        "none (with the question set on the task).",
    )

    @field_validator("fields", "example_records", mode="before")
    @classmethod
    def _plain_list(cls, value: Any) -> Any:
        if isinstance(value, Sequence) and not isinstance(value, str):
            return [as_plain(item) for item in value]
        return value

    @field_validator("question", mode="before")
    @classmethod
    def _plain_question(cls, value: Any) -> Any:
        return as_plain(value)

    def get_structured_output(self) -> dict[str, Any] | None:
        if self.question is None:
            return None
        return answer_schema(self.question)

    @property
    def inputs(self) -> list[str]:
        return ["record"]

    @property
    def optional_inputs(self) -> list[str]:
        return ["fields", "question", "example_records", "guidelines"]

    @property
    def outputs(self) -> list[str]:
        return ["suggestion", "model_name"]

    # -- what a row asks ---------------------------------------------------------------------

    def _question(self, row: Row) -> dict[str, Any]:
        question = as_plain(row.get("question")) or self.question
        if not isinstance(question, dict):
            raise ValueError(
                "ArgillaLabeller needs a question: set question=... on the task or give each "
                "row a 'question' column (question.serialize())"
            )
        question_type(question)
        return question

    def _fields(self, row: Row) -> list[dict[str, Any]]:
        fields = row.get("fields") or self.fields
        if not fields:
            raise ValueError(
                "ArgillaLabeller needs the fields to show: set fields=[...] on the task or give "
                "each row a 'fields' column (field.serialize() of each)"
            )
        return [as_plain(field) for field in fields]

    def format_input(self, row: Row) -> ChatType:
        question = self._question(row)
        fields = self._fields(row)
        guidelines = row.get("guidelines") or self.guidelines
        examples = row.get("example_records") or self.example_records or []
        parts: list[str] = []
        if guidelines:
            parts += ["# Annotation guidelines", str(guidelines).strip(), ""]
        shown = [as_plain(example) for example in examples]
        answered = [(ex, answer) for ex in shown if (answer := _response(ex, question)) is not None]
        if answered:
            parts.append("# Examples answered by people")
            for i, (example, answer) in enumerate(answered, 1):
                parts += [f"## Example {i}", _show_fields(example, fields)]
                parts += [f"Answer: {_answer_json(question, answer)}", ""]
        parts += ["# Record", _show_fields(as_plain(row["record"]), fields), ""]
        parts += ["# Question", _show_question(question, self._instruction(question))]
        messages: ChatType = []
        if self.system_prompt:
            messages.append({"role": "system", "content": self.system_prompt})
        messages.append({"role": "user", "content": "\n".join(parts)})
        return messages

    def _instruction(self, question: dict[str, Any]) -> str:
        kind = question_type(question)
        return self.question_to_label_instruction.get(kind) or DEFAULT_INSTRUCTIONS[kind]

    # -- the answer ----------------------------------------------------------------------------

    def format_output(self, output: str | None, row: Row) -> dict[str, Any]:
        question = self._question(row)
        kind = question_type(question)
        key = _KEYS[kind]
        value = json_value(output, f'a JSON object {{"{key}": ...}}')
        if isinstance(value, dict):
            if key not in value:
                raise OutputParseError(f'the answer\'s JSON has no "{key}"')
            value = value[key]
        suggestion = _checked(kind, value, option_values(question))
        return {
            "suggestion": {
                "value": suggestion,
                "question_name": question.get("name"),
                "type": "model",
                "agent": self.llm.model_name,
            }
        }


def _checked(kind: str, value: Any, options: list[Any]) -> Any:
    """The answer's value, matched to the question's options; OutputParseError when it is not
    one of them (or not of the type's shape)."""
    if kind == "text":
        if not isinstance(value, str) or not value.strip():
            raise OutputParseError("the answer's text is empty or not a string")
        return value.strip()
    if kind == "rating":
        if isinstance(value, str) and value.strip().lstrip("-").isdigit():
            value = int(value.strip())
        if isinstance(value, bool) or value not in options:
            raise OutputParseError(f"the rating {value!r} is not one of {options}")
        return value
    wanted = value if kind == "multi_label_selection" else [value]
    if not isinstance(wanted, list) or not all(isinstance(v, str) for v in wanted):
        raise OutputParseError(f"the answer's labels are not strings: {value!r:.80}")
    by_name = {str(option).lower(): option for option in options}
    labels = []
    for label in wanted:
        known = by_name.get(label.strip().strip("\"'`").lower())
        if known is None:
            raise OutputParseError(f"the label {label!r} is not one of {options}")
        if known not in labels:
            labels.append(known)
    return labels if kind == "multi_label_selection" else labels[0]


def _record_fields(record: Any) -> dict[str, Any]:
    if isinstance(record, dict) and isinstance(record.get("fields"), dict):
        return dict(record["fields"])
    return dict(record) if isinstance(record, dict) else {}


def _show_fields(record: Any, fields: list[dict[str, Any]]) -> str:
    values = _record_fields(record)
    lines = []
    for field in fields:
        name = field.get("name", "")
        title = field.get("title") or name
        lines.append(f"{title}: {values.get(name, '')}")
    return "\n".join(lines)


def _show_question(question: dict[str, Any], instruction: str) -> str:
    lines = [str(question.get("title") or question.get("name") or "")]
    if question.get("description"):
        lines.append(str(question["description"]))
    lines.append(instruction)
    options = question.get("settings", {}).get("options") or []
    if options:
        lines.append("Options:")
        for option in options:
            if isinstance(option, dict):
                text = option.get("text")
                described = f" ({option['description']})" if option.get("description") else ""
                named = f": {text}" if text and text != option["value"] else ""
                lines.append(f"- {option['value']}{named}{described}")
            else:
                lines.append(f"- {option}")
    key = _KEYS[question_type(question)]
    shape = {
        "label": '"<option>"',
        "labels": '["<option>", ...]',
        "rating": "<value>",
        "text": '"<answer>"',
    }[key]
    lines.append(f'Answer with only this JSON object: {{"{key}": {shape}}}')
    return "\n".join(lines)


def _response(record: dict[str, Any], question: dict[str, Any]) -> Any:
    """The value people gave ``question`` in an example record, or None."""
    responses = record.get("responses") if isinstance(record, dict) else None
    if not isinstance(responses, dict):
        return None
    given = responses.get(question.get("name"))
    if isinstance(given, list):
        given = given[0] if given else None
    if isinstance(given, dict):
        given = given.get("value")
    return given


def _answer_json(question: dict[str, Any], value: Any) -> str:
    import json

    return json.dumps({_KEYS[question_type(question)]: value}, ensure_ascii=False)
