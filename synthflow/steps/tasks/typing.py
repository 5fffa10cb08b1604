"""The chat typing names distilabel users import: ``from synthflow.steps.tasks.typing import
ChatItem, ChatType``."""

from __future__ import annotations

from typing import Any, TypedDict

from synthflow.models.llms.base import ChatType


class ChatItem(TypedDict):
    """One chat message: ``{"role": "user", "content": "..."}``; content may be a list of parts
    (text, image URLs) for the clients that take them."""

    role: str
    content: Any


__all__ = ["ChatItem", "ChatType"]
