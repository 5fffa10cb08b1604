"""Stand-ins for the Hub datasets distilabel's documented pipelines read, and those of the
pipelines people wrote themselves that ``distilabel_pipelines.py --scripts`` runs, for the
loopback Hub.

A documented pipeline that starts from a Hub dataset can't run offline, so the harness
(``distilabel_pipelines.py``) could only report it as needing the internet, and the tasks after
the loader were never tried. Here each such dataset gets a small stand-in under its own repo id,
config and split names: the column names and types its publisher gives it (the facts a pipeline
depends on), with rows written here, as many as the snippets select. The rows are not the
dataset's; nothing is copied from it.

``seed(hub)`` puts every stand-in into a ``tests.servers.hub.FakeHub`` as Parquet files with a
dataset card that names the configs, which is how ``datasets.load_dataset`` finds them.
"""

from __future__ import annotations

import io
import json
from collections.abc import Callable
from typing import Any

Rows = Callable[[int], dict[str, Any]]
"""One row of a stand-in, by its index."""

TOPICS = ("tides", "prime numbers", "bread", "volcanoes", "jazz", "glaciers", "compilers")


def _topic(i: int) -> str:
    return TOPICS[i % len(TOPICS)]


def _instruction(i: int) -> dict[str, Any]:
    return {"instruction": f"Explain {_topic(i)} to a ten-year-old (#{i})."}


def _prompt_completion(i: int) -> dict[str, Any]:
    return {
        "prompt": f"Write two sentences about {_topic(i)} (#{i}).",
        "completion": f"{_topic(i).capitalize()} are worth a look. Here is why (#{i}).",
        "meta": {"category": "Generation", "id": i},
    }


def _ranked_prompt(i: int) -> dict[str, Any]:
    # Every row passes the documented filter (avg_rating >= 4, num_responses >= 2).
    return {
        "prompt": f"Plan a week of lessons on {_topic(i)} (#{i}).",
        "quality": [{"user_id": f"u{i}", "value": "4"}, {"user_id": f"v{i}", "value": "5"}],
        "metadata": json.dumps({"source": "stand-in", "kind": "synthetic"}),
        "avg_rating": 4.5,
        "num_responses": 2,
        "agreement_ratio": 0.75,
        "raw_responses": [4, 5],
        "kind": "synthetic",
    }


def _persona(i: int) -> dict[str, Any]:
    return {
        "id": f"<urn:uuid:{i:08d}>",
        "persona": f"A retired teacher who writes a blog about {_topic(i)} (#{i}).",
        "labels": json.dumps(["Education", _topic(i).title()]),
    }


def _clair(i: int) -> dict[str, Any]:
    prompt = f"How do {_topic(i)} work? (#{i})"
    return {
        "prompt": prompt,
        "chosen": [
            {"role": "user", "content": prompt},
            {"role": "assistant", "content": f"A careful answer about {_topic(i)}."},
        ],
        "rejected": [
            {"role": "user", "content": prompt},
            {"role": "assistant", "content": f"A hasty answer about {_topic(i)}."},
        ],
    }


def _math_word_problem(i: int) -> dict[str, Any]:
    a, b = 3 + i % 7, 4 + i % 5
    return {
        "question": f"Ann has {a} apples and buys {b} more. How many apples does she have?",
        "answer": f"Ann has {a} + {b} = <<{a}+{b}={a + b}>>{a + b} apples.\n#### {a + b}",
    }


def _informal_statement(i: int) -> dict[str, Any]:
    return {"informal_statement": f"Prove that the sum of two even numbers is even (#{i})."}


def _function_call(i: int) -> dict[str, Any]:
    tool = {
        "name": f"weather_{i % 5}",
        "description": "The weather forecast of a city.",
        "parameters": {"city": {"description": "The city.", "type": "str", "default": "Paris"}},
    }
    answer = {"name": tool["name"], "arguments": {"city": "Lyon"}}
    return {
        "id": i,
        "query": f"What will the weather be in Lyon on day {i}?",
        "answers": json.dumps([answer]),
        "tools": json.dumps([tool]),
    }


