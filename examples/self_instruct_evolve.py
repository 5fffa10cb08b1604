"""Self-instruct, then evolve: new instructions from seed inputs, made harder à la WizardLM.

    python examples/self_instruct_evolve.py [--save-yaml examples/self_instruct_evolve.yaml]

``SelfInstruct`` writes instructions for an application from each seed input (Wang et al.,
arXiv:2212.10560), ``ExpandColumns`` gives each instruction its own row, and ``EvolInstruct``
rewrites each one twice, each round more demanding (Xu et al., WizardLM, arXiv:2304.12244).
It calls an OpenAI-compatible endpoint when OPENAI_API_KEY (and optionally OPENAI_BASE_URL and
SYNTHFLOW_MODEL) is set, and the built-in offline LLM otherwise, so it runs anywhere. The same
pipeline is saved as YAML beside this file; run that one with

    synthflow pipeline run --config examples/self_instruct_evolve.yaml --output out/
"""

from __future__ import annotations

import os
import sys

from synthflow.llms import LLM, OfflineLLM
from synthflow.pipeline import Pipeline
from synthflow.steps import ExpandColumns, KeepColumns, LoadDataFromDicts
from synthflow.steps.tasks import EvolInstruct, SelfInstruct


def pick_llm() -> LLM:
    if os.environ.get("OPENAI_API_KEY"):
        from synthflow.llms import OpenAILLM

        return OpenAILLM(model=os.environ.get("SYNTHFLOW_MODEL", "gpt-4o-mini"))
    return OfflineLLM(latency=0.01)


with Pipeline(
    name="self-instruct-evolve", description="Instructions from seeds, evolved twice."
) as pipeline:
    seeds = LoadDataFromDicts(
        name="seeds",
        data=[
            {"input": "Reading a CSV file of sales figures and summarising it."},
            {"input": "Planning a week of vegetarian dinners on a budget."},
            {"input": "Debugging a Python script that runs out of memory."},
        ],
    )
    self_instruct = SelfInstruct(
        name="self_instruct",
        llm=pick_llm(),
        num_instructions=3,
        application_description="An AI assistant that helps people with everyday tasks.",
    )
    one_per_row = ExpandColumns(name="one_per_row", columns={"instructions": "instruction"})
    evolve = EvolInstruct(name="evolve", llm=pick_llm(), num_evolutions=2)
    keep = KeepColumns(
        name="keep", columns=["input", "instruction", "evolved_instruction", "model_name"]
    )
    seeds >> self_instruct >> one_per_row >> evolve >> keep


if __name__ == "__main__":
    if sys.argv[1:2] == ["--save-yaml"]:
        print(f"saved to {pipeline.save(sys.argv[2])}")
        sys.exit(0)
    distiset = pipeline.run()
    rows = distiset["default"]["train"]
    for row in rows:
        print(f"- {row['instruction']}\n  -> {row['evolved_instruction']}")
    print(f"{len(rows)} rows, columns: {', '.join(rows.column_names)}")
    print(distiset.failure_summary() or "no failed rows")
