"""Structured output: a JSON schema the answer must follow, and the check that it does.

Users give a pydantic model class or a JSON schema dict, bare or in distilabel's wrappers
(``{"schema": ..., "format": "json"}``, and Inference Endpoints' ``{"type": "json", "value":
...}``). The schema is what serializes with the LLM; the model class, when given, also
validates. Where the API has a native JSON-schema mode the client asks for it; everywhere, the
answer is checked, and a bad one is re-asked a bounded number of times with the validation error.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import orjson
from pydantic import BaseModel, Field, PrivateAttr, ValidationError, field_validator

from synthflow.errors import LLMSchemaError
from synthflow.models.llms.base import LLM, ChatType, GenerateOutput

REASK = (
    "Your previous answer is not valid JSON for the required schema: {error}. "
    "Answer again with only a JSON value that follows this schema, and nothing else: {schema}"
)

_TYPES: dict[str, tuple[type, ...]] = {
    "object": (dict,),
    "array": (list,),
    "string": (str,),
    "integer": (int,),
    "number": (int, float),
    "boolean": (bool,),
    "null": (type(None),),
}


class StructuredOutputLLM(LLM):
    """An LLM whose answers can be held to a JSON schema: checked, and re-asked when wrong.

    ``structured_output`` stores the schema (what serializes); a pydantic class given for it is
    kept too, to validate with. Subclasses call ``enforce_schema`` after generating.
    """

    structured_output: dict[str, Any] | None = Field(
        default=None,
        description="A JSON schema (or a pydantic model class, stored as its schema) that "
        "every answer must follow.",
    )
    structured_retries: int = Field(
        default=2, ge=0, description="Re-asks after an answer that doesn't follow the schema."
    )

    _schema_model: type[BaseModel] | None = PrivateAttr(default=None)

    @field_validator("structured_output", mode="before")
    @classmethod
    def _to_schema(cls, value: Any) -> Any:
        value = unwrap_structured_output(value)
        return value if value is None or isinstance(value, dict) else schema_of(value)

    def __init__(self, **data: Any) -> None:
        model_cls = unwrap_structured_output(data.get("structured_output"))
        super().__init__(**data)
        if isinstance(model_cls, type) and issubclass(model_cls, BaseModel):
            self._schema_model = model_cls

    async def enforce_schema(
        self,
        messages: ChatType,
        output: GenerateOutput,
        ask: Callable[[ChatType], Awaitable[GenerateOutput]],
    ) -> GenerateOutput:
        """Check every generation; re-ask a bad one (with the error) through ``ask``, at most
        ``structured_retries`` times, then raise LLMSchemaError (an LLMResponseError)."""
        schema = self.structured_output
        if schema is None:
            return output
        schema_text = orjson.dumps(schema).decode()
        for i, text in enumerate(output.generations):
            error = validation_error(text, schema, self._schema_model)
            attempts = 0
            while error is not None:
                if attempts == self.structured_retries:
                    failure = LLMSchemaError(
                        f"the answer does not follow the output schema after {attempts} "
                        f"re-asks: {error}",
                        answer=text,
                        reasks=attempts,
                    )
                    failure.usage, failure.retries = output.usage, output.retries
                    raise failure
                attempts += 1
                reask = [
                    *messages,
                    {"role": "assistant", "content": text or ""},
                    {"role": "user", "content": REASK.format(error=error, schema=schema_text)},
                ]
                again = await ask(reask)
                output.usage = output.usage + again.usage
                output.retries += again.retries
                text = again.generations[0]
                error = validation_error(text, schema, self._schema_model)
            output.generations[i] = text
        return output


_OUTLINES_KEYS = frozenset({"schema", "format", "whitespace_pattern"})


def unwrap_structured_output(value: Any) -> Any:
    """The schema (a JSON schema dict or a pydantic class) inside distilabel's forms of
    ``structured_output``: ``{"schema": ..., "format": "json"}`` (its outlines/instructor form)
    and ``{"type": "json", "value": ...}`` (its Inference Endpoints form); a schema given as JSON
    text is parsed. A bare schema is returned as it is."""
    if isinstance(value, dict):
        if "schema" in value and value.keys() <= _OUTLINES_KEYS:
            fmt, value = value.get("format", "json"), value["schema"]
        elif value.keys() == {"type", "value"} and value["type"] in ("json", "regex"):
            fmt, value = value["type"], value["value"]
        else:
            return value
        if fmt != "json":
            raise ValueError(
                f"structured_output format {fmt!r} is not supported on an LLM: use 'json' with a "
                "JSON schema, or the StructuredGeneration task for a regular expression"
            )
    if isinstance(value, str):
        try:
            value = orjson.loads(value)
        except orjson.JSONDecodeError:
            raise ValueError(
                "structured_output given as text must be a JSON schema; pass a pydantic model "
                "class or a JSON schema dict"
            ) from None
    return value


def schema_of(structured: type[BaseModel] | dict[str, Any]) -> dict[str, Any]:
    if isinstance(structured, dict):
        return structured
    if isinstance(structured, type) and issubclass(structured, BaseModel):
        return structured.model_json_schema()
    raise TypeError(
        "structured_output must be a pydantic model class or a JSON schema dict, "
        f"got {type(structured).__name__}"
    )


def schema_name(schema: dict[str, Any]) -> str:
    title = str(schema.get("title") or "output")
    return "".join(c if c.isalnum() or c in "_-" else "_" for c in title)[:64]


def validation_error(
    text: str | None, schema: dict[str, Any], model: type[BaseModel] | None = None
) -> str | None:
    """Why ``text`` doesn't satisfy the schema, or None when it does."""
    if text is None:
        return "the answer is empty"
    stripped = _strip_fences(text)
    if model is not None:
        try:
            model.model_validate_json(stripped)
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(p) for p in first["loc"]) or "value"
            return f"{where}: {first['msg']}"
        return None
    try:
        value = orjson.loads(stripped)
    except orjson.JSONDecodeError as exc:
        return f"not JSON ({exc})"
    return _check(value, schema, schema, "$")


