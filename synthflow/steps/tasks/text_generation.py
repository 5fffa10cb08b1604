"""Tasks that generate text: from an instruction (or a Jinja2 template over columns), or from a
conversation."""

from __future__ import annotations

import functools
import re
from typing import TYPE_CHECKING, Any

from pydantic import Field, field_validator, model_validator

from synthflow.models.llms.base import ChatType
from synthflow.steps.base import Row
from synthflow.steps.tasks.base import Task

if TYPE_CHECKING:
    from jinja2 import Template

DEFAULT_TEMPLATE = "{{ instruction }}"


class TextGeneration(Task):
    """Answers a prompt; writes ``generation`` and ``model_name``.

    The prompt is the ``instruction`` column by default. With ``template`` (Jinja2) and
    ``columns``, it is the template rendered with those columns, which become the task's inputs::

        TextGeneration(
            llm=llm,
            template="Summarize in {{ words }} words:\\n{{ text }}",
            columns=["text", "words"],
        )

    With ``columns=[]`` the template is a fixed prompt, sent once per row.

    Input columns: ``columns`` (default ``instruction``); optionally ``system_prompt``, a row's
    own system message, which wins over the ``system_prompt`` field (``use_system_prompt=False``
    ignores the column). Output columns: ``generation`` (str), ``model_name`` (str).
    """

    system_prompt: str | None = Field(
        default=None,
        description="A system message sent before every prompt (a row's 'system_prompt' "
        "column wins over it).",
    )
    use_system_prompt: bool = Field(
        default=True,
        description="Use a row's 'system_prompt' column as its system message when present.",
    )
    template: str = Field(
        default=DEFAULT_TEMPLATE,
        description="A Jinja2 template for the prompt, rendered with the row's 'columns'.",
    )
    columns: list[str] = Field(
        default_factory=lambda: ["instruction"],
        description="The columns the template uses: the task's inputs. A string is one column.",
    )

    @field_validator("columns", mode="before")
    @classmethod
    def _one_column(cls, value: Any) -> Any:
        return [value] if isinstance(value, str) else value

    @model_validator(mode="after")
    def _check_template(self) -> TextGeneration:
        # No columns is a fixed prompt, the same for every row (one answer per row), as in
        # distilabel: a loader's rows then only say how many answers to ask for.
        _compile(self.template)  # a syntax error fails here, not on the first row
        for column in self.columns:
            if not _uses(self.template, column):
                raise ValueError(
                    f"column {column!r} is not in the template; write {{{{ {column} }}}} in "
                    f"template, or leave it out of columns"
                )
        return self

    @property
    def inputs(self) -> list[str]:
        return list(self.columns)

    @property
    def optional_inputs(self) -> list[str]:
        return ["system_prompt"]

    @property
    def outputs(self) -> list[str]:
        return ["generation", "model_name"]

    def format_input(self, row: Row) -> ChatType:
        if self.template == DEFAULT_TEMPLATE and self.columns == ["instruction"]:
            prompt = row["instruction"]
            if not isinstance(prompt, str):
                raise TypeError(
                    f"'instruction' must be a string, got {type(prompt).__name__}; "
                    "use ChatGeneration for a list of messages"
                )
        else:
            prompt = _compile(self.template).render({c: row[c] for c in self.columns})
        messages: ChatType = []
        own = row.get("system_prompt") if self.use_system_prompt else None
        system = own or self.system_prompt
        if system:
            messages.append({"role": "system", "content": system})
        messages.append({"role": "user", "content": prompt})
        return messages

    def format_output(self, output: str | None, row: Row) -> dict[str, Any]:
        return {"generation": output}


@functools.lru_cache(maxsize=256)
def _compile(template: str) -> Template:
    """The compiled template; cached by its text, so tasks keep no unpicklable state."""
    try:
        import jinja2
    except ImportError:  # pragma: no cover - a declared dependency
        raise ImportError("TextGeneration templates need Jinja2: pip install jinja2") from None
    try:
        compiled: Template = jinja2.Template(template)
    except jinja2.TemplateSyntaxError as exc:
        raise ValueError(f"template line {exc.lineno}: {exc.message}") from None
    return compiled


def _uses(template: str, column: str) -> bool:
    """Whether the template mentions ``column`` in an expression or a statement."""
    name = re.escape(column)
    return re.search(rf"{{{{[^}}]*\b{name}\b|{{%[^%]*\b{name}\b", template) is not None


class ChatGeneration(Task):
    """Continues the conversation in the ``messages`` column (a list of ``{"role",
    "content"}`` dicts ending with a user turn); writes ``generation`` and ``model_name``."""

    @property
    def inputs(self) -> list[str]:
        return ["messages"]

    @property
    def outputs(self) -> list[str]:
        return ["generation", "model_name"]

    def format_input(self, row: Row) -> ChatType:
        messages = row["messages"]
        if not isinstance(messages, list) or not messages:
            raise TypeError("'messages' must be a non-empty list of {'role', 'content'} dicts")
        if messages[-1].get("role") != "user":
            raise ValueError("the last message in 'messages' must have role 'user'")
        return list(messages)

    def format_output(self, output: str | None, row: Row) -> dict[str, Any]:
        return {"generation": output}
