"""EvolInstruct, EvolComplexity and EvolQuality: prompts, parsing, rounds, and runs."""

from __future__ import annotations

import threading
from typing import Any

import anyio
import pytest

from synthflow.errors import OutputParseError
from synthflow.models.llms.base import ChatType
from synthflow.models.llms.openai import OpenAILLM
from synthflow.pipeline import Pipeline
from synthflow.steps import LoadDataFromDicts
from synthflow.steps.tasks import ERROR_COLUMN, EvolComplexity, EvolInstruct, EvolQuality
from synthflow.steps.tasks.evolution import (
    IN_DEPTH_TEMPLATES,
    MUTATION_TEMPLATES,
    QUALITY_TEMPLATES,
)
from synthflow.testing import FunctionLLM
from tests.servers import Reply, Request, fake_api


def prompt_of(messages: ChatType) -> str:
    """The text being evolved, read back out of a mutation prompt."""
    content = str(messages[-1]["content"])
    return content.rsplit("Prompt:\n", 1)[1].split("\n\n", 1)[0]


def harder(messages: ChatType) -> str:
    """A model that evolves a prompt by adding a sentence, and answers plain questions."""
    content = str(messages[-1]["content"])
    if "New prompt:" not in content:
        return f"Answer to: {content}"
    return f"#Rewritten Prompt#:\n{prompt_of(messages)} Justify it."


def test_in_depth_constraints_prompt() -> None:
    task = EvolInstruct(
        llm=FunctionLLM(fn=harder),
        num_evolutions=1,
        mutation_templates={"CONSTRAINTS": MUTATION_TEMPLATES["CONSTRAINTS"]},
    )
    assert task.format_input({"instruction": "Name a prime number."}) == [
        {
            "role": "user",
            "content": "You are a prompt rewriter. Rewrite the prompt below into a harder "
            "version of itself: one that makes well-known AI assistants such as ChatGPT and "
            "GPT-4 work harder, while a person can still understand it and answer it.\n\n"
            "How to make it harder: add one more constraint or requirement that the answer has "
            "to meet.\n\n"
            "Rules:\n"
            "- Keep what the prompt asks for, and keep any table, code or other non-text part "
            "of it as it is.\n"
            "- Add at most 10 to 20 words; stay as concise as the original.\n"
            "- Write only the new prompt: don't explain the change or refer to the original.\n\n"
            "Prompt:\nName a prime number.\n\nNew prompt:",
        }
    ]


def test_default_templates_are_the_papers_mutations() -> None:
    assert set(MUTATION_TEMPLATES) == {
        "CONSTRAINTS",
        "DEEPENING",
        "CONCRETIZING",
        "INCREASED_REASONING_STEPS",
        "BREADTH",
    }
    assert set(EvolComplexity(llm=FunctionLLM(fn=harder), num_evolutions=1).mutation_templates) == (
        set(IN_DEPTH_TEMPLATES)
    )
    assert "in the same domain, on a rarer" in MUTATION_TEMPLATES["BREADTH"]


def test_quality_prompt_holds_instruction_and_response() -> None:
    task = EvolQuality(
        llm=FunctionLLM(fn=harder),
        num_evolutions=1,
        mutation_templates={"DETAILS": QUALITY_TEMPLATES["DETAILS"]},
    )
    content = task.format_input({"instruction": "What is 2+2?", "response": "4"})[0]["content"]
    assert content == (
        "You are improving an AI assistant's answer. Rewrite the response below into a better "
        "answer to the user's prompt: give it more concrete details. It must stay a direct "
        "answer to the prompt, as the user would want to read it.\n\n"
        "Write only the new response, without commenting on the change.\n\n"
        "Prompt:\nWhat is 2+2?\n\nResponse:\n4\n\nNew response:"
    )


