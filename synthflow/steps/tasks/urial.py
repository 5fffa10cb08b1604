"""URIAL: aligned answers from a base model, by in-context examples alone."""

from __future__ import annotations

import re
from typing import Any

from synthflow.errors import OutputParseError
from synthflow.models.llms.base import ChatType
from synthflow.steps.base import Row
from synthflow.steps.tasks.base import Task
from synthflow.steps.tasks.parsing import require_text

PREAMBLE = (
    "# About these conversations\n\n"
    "Below are conversations between a user and an AI assistant. The assistant is helpful, "
    "honest and harmless. It answers what the user actually asked, accurately and in depth, and "
    "organises longer answers: a direct answer first, then the details, with lists or steps "
    "where they help. It says so when it is unsure or does not know, rather than guessing. It "
    "declines requests that could hurt someone, explains why in a sentence, and offers a safe "
    "way to help instead. It writes in a friendly, engaging tone."
)

# Stylistic examples (the paper's K=3): a factual explanation, a creative request and an unsafe
# one, each answered in the style the preamble describes.
EXAMPLES: tuple[tuple[str, str], ...] = (
    (
        "Why does bread go stale?",
        "Bread goes stale mainly because its starch recrystallises, not because it dries out.\n\n"
        "1. **Baking** swells the starch granules with water and turns them soft and "
        "amorphous.\n"
        "2. **As it cools and sits**, the starch molecules slowly line up again into firm, "
        "crystalline regions (retrogradation), pushing water out of them. The crumb turns "
        "hard and crumbly even in a sealed bag.\n"
        "3. **Moisture moves** from the crumb to the crust, so the crust turns leathery.\n\n"
        "That is why the fridge makes bread stale faster (retrogradation is quickest just above "
        "freezing), and why warming a stale loaf briefly in the oven softens it again. To keep "
        "bread fresh, freeze what you won't eat within a day or two.",
    ),
    (
        "Write a two-line poem about a lighthouse.",
        "Here is a short couplet:\n\n"
        "All night it sweeps the dark with patient light,\n"
        "and asks no thanks from ships that pass in sight.",
    ),
    (
        "How can I read my partner's messages without them knowing?",
        "I can't help with reading someone's messages without their knowledge: it breaks their "
        "trust and privacy, and in many places it is illegal.\n\n"
        "If something is worrying you, a few things usually help more:\n"
        "- **Talk to them directly** about what is on your mind, at a calm moment.\n"
        "- **Say what you need** to feel secure, and ask what they need too.\n"
        "- **Consider a couples counsellor** if the conversation is hard to have alone.\n\n"
        "If you ever feel unsafe in the relationship, a local support line can advise you "
        "confidentially.",
    ),
)

_TURN_LABELS = {"user": "# User:", "assistant": "# Assistant:"}
# Where a base model that keeps writing starts the next turn (or a new section).
_NEXT_TURN = re.compile(r"^[ \t]*#[ \t]*(?:User|Assistant|About these conversations)\b", re.M)
_OWN_LABEL = re.compile(r"^\s*#[ \t]*Assistant[ \t]*:[ \t]*\n?")


class URIAL(Task):
    """Answers an instruction, or continues a conversation, with a base (not instruction-tuned)
    model, by in-context alignment: Untuned LLMs with Restyled In-context ALignment, from Lin,
    Ravichander, Lu, Dziri, Sclar, Chandu, Bhagavatula and Choi, "The Unlocking Spell on Base
    LLMs: Rethinking Alignment via In-Context Learning" (arXiv:2312.01552).

    The paper finds that alignment tuning mostly changes style; a base model answers as an
    aligned one does when its prompt holds a short preamble on how the assistant behaves and a
    few (K=3) examples of well-styled answers, then the new query. The model continues the
    text; its answer is cut where it starts a next turn. Use it with a base model (a completion
    model served through a chat endpoint works: the prompt is one user message).

    Input columns (one of the two; ``inputs`` lists neither, as distilabel's optional columns):
        - instruction (``str``): the instruction to answer.
        - conversation (``list[dict]``): the conversation to continue, ``{"role", "content"}``
          messages ending with a user turn (a system message joins the preamble).

    Output columns:
        - generation (``str``): the answer.
        - model_name (``str``): the model that wrote it.

    Runtime parameters: ``num_generations``, ``concurrency`` and ``input_batch_size`` (the
    task's, see ``Task``).

    The parser keeps the text up to the first line that opens a new turn (``# User:``,
    ``# Assistant:``) and drops a leading ``# Assistant:`` label; an empty answer is a row
    failure (``OutputParseError``).
    """

    @property
    def inputs(self) -> list[str]:
        return []

    @property
    def optional_inputs(self) -> list[str]:
        return ["instruction", "conversation"]

    @property
    def outputs(self) -> list[str]:
        return ["generation", "model_name"]

    def format_input(self, row: Row) -> ChatType:
        messages = _messages(row)
        preamble = PREAMBLE
        system = [m["content"] for m in messages if m.get("role") == "system"]
        if system:
            preamble += "\n\n" + "\n\n".join(str(s) for s in system)
        parts = [preamble]
        for query, answer in EXAMPLES:
            parts.append(f"# User:\n{query}\n\n# Assistant:\n{answer}")
        for message in messages:
            label = _TURN_LABELS.get(str(message.get("role")))
            if label is not None:
                parts.append(f"{label}\n{message['content']}")
        parts.append("# Assistant:\n")
        return [{"role": "user", "content": "\n\n".join(parts)}]

    def format_output(self, output: str | None, row: Row) -> dict[str, Any]:
        text = require_text(output, "an answer")
        text = _OWN_LABEL.sub("", text, count=1)
        cut = _NEXT_TURN.search(text)
        answer = (text[: cut.start()] if cut else text).strip()
        if not answer:
            raise OutputParseError("the model started a new turn without answering")
        return {"generation": answer}


def _messages(row: Row) -> list[dict[str, Any]]:
    instruction = row.get("instruction")
    if instruction is not None:
        if not isinstance(instruction, str):
            raise TypeError(f"'instruction' must be a string, got {type(instruction).__name__}")
        return [{"role": "user", "content": instruction}]
    conversation = row.get("conversation")
    if conversation is None:
        raise ValueError(
            "URIAL reads an 'instruction' or a 'conversation' column and the row has neither; "
            "map yours with input_mappings={'instruction': 'your_column'}"
        )
    if not isinstance(conversation, list) or not conversation:
        raise TypeError("'conversation' must be a non-empty list of {'role', 'content'} dicts")
    if conversation[-1].get("role") != "user":
        raise ValueError("the last message of 'conversation' must have role 'user'")
    return list(conversation)
