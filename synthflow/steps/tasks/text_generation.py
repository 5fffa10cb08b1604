"""Tasks that generate text: from an instruction, or from a conversation."""

from __future__ import annotations

from typing import Any

from pydantic import Field

from synthflow.llms.base import ChatType
from synthflow.steps.base import Row
from synthflow.steps.tasks.base import Task


class TextGeneration(Task):
    """Answers the ``instruction`` column; writes ``generation`` and ``model_name``."""

    system_prompt: str | None = Field(
        default=None, description="A system message sent before every instruction."
    )

    @property
    def inputs(self) -> list[str]:
        return ["instruction"]

    @property
    def outputs(self) -> list[str]:
        return ["generation", "model_name"]

    def format_input(self, row: Row) -> ChatType:
        instruction = row["instruction"]
        if not isinstance(instruction, str):
            raise TypeError(
                f"'instruction' must be a string, got {type(instruction).__name__}; "
                "use ChatGeneration for a list of messages"
            )
        messages: ChatType = []
        if self.system_prompt:
            messages.append({"role": "system", "content": self.system_prompt})
        messages.append({"role": "user", "content": instruction})
        return messages

    def format_output(self, output: str | None, row: Row) -> dict[str, Any]:
        return {"generation": output}


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
