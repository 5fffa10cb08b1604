"""Answers held to a format: a JSON schema or a regular expression per row."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel, Field

from synthflow.errors import OutputParseError
from synthflow.models.callpath.structured import schema_of, validation_error
from synthflow.models.llms.base import ChatType
from synthflow.steps.base import Row
from synthflow.steps.tasks.base import Task
from synthflow.steps.tasks.parsing import json_value, require_text

JSON_RULE = "Answer with only a JSON value that follows this JSON schema:\n{schema}"
REGEX_RULE = "Answer with only text that matches this regular expression:\n{pattern}"


def row_format(value: Any) -> tuple[str, Any] | None:
    """A row's ``structured_output`` as ``("json", schema)`` or ``("regex", pattern)``.

    Accepts distilabel's ``{"format": "json" | "regex", "schema": ...}``, a bare JSON schema, a
    pydantic model class (in either place), or None (no format)."""
    if value is None:
        return None
    if isinstance(value, type) and issubclass(value, BaseModel):
        return "json", schema_of(value)
    if not isinstance(value, Mapping):
        raise TypeError(
            "'structured_output' must be {'format': 'json', 'schema': {...}}, "
            f"{{'format': 'regex', 'schema': '...'}} or a JSON schema, got {type(value).__name__}"
        )
    if "format" not in value:
        return "json", dict(value)
    fmt, schema = value.get("format"), value.get("schema")
    if fmt == "regex" and isinstance(schema, str):
        return "regex", schema
    if fmt == "json" and isinstance(schema, Mapping | type):
        return "json", schema_of(schema if isinstance(schema, type) else dict(schema))
    raise ValueError(
        f"'structured_output' format {fmt!r} with a {type(schema).__name__} schema isn't "
        "supported; use format 'json' with a JSON schema, or 'regex' with a pattern string"
    )


class StructuredGeneration(Task):
    """Answers each row's ``instruction`` in the format of that row's ``structured_output``: a
    JSON schema or a regular expression, so every row can ask for a different shape.

    The format is stated in the prompt, and the answer is checked against it: a JSON answer is
    taken from the whole text, a code fence or the first JSON value in prose, and must follow the
    schema; a regex answer must match the pattern (the whole text, else the first match in it).
    An answer that doesn't fit is a row failure. (A format for every row alike is better set on
    the LLM, as ``structured_output``, where the API's JSON-schema mode enforces it.)

    Input columns:
        - instruction (str): what to generate.
        - structured_output (dict): ``{"format": "json", "schema": {...}}``, ``{"format":
          "regex", "schema": "pattern"}``, a bare JSON schema, or None for free text.
        - system_prompt (str, with ``use_system_prompt=True``): a system message for the row.

    Output columns:
        - generation (str): the answer in the row's format (JSON as compact text).
        - model_name (str): the model that wrote it.
    """

    use_system_prompt: bool = Field(
        default=False, description="Send each row's 'system_prompt' column as a system message."
    )

    @property
    def inputs(self) -> list[str]:
        columns = ["instruction", "structured_output"]
        return ["system_prompt", *columns] if self.use_system_prompt else columns

    @property
    def optional_inputs(self) -> list[str]:
        return ["system_prompt"]

    @property
    def outputs(self) -> list[str]:
        return ["generation", "model_name"]

    def format_input(self, row: Row) -> ChatType:
        instruction = row["instruction"]
        if not isinstance(instruction, str):
            raise TypeError(f"'instruction' must be a string, got {type(instruction).__name__}")
        fmt = row_format(row.get("structured_output"))
        if fmt is not None:
            kind, schema = fmt
            rule = (
                JSON_RULE.format(schema=json.dumps(schema, ensure_ascii=False))
                if kind == "json"
                else REGEX_RULE.format(pattern=schema)
            )
            instruction = f"{instruction}\n\n{rule}"
        messages: ChatType = [{"role": "user", "content": instruction}]
        if self.use_system_prompt and row.get("system_prompt"):
            messages.insert(0, {"role": "system", "content": row["system_prompt"]})
        return messages

    def format_output(self, output: str | None, row: Row) -> dict[str, Any]:
        fmt = row_format(row.get("structured_output"))
        if fmt is None:
            return {"generation": output}
        kind, schema = fmt
        if kind == "regex":
            return {"generation": _regex_answer(output, schema)}
        value = json_value(output, "a JSON value that follows the row's schema")
        text = json.dumps(value, ensure_ascii=False)
        problem = validation_error(text, schema)
        if problem is not None:
            raise OutputParseError(f"the answer doesn't follow the row's JSON schema: {problem}")
        return {"generation": text}


def _regex_answer(output: str | None, pattern: str) -> str:
    text = require_text(output, f"text matching {pattern!r}")
    compiled = re.compile(pattern)
    if compiled.fullmatch(text):
        return text
    found = compiled.search(text)
    if found is None or not found.group(0):
        raise OutputParseError(f"the answer doesn't match the row's pattern {pattern!r}")
    return found.group(0)
