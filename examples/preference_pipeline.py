"""The preference pipeline: two models answer, a third rates them, the best and worst become a
DPO pair.

    python examples/preference_pipeline.py [--save-yaml examples/preference_pipeline.yaml]

Each instruction is answered by two LLMs; ``GroupColumns`` gathers their answers (and the names
of the models that wrote them) into lists; ``UltraFeedback`` rates every answer from 1 to 5
(Cui et al., arXiv:2310.01377); ``FormatTextGenerationDPO`` makes the best rated answer
``chosen`` and the worst ``rejected``. The judge is held to a JSON schema with one rating and
one rationale per answer (``structured_output``), which the API's JSON-schema mode enforces and
the built-in offline LLM follows too. It calls an OpenAI-compatible endpoint when
OPENAI_API_KEY (and optionally OPENAI_BASE_URL, SYNTHFLOW_MODEL, SYNTHFLOW_SECOND_MODEL and
SYNTHFLOW_JUDGE_MODEL) is set, and offline LLMs otherwise. The same pipeline is saved as YAML
beside this file; run that one with

    synthflow pipeline run --config examples/preference_pipeline.yaml --output out/
"""

from __future__ import annotations

import os
import sys
from typing import Annotated, Any

from pydantic import BaseModel, Field

from synthflow.llms import LLM, OfflineLLM
from synthflow.pipeline import Pipeline
from synthflow.steps import FormatTextGenerationDPO, GroupColumns, LoadDataFromDicts
from synthflow.steps.tasks import TextGeneration, UltraFeedback

ANSWERS = 2  # one per generating LLM: the judge's schema asks for a rating of each


class Ratings(BaseModel):
    ratings: list[Annotated[int, Field(ge=1, le=5)]] = Field(
        min_length=ANSWERS, max_length=ANSWERS, description="1-5 for each text, in order"
    )
    rationales: list[str] = Field(
        min_length=ANSWERS, max_length=ANSWERS, description="Why each text got its rating"
    )


def pick_llm(model_variable: str, default_model: str, offline_name: str, **settings: Any) -> LLM:
    if os.environ.get("OPENAI_API_KEY"):
        from synthflow.llms import OpenAILLM

        model = os.environ.get(model_variable, default_model)
        return OpenAILLM(model=model, **settings)
    return OfflineLLM(model=offline_name, latency=0.01, **settings)


with Pipeline(
    name="preference-pipeline", description="Two answers per instruction, rated, as DPO pairs."
) as pipeline:
    load_dataset = LoadDataFromDicts(
        name="load_dataset",
        data=[
            {"instruction": "Write a short story about a dragon that saves a princess."},
            {"instruction": "Explain why the sky is blue to a ten-year-old."},
            {"instruction": "Give three tips for writing clear error messages."},
            {"instruction": "What is the difference between a list and a tuple in Python?"},
        ],
    )
    generate = [
        TextGeneration(
            name="text_generation_a",
            llm=pick_llm("SYNTHFLOW_MODEL", "gpt-4o-mini", "offline-a"),
        ),
        TextGeneration(
            name="text_generation_b",
            llm=pick_llm("SYNTHFLOW_SECOND_MODEL", "gpt-4.1-mini", "offline-b"),
        ),
    ]
    group = GroupColumns(
        name="group_generations",
        columns=["generation", "model_name"],
        output_columns=["generations", "generation_models"],
    )
    ultrafeedback = UltraFeedback(
        name="ultrafeedback",
        aspect="overall-rating",
        llm=pick_llm("SYNTHFLOW_JUDGE_MODEL", "gpt-4o", "offline-judge", structured_output=Ratings),
    )
    format_dpo = FormatTextGenerationDPO(name="format_dpo")
    load_dataset >> generate >> group >> ultrafeedback >> format_dpo


if __name__ == "__main__":
    if sys.argv[1:2] == ["--save-yaml"]:
        print(f"saved to {pipeline.save(sys.argv[2])}")
        sys.exit(0)
    distiset = pipeline.run(
        parameters={
            name: {"llm": {"generation_kwargs": {"temperature": 0.7}}}
            for name in ("text_generation_a", "text_generation_b")
        }
    )
    rows = distiset["default"]["train"]
    for row in rows:
        print(
            f"- {row['prompt']}\n  chosen: {row['chosen_model']} ({row['chosen_rating']}), "
            f"rejected: {row['rejected_model']} ({row['rejected_rating']})"
        )
    print(f"{len(rows)} rows, columns: {', '.join(rows.column_names)}")
    print(distiset.failure_summary() or "no failed rows")