@pytest.mark.parametrize(
    ("answer", "expected"),
    [
        ("Name a prime number greater than 100.", "Name a prime number greater than 100."),
        ("New prompt: Name a prime above 100.", "Name a prime above 100."),
        ("#Rewritten Prompt#:\nName two primes.", "Name two primes."),
        ('Sure! Here it is.\n\n**New Prompt:** "List three primes."', "List three primes."),
        ("```\nName a twin prime pair.\n```", "Name a twin prime pair."),
        ("Rewritten prompt:\n\nName a prime; explain why it is prime.", None),
    ],
)
def test_parse_evolved_instruction(answer: str, expected: str | None) -> None:
    task = EvolInstruct(llm=FunctionLLM(fn=harder), num_evolutions=1)
    got = task.parse_evolution(answer, "Name a prime number.")
    assert got == (expected or "Name a prime; explain why it is prime.")


@pytest.mark.parametrize(
    ("answer", "error"),
    [
        (None, "no text"),
        ("   ", "no text"),
        ("```\n```", "empty code block"),
        ("...!?", "no words"),
        ("I'm sorry, but I can't make this prompt harder.", "declined"),
        ("The #Given Prompt# asks for a prime number.", "repeats the rewriting template"),
        ("New prompt:  Name a  prime number. ", "same as its input"),
    ],
)
def test_evolution_answers_that_fail_the_papers_elimination_rules(
    answer: str | None, error: str
) -> None:
    task = EvolInstruct(llm=FunctionLLM(fn=harder), num_evolutions=1)
    with pytest.raises(OutputParseError, match=error):
        task.parse_evolution(answer, "Name a prime number.")


def test_templates_must_mark_where_the_text_goes() -> None:
    with pytest.raises(ValueError, match="has no '<PROMPT>'"):
        EvolInstruct(llm=FunctionLLM(fn=harder), num_evolutions=1, mutation_templates={"A": "x"})
    with pytest.raises(ValueError, match="has no '<RESPONSE>'"):
        EvolQuality(
            llm=FunctionLLM(fn=harder), num_evolutions=1, mutation_templates={"A": "<PROMPT>"}
        )


