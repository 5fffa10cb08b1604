"""Training data for a retrieval embedding model: brainstorm tasks, then write examples for each.

    python examples/retrieval_data.py [--save-yaml examples/retrieval_data.yaml]

The two stages of Wang et al., "Improving Text Embeddings with Large Language Models"
(arXiv:2401.00368): ``EmbeddingTaskGenerator`` brainstorms retrieval tasks (one row per task),
then ``GenerateTextRetrievalData`` writes, for each task, a user query, a document that answers
it and a hard negative (a document that looks relevant but doesn't answer it). Both answers are
held to a JSON schema (``structured_output``), which the API's JSON-schema mode enforces and
the built-in offline LLM follows too. It calls an OpenAI-compatible endpoint when
OPENAI_API_KEY (and optionally OPENAI_BASE_URL and SYNTHFLOW_MODEL) is set, and the offline LLM
otherwise. The same pipeline is saved as YAML beside this file; run that one with

    synthflow pipeline run --config examples/retrieval_data.yaml --output out/
"""

from __future__ import annotations

import os
import sys
from typing import Any

from pydantic import BaseModel, Field

from synthflow.llms import LLM, OfflineLLM
from synthflow.pipeline import Pipeline
from synthflow.steps import KeepColumns
from synthflow.steps.tasks import EmbeddingTaskGenerator, GenerateTextRetrievalData


class RetrievalTasks(BaseModel):
    tasks: list[str] = Field(min_length=3, description="One-sentence retrieval tasks")


def pick_llm(**settings: Any) -> LLM:
    if os.environ.get("OPENAI_API_KEY"):
        from synthflow.llms import OpenAILLM

        return OpenAILLM(model=os.environ.get("SYNTHFLOW_MODEL", "gpt-4o-mini"), **settings)
    return OfflineLLM(latency=0.01, **settings)


with Pipeline(name="retrieval-data", description="Retrieval tasks, then examples.") as pipeline:
    brainstorm = EmbeddingTaskGenerator(
        name="brainstorm",
        category="text-retrieval",
        flatten_tasks=True,  # one row per task
        llm=pick_llm(structured_output=RetrievalTasks),
    )
    write_examples = GenerateTextRetrievalData(
        name="write_examples",
        llm=pick_llm(),
        language="English",
        query_length="5 to 15 words",
        use_default_structured_output=True,  # the task's own JSON schema
    )
    keep = KeepColumns(
        name="keep",
        columns=[
            "task",
            "user_query",
            "positive_document",
            "hard_negative_document",
            "model_name",
        ],
    )
    brainstorm >> write_examples >> keep


if __name__ == "__main__":
    if sys.argv[1:2] == ["--save-yaml"]:
        print(f"saved to {pipeline.save(sys.argv[2])}")
        sys.exit(0)
    distiset = pipeline.run()
    rows = distiset["default"]["train"]
    for row in rows:
        print(f"- {row['task']}\n  query: {row['user_query']}")
    print(f"{len(rows)} rows, columns: {', '.join(rows.column_names)}")
    print(distiset.failure_summary() or "no failed rows")
