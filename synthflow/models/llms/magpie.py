"""Magpie in the LLM layer: writing the next *user* turn of a conversation.

Magpie (Xu et al., "Magpie: Alignment Data Synthesis from Scratch by Prompting Aligned LLMs with
Nothing", arXiv:2406.08464) sends an aligned model only the start of a user turn from its chat
template (the pre-query template), as raw text to complete: the model, trained to continue such
text with a user's request, writes one. That needs a raw-completion route, which chat-only APIs
(OpenAI's own, Anthropic, Gemini, Cohere) don't have.

- ``MagpieSettings`` holds distilabel's two settings (``use_magpie_template``,
  ``magpie_pre_query_template``) on the LLMs that carry them.
- ``UserTurnWriter`` is the capability: ``agenerate_user_turn(messages)`` completes the raw
  prompt "the conversation so far, then the pre-query template". ``ClientvLLM`` (``/completions``
  on any OpenAI-compatible server), ``InferenceEndpointsLLM`` (TGI's raw ``/generate`` route),
  the local ``TransformersLLM``, ``vLLM`` and ``MlxLLM``, and the test doubles have it.
- ``magpie_problem(llm)`` says, in one line, why an LLM can't (the Magpie tasks refuse it when
  they are built, before any run).

The assistant turns of a Magpie conversation are ordinary chat calls (``agenerate``).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, Field

from synthflow.errors import LLMError

if TYPE_CHECKING:
    from synthflow.models.llms.base import ChatType, GenerateOutput

PRE_QUERY_TEMPLATES: dict[str, str] = {
    "llama3": "<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\n",
    "qwen2": "<|im_start|>user\n",
}
"""The start of a user turn in the Llama 3 and Qwen 2 chat formats, by distilabel's names."""

END_OF_TURN_MARKERS = ("<|eot_id|>", "<|im_end|>", "<|end_of_text|>", "<|endoftext|>", "</s>")
"""Where a written turn ends, when a server returns the special tokens as text."""


class MagpieSettings(BaseModel):
    """``use_magpie_template`` and ``magpie_pre_query_template``, for the Magpie tasks."""

    use_magpie_template: bool = Field(
        default=False, description="Magpie: send only the pre-query template (Magpie tasks)."
    )
    magpie_pre_query_template: str | None = Field(
        default=None,
        description="Magpie's pre-query template: 'llama3', 'qwen2' or the template text.",
    )

    def pre_query_template(self) -> str | None:
        """The template text (a known name resolved)."""
        template = self.magpie_pre_query_template
        return PRE_QUERY_TEMPLATES.get(template, template) if template else None

    def renders_without_tokenizer(self) -> bool:
        """Whether Magpie's prompts need no tokenizer: a known format's template (the Llama 3
        and Qwen 2 formats are rendered here), or none at all (Magpie is not used)."""
        template = self.pre_query_template()
        return template is None or template in PRE_QUERY_TEMPLATES.values()


class UserTurnWriter(ABC):
    """An LLM that can write the next user turn of a conversation from a raw prompt (Magpie)."""

    @abstractmethod
    async def agenerate_user_turn(
        self, messages: ChatType, *, num_generations: int = 1
    ) -> GenerateOutput:
        """``num_generations`` texts of the user turn that follows ``messages`` (empty, or
        ending with a system or assistant message)."""

    def user_turn_problem(self) -> str | None:
        """Why this LLM, as configured, can't write user turns; None when it can."""
        if isinstance(self, MagpieSettings) and self.pre_query_template() is None:
            return (
                f"{type(self).__name__} needs magpie_pre_query_template='llama3', 'qwen2' or "
                "the pre-query template's text for Magpie"
            )
        return None


def magpie_problem(llm: Any) -> str | None:
    """One line saying why ``llm`` can't run Magpie, or None."""
    if isinstance(llm, UserTurnWriter):
        return llm.user_turn_problem()
    name = type(llm).__name__
    return (
        f"{name} can't run Magpie: it needs raw completion, which a chat-only API lacks; use "
        "ClientvLLM(base_url=...) for a vLLM, TGI, llama.cpp or Ollama server (its /v1), "
        "InferenceEndpointsLLM, or "
        "a local TransformersLLM, vLLM or MlxLLM, with magpie_pre_query_template='llama3' or "
        "'qwen2'"
    )


def user_turn_of(llm: Any) -> Callable[..., Awaitable[GenerateOutput]]:
    """``llm.agenerate_user_turn``, or a one-line ``LLMError`` when it can't write user turns."""
    problem = magpie_problem(llm)
    if problem is not None:
        raise LLMError(problem)
    writer: UserTurnWriter = llm
    return writer.agenerate_user_turn


def user_turn_prompt(
    messages: ChatType, template: str, tokenizer: Any = None, *, chat_template: str | None = None
) -> str:
    """The raw prompt whose completion is the user turn after ``messages``: the conversation in
    the model's chat format, then the pre-query ``template``.

    With a ``tokenizer`` (a ``transformers`` tokenizer), its chat template renders the
    conversation (or ``chat_template``, when given); else the Llama 3 and Qwen 2 formats are
    known by their templates. A conversation that is empty needs neither: the prompt is the
    template alone.
    """
    if not messages:
        return template
    if tokenizer is not None:
        rendered = str(
            tokenizer.apply_chat_template(
                messages, chat_template=chat_template, tokenize=False, add_generation_prompt=False
            )
        )
        bos = getattr(tokenizer, "bos_token", None)
        if bos and rendered.startswith(bos) and template.startswith(bos):
            template = template[len(bos) :]  # one beginning of text
        return rendered + template
    if template == PRE_QUERY_TEMPLATES["llama3"]:
        turns = "".join(
            f"<|start_header_id|>{m['role']}<|end_header_id|>\n\n{_text(m)}<|eot_id|>"
            for m in messages
        )
        return f"<|begin_of_text|>{turns}<|start_header_id|>user<|end_header_id|>\n\n"
    if template == PRE_QUERY_TEMPLATES["qwen2"]:
        turns = "".join(f"<|im_start|>{m['role']}\n{_text(m)}<|im_end|>\n" for m in messages)
        return f"{turns}<|im_start|>user\n"
    raise LLMError(
        "Magpie with a system prompt or several turns needs the model's chat format: use "
        "magpie_pre_query_template='llama3' or 'qwen2', or give the LLM its tokenizer "
        "(tokenizer_id= / tokenizer=, with transformers installed)"
    )


def _text(message: dict[str, Any]) -> str:
    content = message.get("content")
    if isinstance(content, list):
        return "".join(str(p.get("text", "")) for p in content if isinstance(p, dict))
    return "" if content is None else str(content)


def load_tokenizer(name: str | None, revision: str | None = None) -> Any:
    """A ``transformers`` tokenizer for rendering chat templates, or None without a name."""
    if not name:
        return None
    try:
        from transformers import AutoTokenizer
    except ImportError:
        raise LLMError(
            f"rendering the chat template of {name!r} needs transformers: pip install "
            "transformers (or leave the tokenizer unset and use magpie_pre_query_template="
            "'llama3' or 'qwen2')"
        ) from None
    return AutoTokenizer.from_pretrained(name, revision=revision)
