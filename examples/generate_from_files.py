"""Generate answers for prompts kept in files, and save the result beside them.

    python examples/generate_from_files.py [out_dir]

Reads ``examples/data/*.jsonl`` (any JSON Lines, CSV or Parquet files work the same), answers
each prompt with two generations, keeps the columns that matter, and saves the Distiset (Parquet,
the pipeline that made it, and a dataset card) to ``out_dir`` (default ``generated/``). Uses an
OpenAI-compatible endpoint when OPENAI_API_KEY is set, the offline LLM otherwise.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from synthflow.models.llms import LLM, OfflineLLM
from synthflow.pipeline import Pipeline
from synthflow.steps import KeepColumns, LoadDataFromFileSystem
from synthflow.steps.tasks import TextGeneration

DATA = Path(__file__).resolve().parent / "data"


def pick_llm() -> LLM:
    if os.environ.get("OPENAI_API_KEY"):
        from synthflow.models.llms import OpenAILLM

        return OpenAILLM(model=os.environ.get("SYNTHFLOW_MODEL", "gpt-4o-mini"))
    return OfflineLLM(latency=0.02)


with Pipeline(name="generate-from-files") as pipeline:
    prompts = LoadDataFromFileSystem(name="prompts", data_files=str(DATA / "*.jsonl"))
    answer = TextGeneration(
        name="answer",
        llm=pick_llm(),
        num_generations=2,
        group_generations=True,  # both answers in one row, as a list
        input_mappings={"instruction": "prompt"},
        output_mappings={"generation": "answers"},
    )
    keep = KeepColumns(name="keep", columns=["id", "prompt", "answers", "model_name"])
    prompts >> answer >> keep


if __name__ == "__main__":
    out_dir = Path(sys.argv[1] if len(sys.argv) > 1 else "generated")
    sampling = {"generation_kwargs": {"temperature": 0.9}}
    distiset = pipeline.run(parameters={"answer": {"llm": sampling}})
    print(f"saved {len(distiset['default']['train'])} rows to {distiset.save_to_disk(out_dir)}")
