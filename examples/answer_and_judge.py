"""Answer instructions with one model, then have a second model grade each answer.

    python examples/answer_and_judge.py

Shows the LLM layer at work: two LLMs, a judge held to a JSON schema (a pydantic model) that is
checked and re-asked when an answer breaks it, a rate limit, a cost budget, and the run's
accounting at the end. It calls an OpenAI-compatible endpoint when OPENAI_API_KEY (and
optionally OPENAI_BASE_URL, SYNTHFLOW_MODEL and SYNTHFLOW_JUDGE_MODEL) is set, and the
built-in offline LLM otherwise, whose answers also follow the schema, so it runs anywhere.
Re-running it pays for nothing already answered: the answers come from the response cache.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from typing import Any

from pydantic import BaseModel, Field

from synthflow.models.llms import LLM, OfflineLLM
from synthflow.pipeline import Pipeline
from synthflow.steps import KeepColumns, LoadDataFromDicts, StepInput, step
from synthflow.steps.base import Row
from synthflow.steps.tasks import TextGeneration


class Verdict(BaseModel):
    score: int = Field(ge=1, le=5, description="1 = wrong or useless, 5 = correct and complete")
    reason: str = Field(description="One sentence that justifies the score")


JUDGE_SYSTEM_PROMPT = (
    "You grade answers to instructions. Read the instruction and the answer, decide how well the "
    "answer does what was asked (is it correct, complete and to the point?), and reply with JSON "
    'only: {"score": <1-5>, "reason": "<one sentence>"}.'
)


def pick_llm(model_variable: str, default_model: str, **settings: Any) -> LLM:
    if os.environ.get("OPENAI_API_KEY"):
        from synthflow.models.llms import OpenAILLM

        model = os.environ.get(model_variable, default_model)
        return OpenAILLM(model=model, requests_per_minute=500, **settings)
    return OfflineLLM(latency=0.05, **settings)


@step(inputs=["instruction", "generation"], outputs=["judge_prompt"])
def AskForAGrade(inputs: StepInput) -> Iterator[list[Row]]:
    for row in inputs:
        row["judge_prompt"] = (
            f"Instruction:\n{row['instruction']}\n\nAnswer:\n{row['generation'] or '(none)'}"
        )
    yield inputs


@step(inputs=["verdict"], outputs=["score", "reason"])
def ReadVerdict(inputs: StepInput) -> Iterator[list[Row]]:
    for row in inputs:
        verdict = json.loads(row["verdict"]) if row["verdict"] else {}
        row["score"] = verdict.get("score")
        row["reason"] = verdict.get("reason")
    yield inputs


with Pipeline(name="answer-and-judge", description="Answer, then grade each answer.") as pipeline:
    load = LoadDataFromDicts(
        name="instructions",
        data=[
            {"instruction": "Explain what a token bucket rate limiter does, in two sentences."},
            {"instruction": "Name three ways to make a Python service use less memory."},
            {"instruction": "Why does a 429 response often come with a Retry-After header?"},
            {"instruction": "Write a haiku about a queue that is always full."},
        ],
    )
    answer = TextGeneration(
        name="answer", llm=pick_llm("SYNTHFLOW_MODEL", "gpt-4o-mini"), concurrency=16
    )
    ask = AskForAGrade(name="ask_for_a_grade")
    judge = TextGeneration(
        name="judge",
        llm=pick_llm("SYNTHFLOW_JUDGE_MODEL", "gpt-4o", structured_output=Verdict),
        system_prompt=JUDGE_SYSTEM_PROMPT,
        input_mappings={"instruction": "judge_prompt"},
        output_mappings={"generation": "verdict", "model_name": "judge_model"},
    )
    read = ReadVerdict(name="read_verdict")
    keep = KeepColumns(
        name="keep",
        columns=["instruction", "generation", "model_name", "score", "reason", "judge_model"],
    )
    load >> answer >> ask >> judge >> read >> keep


if __name__ == "__main__":
    distiset = pipeline.run(
        parameters={"answer": {"llm": {"generation_kwargs": {"temperature": 0.7}}}},
        max_cost=1.00,  # USD, by the price table: no new call starts past it
    )
    for row in distiset["default"]["train"]:
        print(f"[{row['score']}] {row['instruction']}\n    {row['reason']}")
    usage = distiset.llm_usage()
    print(
        f"{usage.requests} requests, {usage.cache_hits} from the cache, "
        f"{usage.input_tokens} + {usage.output_tokens} tokens"
    )