def parse(text: str) -> Any:
    """The JSON value of an answer that passed ``validation_error``."""
    return orjson.loads(_strip_fences(text))


def _strip_fences(text: str) -> str:
    stripped = text.strip()
    if stripped.startswith("```"):
        stripped = stripped.split("\n", 1)[1] if "\n" in stripped else ""
        stripped = stripped.rsplit("```", 1)[0]
    return stripped.strip()


def _resolve(node: dict[str, Any], root: dict[str, Any]) -> dict[str, Any]:
    ref = node.get("$ref")
    if not isinstance(ref, str) or not ref.startswith("#/"):
        return node
    target: Any = root
    for part in ref[2:].split("/"):
        target = target.get(part, {}) if isinstance(target, dict) else {}
    return target if isinstance(target, dict) else {}


def _check(value: Any, node: dict[str, Any], root: dict[str, Any], path: str) -> str | None:
    """A small JSON Schema subset: type, enum, const, properties, required, items, anyOf."""
    node = _resolve(node, root)
    if "anyOf" in node or "oneOf" in node:
        options = node.get("anyOf") or node.get("oneOf") or []
        errors = [_check(value, option, root, path) for option in options]
        return None if any(e is None for e in errors) else errors[0]
    kind = node.get("type")
    if kind is not None:
        kinds = kind if isinstance(kind, list) else [kind]
        allowed = tuple(t for k in kinds for t in _TYPES.get(k, (object,)))
        if not isinstance(value, allowed) or (isinstance(value, bool) and bool not in allowed):
            return f"{path}: expected {' or '.join(kinds)}, got {type(value).__name__}"
    if "enum" in node and value not in node["enum"]:
        return f"{path}: {value!r} is not one of {node['enum']}"
    if "const" in node and value != node["const"]:
        return f"{path}: expected {node['const']!r}"
    if isinstance(value, dict):
        for name in node.get("required", []):
            if name not in value:
                return f"{path}: missing required property {name!r}"
        for name, sub in node.get("properties", {}).items():
            if name in value:
                error = _check(value[name], sub, root, f"{path}.{name}")
                if error:
                    return error
    if isinstance(value, list) and isinstance(node.get("items"), dict):
        for i, item in enumerate(value):
            error = _check(item, node["items"], root, f"{path}[{i}]")
            if error:
                return error
    return None


def example_of(schema: dict[str, Any], seed: int = 0) -> Any:
    """A deterministic value that satisfies ``schema`` (the subset ``validation_error`` checks).

    The offline LLM answers with it, so pipelines with structured output run without a network.
    """
    return _example(schema, schema, seed, depth=0)


def _example(node: dict[str, Any], root: dict[str, Any], seed: int, depth: int) -> Any:
    node = _resolve(node, root)
    if "const" in node:
        return node["const"]
    if node.get("enum"):
        options = node["enum"]
        return options[seed % len(options)]
    options = node.get("anyOf") or node.get("oneOf")
    if options:
        return _example(options[0], root, seed, depth)
    kind = node.get("type", "object" if "properties" in node else "string")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), "null")
    if kind == "object":
        props = node.get("properties", {})
        return {
            name: _example(sub, root, seed + i + 1, depth + 1)
            for i, (name, sub) in enumerate(props.items())
        }
    if kind == "array":
        items = node.get("items", {"type": "string"})
        count = max(int(node.get("minItems", 1)), 1) if depth < 4 else 0
        return [_example(items, root, seed + i, depth + 1) for i in range(count)]
    if kind == "integer":
        low = int(node.get("minimum", 0))
        high = int(node.get("maximum", low + 9))
        return low + seed % (high - low + 1)
    if kind == "number":
        floor = float(node.get("minimum", 0.0))
        ceiling = float(node.get("maximum", floor + 1.0))
        return floor + (seed % 100) / 100 * (ceiling - floor)
    if kind == "boolean":
        return seed % 2 == 0
    if kind == "null":
        return None
    return f"{node.get('title', 'text')} {seed}"
