"""EvolInstructGenerator and EvolComplexityGenerator: instructions evolved from seed words."""

from __future__ import annotations

from typing import Any

import anyio
import pytest

from synthflow.errors import OutputParseError
from synthflow.llms import ChatType
from synthflow.pipeline import Pipeline
from synthflow.serialization import to_text
from synthflow.steps.tasks import (
    ERROR_COLUMN,
    EvolComplexityGenerator,
    EvolInstructGenerator,
    GeneratorTask,
)
from synthflow.steps.tasks.evolution import IN_DEPTH_TEMPLATES, MUTATION_TEMPLATES
from synthflow.steps.tasks.evolution_generators import FRESH_START
from synthflow.testing import FunctionLLM, OfflineLLM


def rows_of(distiset: Any, name: str = "default") -> list[dict[str, Any]]:
    return [dict(row) for row in distiset[name]["train"]]


def run(step: GeneratorTask) -> list[dict[str, Any]]:
    with Pipeline(name="evol-generators") as pipeline:
        pipeline.add_step(step)
    return rows_of(pipeline.run(use_cache=False, progress=False))


def growing(messages: ChatType) -> str:
    """A model that writes a short question, then adds a clause to it every round."""
    prompt = str(messages[-1]["content"])
    if prompt.startswith("Make up one question"):
        words = prompt.split("these words: ", 1)[1].split("\n", 1)[0]
        return f"How do {words} relate?"
    if "New prompt:" in prompt:
        original = prompt.rsplit("Prompt:\n", 1)[1].split("\n\nNew prompt:")[0]
        return f"New prompt: {original} Explain each step in detail."
    return f"An answer to: {prompt}"


# -- prompts -----------------------------------------------------------------------------------


def test_first_call_is_a_fresh_start_from_seed_words() -> None:
    task = EvolInstructGenerator(llm=OfflineLLM(), num_instructions=3, seed=1)
    (message,) = task.format_input({})
    assert message["role"] == "user"
    head, words = str(message["content"]).split("at least one of these words: ")
    assert head == (
        "Make up one question or request that a person could put to an AI assistant. "
        "Build it around "
    )
    assert words.endswith("\n\nWrite only the question or request, with no introduction.")
    assert 1 <= len(words.split("\n")[0].split(", ")) <= 4
    # The draw is the seed's: the same on every call and for another instance.
    again = EvolInstructGenerator(llm=OfflineLLM(), num_instructions=3, seed=1)
    assert again.format_input({}) == task.format_input({})


def test_default_templates_reuse_the_evolution_prompts() -> None:
    instruct = EvolInstructGenerator(llm=OfflineLLM(), num_instructions=1)
    complexity = EvolComplexityGenerator(llm=OfflineLLM(), num_instructions=1)
    assert {k: v for k, v in instruct.mutation_templates.items() if k != FRESH_START} == (
        MUTATION_TEMPLATES
    )
    assert {k: v for k, v in complexity.mutation_templates.items() if k != FRESH_START} == (
        IN_DEPTH_TEMPLATES
    )


def test_templates_need_a_fresh_start_and_a_slot() -> None:
    with pytest.raises(ValueError, match="FRESH_START"):
        EvolInstructGenerator(llm=OfflineLLM(), num_instructions=1, mutation_templates={"A": "x"})
    with pytest.raises(ValueError, match="<PROMPT>"):
        EvolInstructGenerator(
            llm=OfflineLLM(),
            num_instructions=1,
            mutation_templates={FRESH_START: "Words: <PROMPT>", "A": "no slot"},
        )


def test_columns_follow_generate_answers() -> None:
    task = EvolInstructGenerator(llm=OfflineLLM(), num_instructions=1)
    assert task.inputs == [] and task.outputs == ["instruction", "model_name"]
    task = EvolComplexityGenerator(llm=OfflineLLM(), num_instructions=1, generate_answers=True)
    assert task.outputs == ["instruction", "model_name", "answer"]


# -- parsing -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("answer", "expected"),
    [
        ("How do tides work?", "How do tides work?"),
        ('"How do tides work?"', "How do tides work?"),
        ("New prompt: How do tides work?", "How do tides work?"),
        ("**Rewritten Prompt:** How do tides work?", "How do tides work?"),
        ("```\nHow do tides work?\n```", "How do tides work?"),
    ],
)
def test_reads_instructions_as_models_write_them(answer: str, expected: str) -> None:
    task = EvolInstructGenerator(llm=OfflineLLM(), num_instructions=1)
    assert task.format_output(answer, {}) == {"instruction": expected}