def _competition_problem(i: int) -> dict[str, Any]:
    problem = f"What is the sum of the first {i + 3} positive integers?"
    n = i + 3
    solution = f"The sum is {n} * {n + 1} / 2 = {n * (n + 1) // 2}."
    return {
        "problem": problem,
        "solution": solution,
        "messages": [
            {"role": "user", "content": problem},
            {"role": "assistant", "content": solution},
        ],
    }


def _prompt_with_topic(i: int) -> dict[str, Any]:
    return {"instruction": f"How do {_topic(i)} work? (#{i})", "topic": _topic(i).title()}


def _input_output(i: int) -> dict[str, Any]:
    return {
        "input": f"Describe {_topic(i)} in one paragraph (#{i}).",
        "output": f"{_topic(i).capitalize()}: a short description (#{i}).",
    }


INSTRUCTION_DATASET = {"default": {"test": (_prompt_completion, 20)}}

STAND_INS: dict[str, dict[str, dict[str, tuple[Rows, int]]]] = {
    # repo id -> config -> split -> (row writer, number of rows)
    "distilabel-internal-testing/instructions": {"default": {"test": (_instruction, 10)}},
    "distilabel-internal-testing/instruction-dataset": INSTRUCTION_DATASET,
    "distilabel-internal-testing/instruction-dataset-mini": INSTRUCTION_DATASET,
    "HuggingFaceH4/instruction-dataset": INSTRUCTION_DATASET,
    "DIBT/10k_prompts_ranked": {"default": {"train": (_ranked_prompt, 500)}},
    "dvilasuero/finepersonas-v0.1-tiny": {"default": {"train": (_persona, 10)}},
    "argilla/FinePersonas-v0.1-clustering-100k": {"default": {"train": (_persona, 10)}},
    "ContextualAI/ultrafeedback_clair_32k": {"default": {"train": (_clair, 10)}},
    "openai/gsm8k": {"main": {"train": (_math_word_problem, 10), "test": (_math_word_problem, 10)}},
    "plaguss/informal-mathematical-statements-tiny": {
        "default": {"val": (_informal_statement, 5), "test": (_informal_statement, 5)}
    },
    "Salesforce/xlam-function-calling-60k": {"default": {"train": (_function_call, 500)}},
    # Read by the pipelines people wrote (``--scripts``):
    "AI-MO/NuminaMath-TIR": {
        "default": {"train": (_competition_problem, 10), "test": (_competition_problem, 5)}
    },
    "argilla/10Kprompts-mini": {"default": {"train": (_prompt_with_topic, 10)}},
    # Its card couldn't be checked here: the columns are those the script reads (its
    # launcher names them with --question-column-name/--answer-column-name).
    "lianghsun/tw-instruct-500k": {"default": {"train": (_input_output, 10)}},
}


def repository_files(configs: dict[str, dict[str, tuple[Rows, int]]]) -> dict[str, bytes]:
    """The files of one stand-in repository: a Parquet file per config and split, and the
    dataset card whose ``configs`` tell ``datasets`` which file is which."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    files: dict[str, bytes] = {}
    card = ["---", "configs:"]
    for config, splits in configs.items():
        card += [f"- config_name: {config}", "  data_files:"]
        for split, (row, count) in splits.items():
            path = f"{config}/{split}-00000-of-00001.parquet"
            buffer = io.BytesIO()
            pq.write_table(pa.Table.from_pylist([row(i) for i in range(count)]), buffer)
            files[path] = buffer.getvalue()
            card += [f"  - split: {split}", f"    path: {path}"]
    files["README.md"] = "\n".join([*card, "---", ""]).encode()
    return files


def seed(hub: Any) -> list[str]:
    """Put every stand-in into ``hub`` (a ``FakeHub``); the repo ids seeded."""
    for repo_id, configs in STAND_INS.items():
        hub.files[repo_id] = repository_files(configs)
    return list(STAND_INS)
