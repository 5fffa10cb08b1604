"""Ready-made pipelines, as distilabel's ``distilabel.pipeline`` templates."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from synthflow.pipeline.pipeline import Pipeline

if TYPE_CHECKING:
    from synthflow.distiset import Distiset
    from synthflow.models.llms.base import LLM

DEFAULT_MODEL = "meta-llama/Meta-Llama-3.1-8B-Instruct"


class InstructionResponsePipeline:
    """Instruction and response pairs (or conversations, with ``n_turns > 1``) for a system
    prompt, made by Magpie: the model writes the user turns itself when given only the start
    of a chat template (Xu et al., "Magpie: Alignment Data Synthesis from Scratch by Prompting
    Aligned LLMs with Nothing", arXiv:2406.08464).

    The pipeline is one ``MagpieGenerator`` source named ``magpie``; ``.pipeline`` is it, and
    ``run(**kwargs)`` runs it. Without ``llm``, it uses ``InferenceEndpointsLLM`` with
    ``DEFAULT_MODEL`` and ``hf_token`` (or ``$HF_TOKEN``).
    """

    def __init__(
        self,
        llm: LLM | None = None,
        system_prompt: str = "You are a creative AI Assistant writer.",
        hf_token: str | None = None,
        n_turns: int = 1,
        num_rows: int = 10,
        batch_size: int = 1,
    ) -> None:
        from synthflow.steps import tasks

        magpie = getattr(tasks, "MagpieGenerator", None)
        if magpie is None:
            raise NotImplementedError(
                "InstructionResponsePipeline needs MagpieGenerator, which arrives with the task "
                "catalog (open issue 10); build the pipeline from your own steps until then"
            )
        self.llm: LLM = llm if llm is not None else _default_llm(hf_token)
        with Pipeline(name="instruction-response") as self.pipeline:
            magpie(
                name="magpie",
                llm=self.llm,
                system_prompt=system_prompt,
                n_turns=n_turns,
                num_rows=num_rows,
                batch_size=batch_size,
            )

    def run(self, **kwargs: Any) -> Distiset:
        """``pipeline.run(**kwargs)``."""
        return self.pipeline.run(**kwargs)


def _default_llm(hf_token: str | None) -> LLM:
    from synthflow.models.llms import InferenceEndpointsLLM

    kwargs: dict[str, Any] = {
        "model": DEFAULT_MODEL,
        "generation_kwargs": {"temperature": 0.9, "max_new_tokens": 2048},
    }
    if hf_token is not None:
        kwargs["api_key"] = hf_token
    if "magpie_pre_query_template" in InferenceEndpointsLLM.model_fields:
        kwargs["magpie_pre_query_template"] = "llama3"
    return InferenceEndpointsLLM(**kwargs)
