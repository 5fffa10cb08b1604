"""LLM tasks: ``from synthflow.steps.tasks import Task, TextGeneration, ChatGeneration``."""

from synthflow.llms.base import ChatMessage as ChatItem
from synthflow.llms.base import ChatType
from synthflow.steps.base import METADATA_COLUMN
from synthflow.steps.tasks.base import ERROR_COLUMN, Task
from synthflow.steps.tasks.decorator import task
from synthflow.steps.tasks.text_generation import ChatGeneration, TextGeneration

__all__ = [
    "ERROR_COLUMN",
    "METADATA_COLUMN",
    "ChatGeneration",
    "ChatItem",
    "ChatType",
    "Task",
    "TextGeneration",
    "task",
]
