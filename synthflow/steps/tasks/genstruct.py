"""Genstruct: an instruction and its answer, grounded in a document."""

from __future__ import annotations

import re
from typing import Any

from synthflow.errors import OutputParseError
from synthflow.models.llms.base import ChatType
from synthflow.steps.base import Row
from synthflow.steps.tasks.base import Task
from synthflow.steps.tasks.parsing import require_text

# Genstruct 7B was trained on documents and exchanges delimited by these markers; any other model
# is asked to use them too, so one parser reads both.
_USER = re.compile(
    r"\[\[\[\s*user\s*\]\]\]:?|^[ \t]*(?:#+[ \t]*)?\**(?:user|question)\**[ \t]*:\**",
    re.IGNORECASE | re.MULTILINE,
)
_ASSISTANT = re.compile(
    r"\[\[\[\s*assistant\s*\]\]\]:?|^[ \t]*(?:#+[ \t]*)?\**(?:assistant|answer)\**[ \t]*:\**",
    re.IGNORECASE | re.MULTILINE,
)


class Genstruct(Task):
    """Writes a user's instruction about a document and the assistant's answer to it, turning any
    corpus of raw text into instruction-tuning data.

    The method of NousResearch's Genstruct 7B (huggingface.co/NousResearch/Genstruct-7B), which
    builds on Ada-Instruct (Cui and Wang, "Ada-Instruct: Adapting Instruction Generators for
    Complex Reasoning", arXiv:2310.04484): rather than asking a model for instructions out of
    nothing, show it a passage and ask for a question that takes understanding of, and reasoning
    over, that passage, followed by a full answer. The prompt uses Genstruct's own format
    (``[[[Title]]]``, ``[[[Content]]]``, ``[[[User]]]``, ``[[[Assistant]]]``), so
    ``NousResearch/Genstruct-7B`` works with it; any instruction-following model does too.

    Input columns:
        - title (``str``): the document's title.
        - content (``str``): the document's text.

    Output columns:
        - user (``str``): the instruction, written to make sense without the document in view.
        - assistant (``str``): the answer to it.
        - model_name (``str``): the model that wrote them.

    Runtime parameters: ``num_generations``, ``concurrency`` and ``input_batch_size`` (the
    task's, see ``Task``).

    The parser reads the exchange after ``[[[User]]]`` and ``[[[Assistant]]]``, or after
    ``User:``/``Question:`` and ``Assistant:``/``Answer:`` labels (bold or as headings too). An
    answer that starts with the question itself (a model that continues the prompt) is read too.
    An answer without an assistant part is a row failure (``OutputParseError``).
    """

    @property
    def inputs(self) -> list[str]:
        return ["title", "content"]

    @property
    def outputs(self) -> list[str]:
        return ["user", "assistant", "model_name"]

    def format_input(self, row: Row) -> ChatType:
        content = (
            f"[[[Title]]] {row['title']}\n"
            f"[[[Content]]] {row['content']}\n\n"
            "Write one exchange between a user and an AI assistant about the text above. The "
            "user asks something that takes understanding of the text, and reasoning over it, to "
            "answer well: not a question answered by copying one sentence. The user's message "
            "must make sense to someone who has not read the text, so it states the context it "
            "needs. The assistant answers fully and correctly, reasoning step by step where that "
            "helps.\n\n"
            "Write the user's message after [[[User]]] and the assistant's answer after "
            "[[[Assistant]]], and nothing else."
        )
        return [{"role": "user", "content": content}]

    def format_output(self, output: str | None, row: Row) -> dict[str, Any]:
        text = require_text(output, "a [[[User]]] message and an [[[Assistant]]] answer")
        assistant = _ASSISTANT.search(text)
        if assistant is None:
            raise OutputParseError("the answer has no [[[Assistant]]] part")
        before, after = text[: assistant.start()], text[assistant.end() :]
        users = list(_USER.finditer(before))
        user = before[users[-1].end() :] if users else before
        # A model that goes on to write another turn: keep the first answer only.
        more = _USER.search(after)
        answer = after[: more.start()] if more else after
        user, answer = user.strip(), answer.strip()
        if not user:
            raise OutputParseError("the answer has no [[[User]]] message before the assistant's")
        if not answer:
            raise OutputParseError("the answer's [[[Assistant]]] part is empty")
        return {"user": user, "assistant": answer}
