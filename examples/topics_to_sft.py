"""From a list of topics to SFT data: self-instruct, evolve, drop near duplicates, format.

    python examples/topics_to_sft.py [--save-yaml examples/topics_to_sft.yaml]

``SelfInstruct`` writes instructions about each topic (Wang et al., arXiv:2212.10560);
``ExpandColumns`` gives each its own row; ``EvolInstruct`` makes each more demanding and answers
the result (Xu et al., WizardLM, arXiv:2304.12244); ``MinHashDedup`` marks instructions that
are near copies of an earlier one (``keep_row_after_minhash_filtering`` is False for them:
filter on it before training); ``FormatTextGenerationSFT`` writes each pair as a chat for
supervised fine-tuning. It calls an OpenAI-compatible endpoint when OPENAI_API_KEY (and
optionally OPENAI_BASE_URL and SYNTHFLOW_MODEL) is set, and the built-in offline LLM otherwise.
The same pipeline is saved as YAML beside this file; run that one with

    synthflow pipeline run --config examples/topics_to_sft.yaml --output out/
"""

from __future__ import annotations

import os
import sys

from synthflow.llms import LLM, OfflineLLM
from synthflow.pipeline import Pipeline
from synthflow.steps import (
    ExpandColumns,
    FormatTextGenerationSFT,
    KeepColumns,
    LoadDataFromDicts,
    MinHashDedup,
)
from synthflow.steps.tasks import EvolInstruct, SelfInstruct

TOPICS = [
    "Photosynthesis",
    "The French Revolution",
    "Binary search trees",
    "Compound interest",
    "Sourdough baking",
]


def pick_llm() -> LLM:
    if os.environ.get("OPENAI_API_KEY"):
        from synthflow.llms import OpenAILLM

        return OpenAILLM(model=os.environ.get("SYNTHFLOW_MODEL", "gpt-4o-mini"))
    return OfflineLLM(latency=0.01)


with Pipeline(name="topics-to-sft", description="Topics to deduplicated SFT chats.") as pipeline:
    topics = LoadDataFromDicts(name="topics", data=[{"input": topic} for topic in TOPICS])
    self_instruct = SelfInstruct(
        name="self_instruct",
        llm=pick_llm(),
        num_instructions=3,
        application_description="A tutor that teaches a topic through questions and tasks.",
    )
    one_per_row = ExpandColumns(name="one_per_row", columns={"instructions": "instruction"})
    evolve = EvolInstruct(name="evolve", llm=pick_llm(), num_evolutions=1, generate_answers=True)
    dedup = MinHashDedup(
        name="dedup", threshold=0.8, input_mappings={"text": "evolved_instruction"}
    )
    format_sft = FormatTextGenerationSFT(
        name="format_sft",
        input_mappings={"instruction": "evolved_instruction", "generation": "answer"},
    )
    keep = KeepColumns(
        name="keep",
        columns=[
            "input",
            "prompt",
            "prompt_id",
            "messages",
            "keep_row_after_minhash_filtering",
            "model_name",
        ],
    )
    topics >> self_instruct >> one_per_row >> evolve >> dedup >> format_sft >> keep


if __name__ == "__main__":
    if sys.argv[1:2] == ["--save-yaml"]:
        print(f"saved to {pipeline.save(sys.argv[2])}")
        sys.exit(0)
    distiset = pipeline.run()
    rows = distiset["default"]["train"]
    unique = [row for row in rows if row["keep_row_after_minhash_filtering"]]
    for row in unique:
        print(f"- [{row['input']}] {row['prompt']}")
    print(f"{len(unique)} of {len(rows)} rows kept after deduplication")
    print(f"{len(rows)} rows, columns: {', '.join(rows.column_names)}")
    print(distiset.failure_summary() or "no failed rows")