@pytest.mark.parametrize(
    "answer",
    [None, "", "   ", "```\n```", "?!...", "Sorry, I can't help with that.", "#The Given Prompt#"],
)
def test_unreadable_instructions_raise_output_parse_error(answer: str | None) -> None:
    task = EvolInstructGenerator(llm=OfflineLLM(), num_instructions=1)
    with pytest.raises(OutputParseError):
        task.format_output(answer, {})


def test_a_mutation_equal_to_its_input_is_unreadable() -> None:
    task = EvolInstructGenerator(llm=OfflineLLM(), num_instructions=1)
    with pytest.raises(OutputParseError, match="same as its input"):
        task.parse_instruction("New prompt: How  do tides work?", "How do tides work?")


# -- runs --------------------------------------------------------------------------------------


def test_evolves_each_row_until_its_length_is_within_bounds() -> None:
    task = EvolInstructGenerator(
        name="evol",
        llm=FunctionLLM(fn=growing),
        num_instructions=4,
        min_length=80,
        max_length=400,
        generate_answers=True,
    )
    rows = run(task)
    assert len(rows) == 4
    for row in rows:
        assert 80 <= len(row["instruction"]) <= 400
        assert row["instruction"].startswith("How do ")
        assert "Explain each step in detail." in row["instruction"]
        assert row["answer"] == f"An answer to: {row['instruction']}"
        assert row["model_name"] == "function-llm"
        assert "statistics_evol" in row["synthflow_metadata"]
    assert len({row["instruction"] for row in rows}) == 4  # each row its own seed words


def test_a_row_that_never_reaches_the_bounds_fails_alone() -> None:
    def stuck(messages: ChatType) -> str:
        prompt = str(messages[-1]["content"])
        return "Short?" if prompt.startswith("Make up") else "Sorry, I cannot."

    rows = run(
        EvolComplexityGenerator(
            name="evol", llm=FunctionLLM(fn=stuck), num_instructions=2, num_evolutions=3
        )
    )
    assert len(rows) == 2
    for row in rows:
        assert row["instruction"] is None and row["model_name"] == "function-llm"
        assert "after 3 mutation rounds" in row[ERROR_COLUMN]
        assert row["synthflow_metadata"]["raw_output_evol"] == "Sorry, I cannot."


def test_a_text_past_max_length_starts_over() -> None:
    calls: list[str] = []

    def long_then_fit(messages: ChatType) -> str:
        prompt = str(messages[-1]["content"])
        calls.append(prompt)
        if len(calls) == 1:
            return "x" * 500  # too long: the next round is a fresh start
        return "A question of a fitting length?"

    rows = run(
        EvolInstructGenerator(
            llm=FunctionLLM(fn=long_then_fit), num_instructions=1, min_length=10, max_length=100
        )
    )
    assert rows[0]["instruction"] == "A question of a fitting length?"
    assert all(prompt.startswith("Make up one question") for prompt in calls)


def test_standalone_process_and_resume_offset() -> None:
    task = EvolInstructGenerator(
        llm=FunctionLLM(fn=growing), num_instructions=3, min_length=40, max_length=400
    )
    task.load()

    async def collect(offset: int) -> list[dict[str, Any]]:
        return [row async for batch in task.process(offset) for row in batch]

    rows = anyio.run(collect, 0)
    assert len(rows) == 3
    assert anyio.run(collect, 1) == rows[1:]


def test_round_trips_through_yaml_with_the_same_signature() -> None:
    with Pipeline(name="evol-yaml") as pipeline:
        EvolInstructGenerator(
            name="instruct", llm=OfflineLLM(), num_instructions=5, min_length=10, seed=3
        )
        EvolComplexityGenerator(
            name="complexity", llm=OfflineLLM(), num_instructions=2, generate_answers=True
        )
    loaded = Pipeline.from_yaml(to_text(pipeline.dump(), "yaml"))
    assert loaded.signature == pipeline.signature
    instruct = loaded.steps["instruct"]
    assert isinstance(instruct, EvolInstructGenerator)
    assert (instruct.num_instructions, instruct.min_length, instruct.seed) == (5, 10, 3)
    assert loaded.steps["complexity"].outputs == ["instruction", "model_name", "answer"]