def run_rows(task: Any, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    with Pipeline(name="evol") as pipeline:
        LoadDataFromDicts(data=rows) >> task
    distiset = pipeline.run(progress=False)
    return [dict(r) for r in distiset["default"]["train"]]


def test_rounds_build_on_each_other_and_answers_come_with_them() -> None:
    task = EvolInstruct(
        name="evol",
        llm=FunctionLLM(fn=harder),
        num_evolutions=3,
        store_evolutions=True,
        include_original_instruction=True,
        generate_answers=True,
    )
    [row] = run_rows(task, [{"instruction": "Add 2 and 3."}])
    assert row["evolved_instructions"] == [
        "Add 2 and 3.",
        "Add 2 and 3. Justify it.",
        "Add 2 and 3. Justify it. Justify it.",
        "Add 2 and 3. Justify it. Justify it. Justify it.",
    ]
    assert row["answers"] == [f"Answer to: {i}" for i in row["evolved_instructions"]]
    assert row["model_name"] == "function-llm"


def test_last_round_only_by_default() -> None:
    task = EvolInstruct(name="evol", llm=FunctionLLM(fn=harder), num_evolutions=2)
    [row] = run_rows(task, [{"instruction": "Add 2 and 3."}])
    assert row["evolved_instruction"] == "Add 2 and 3. Justify it. Justify it."
    assert "answer" not in row and "evolved_instructions" not in row


def test_mutations_are_drawn_per_row_and_repeat_with_the_seed() -> None:
    seen: list[str] = []

    def record(messages: ChatType) -> str:
        content = str(messages[-1]["content"])
        seen.append(
            next(n for n, t in MUTATION_TEMPLATES.items() if t.split("<PROMPT>")[0] in content)
        )
        return f"{prompt_of(messages)} More."

    rows = [{"instruction": f"Task number {i}."} for i in range(12)]
    run_rows(EvolInstruct(name="evol", llm=FunctionLLM(fn=record), num_evolutions=2), rows)
    first = sorted(seen)
    assert len(set(first)) > 2  # several mutations drawn across rows and rounds
    seen.clear()
    run_rows(EvolInstruct(name="evol", llm=FunctionLLM(fn=record), num_evolutions=2), rows)
    assert sorted(seen) == first


def test_a_bad_round_fails_only_its_row() -> None:
    def refuses_primes(messages: ChatType) -> str:
        if "prime" in prompt_of(messages):
            return "Sorry, I can't do that."
        return harder(messages)

    task = EvolInstruct(name="evol", llm=FunctionLLM(fn=refuses_primes), num_evolutions=2)
    rows = run_rows(task, [{"instruction": "Name a prime."}, {"instruction": "Add 2 and 3."}])
    assert rows[0]["evolved_instruction"] is None
    assert rows[0][ERROR_COLUMN].startswith("evol: OutputParseError: the model declined")
    assert rows[0]["synthflow_metadata"]["raw_output_evol"] == "Sorry, I can't do that."
    assert rows[1]["evolved_instruction"] == "Add 2 and 3. Justify it. Justify it."


def test_rows_evolve_concurrently_without_a_batch_barrier() -> None:
    """Round 2 of a fast row doesn't wait for round 1 of a slow one."""
    order: list[str] = []

    async def slow_first(messages: ChatType) -> str:
        text = prompt_of(messages)
        if text.startswith("slow"):
            await anyio.sleep(0.3)
        order.append(text)
        return f"{text} More."

    task = EvolInstruct(name="evol", llm=FunctionLLM(fn=slow_first), num_evolutions=2)
    run_rows(task, [{"instruction": "slow one."}, {"instruction": "fast one."}])
    assert order[:2] == ["fast one.", "fast one. More."]


def test_evol_quality_rewrites_the_response() -> None:
    def improve(messages: ChatType) -> str:
        content = str(messages[-1]["content"])
        response = content.rsplit("Response:\n", 1)[1].split("\n\nNew response:")[0]
        return f"New response:\n{response}!"

    task = EvolQuality(
        name="evol", llm=FunctionLLM(fn=improve), num_evolutions=2, store_evolutions=True
    )
    [row] = run_rows(task, [{"instruction": "What is 2+2?", "response": "4"}])
    assert row["evolved_responses"] == ["4!", "4!!"]


def test_evol_instruct_against_an_openai_compatible_server() -> None:
    """Three calls per row on the wire (two rounds and the answer), through the run's cache:
    a second run sends none."""
    lock = threading.Lock()
    calls: list[str] = []

    def handler(request: Request) -> Reply:
        content = request.json["messages"][-1]["content"]
        with lock:
            calls.append(content)
        text = harder([{"role": "user", "content": content}])
        return Reply(
            body={
                "id": "x",
                "object": "chat.completion",
                "model": "gpt-4o-mini",
                "choices": [
                    {
                        "index": 0,
                        "message": {"role": "assistant", "content": text},
                        "finish_reason": "stop",
                    }
                ],
                "usage": {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15},
            }
        )

    with fake_api(handler) as api:

        def build() -> Pipeline:
            with Pipeline(name="evol-http") as pipeline:
                llm = OpenAILLM(model="gpt-4o-mini", base_url=f"{api.url}/v1", api_key="sk-t")
                LoadDataFromDicts(data=[{"instruction": "Add 2 and 3."}]) >> EvolInstruct(
                    name="evol", llm=llm, num_evolutions=2, generate_answers=True
                )
            return pipeline

        distiset = build().run(progress=False)
        again = build().run(progress=False)
    [row] = list(distiset["default"]["train"])
    assert row["evolved_instruction"] == "Add 2 and 3. Justify it. Justify it."
    assert row["answer"] == "Answer to: Add 2 and 3. Justify it. Justify it."
    assert row["synthflow_metadata"]["statistics_evol"] == {"input_tokens": 30, "output_tokens": 15}
    assert len(calls) == 3
    assert next(iter(again["default"]["train"]))["answer"] == row["answer"]
