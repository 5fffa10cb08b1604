"""The Magpie settings distilabel's local and Hugging Face LLMs carry.

Magpie (Xu et al., "Magpie: Alignment Data Synthesis from Scratch by Prompting Aligned LLMs with
Nothing", arXiv:2406.08464) sends an aligned model only the start of a user turn from its chat
template (the pre-query template) so that it writes an instruction. The settings live on the
LLM, as in distilabel; the Magpie tasks read them, and other tasks ignore them.
"""

from __future__ import annotations

from pydantic import BaseModel, Field


class MagpieSettings(BaseModel):
    """``use_magpie_template`` and ``magpie_pre_query_template``, for the Magpie tasks."""

    use_magpie_template: bool = Field(
        default=False, description="Magpie: send only the pre-query template (Magpie tasks)."
    )
    magpie_pre_query_template: str | None = Field(
        default=None,
        description="Magpie's pre-query template: 'llama3', 'qwen2' or the template text.",
    )
