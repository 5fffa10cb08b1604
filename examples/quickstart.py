"""The quickstart: load instructions, generate answers, and shout them.

    python examples/quickstart.py

It calls an OpenAI-compatible endpoint when OPENAI_API_KEY (and optionally OPENAI_BASE_URL and
SYNTHFLOW_MODEL) is set, and the built-in offline LLM otherwise, so it runs anywhere.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

from synthflow.models.llms import LLM, OfflineLLM
from synthflow.pipeline import Pipeline
from synthflow.steps import LoadDataFromDicts, StepInput, step
from synthflow.steps.base import Row
from synthflow.steps.tasks import TextGeneration


def pick_llm() -> LLM:
    if os.environ.get("OPENAI_API_KEY"):
        from synthflow.models.llms import OpenAILLM

        return OpenAILLM(model=os.environ.get("SYNTHFLOW_MODEL", "gpt-4o-mini"))
    return OfflineLLM(latency=0.05)


@step(inputs=["generation"], outputs=["shout"])
def Shout(inputs: StepInput) -> Iterator[list[Row]]:
    for row in inputs:
        row["shout"] = (row["generation"] or "").upper()
    yield inputs


with Pipeline(name="quickstart", description="Answer instructions, then shout.") as pipeline:
    load = LoadDataFromDicts(
        name="load_dataset",
        data=[
            {"instruction": "Write a short story about a dragon that saves a princess."},
            {"instruction": "Explain backpressure in one paragraph."},
            {"instruction": "Give three tips for writing clear error messages."},
        ],
    )
    generate = TextGeneration(name="text_generation", llm=pick_llm())
    shout = Shout(name="shout")
    load >> generate >> shout


if __name__ == "__main__":
    distiset = pipeline.run(
        parameters={
            "text_generation": {"llm": {"generation_kwargs": {"temperature": 0.7}}},
        }
    )
    print(distiset)
    for row in distiset["default"]["train"]:
        print(f"- {row['instruction']}\n  -> {row['generation']}")
