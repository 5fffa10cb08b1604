"""The sources of embedding training data (Wang et al.): EmbeddingTaskGenerator,
MonolingualTripletGenerator and BitextRetrievalGenerator, on the GeneratorTask base."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from synthflow.errors import OutputParseError
from synthflow.models.llms.base import ChatType
from synthflow.pipeline import Pipeline
from synthflow.serialization import to_text
from synthflow.steps import Step, StepInput
from synthflow.steps.tasks import (
    ERROR_COLUMN,
    BitextRetrievalGenerator,
    EmbeddingTaskGenerator,
    GeneratorTask,
    MonolingualTripletGenerator,
    TextGeneration,
)
from synthflow.testing import FunctionLLM, OfflineLLM


def scripted(*answers: str | None) -> FunctionLLM:
    """An LLM that gives ``answers`` as the completions of each call."""
    return FunctionLLM(fn=lambda messages: list(answers))


def rows_of(distiset: Any, name: str = "default") -> list[dict[str, Any]]:
    return [dict(row) for row in distiset[name]["train"]]


def run(*steps: GeneratorTask) -> Any:
    with Pipeline(name="embedding-sources") as pipeline:
        for step in steps:
            pipeline.add_step(step)
    return pipeline.run(use_cache=False, progress=False)


TASKS_ANSWER = """Here are some retrieval tasks:

```json
[
  "Given a question about a medication, retrieve leaflets that answer it.",
  "Given a bug report, retrieve forum threads describing the same error.",
  "Given a recipe name, retrieve recipes that cook the same dish."
]
```
I hope these help!"""


# -- EmbeddingTaskGenerator: prompt ----------------------------------------------------------------


def test_brainstorm_prompt_for_retrieval() -> None:
    task = EmbeddingTaskGenerator(category="text-retrieval", llm=OfflineLLM())
    assert task.format_input({}) == [
        {
            "role": "user",
            "content": "Brainstorm a list of text retrieval tasks. In each one a user writes a "
            "query and a system must find the documents that answer it or are relevant to it. "
            "Vary the domains, the kinds of query (questions, keywords, claims, descriptions of "
            "a need) and the kinds of document (web pages, scientific articles, reviews, forum "
            "threads, manuals, legal texts, ...). These tasks will be used to write training "
            "data for a text embedding model, so make them diverse and realistic.\n\n"
            "Describe each task in one sentence of at most 20 words that says what the input "
            'is and what to do with it, for example: "Given a question about a medication, '
            'retrieve leaflets that answer it."\n\n'
            "Answer with a JSON list of about 20 strings and nothing else.",
        }
    ]


@pytest.mark.parametrize(
    ("category", "phrase"),
    [
        ("text-matching-short", "short text matching tasks"),
        ("text-matching-long", "long text matching tasks"),
        ("text-classification", "text classification tasks"),
    ],
)
def test_brainstorm_prompt_names_its_category(category: Any, phrase: str) -> None:
    (message,) = EmbeddingTaskGenerator(category=category, llm=OfflineLLM()).format_input({})
    assert message["content"].startswith(f"Brainstorm a list of {phrase}.")
    assert message["content"].endswith(
        "Answer with a JSON list of about 20 strings and nothing else."
    )


def test_columns_follow_flatten_tasks() -> None:
    assert EmbeddingTaskGenerator(category="text-retrieval", llm=OfflineLLM()).outputs == [
        "tasks",
        "model_name",
    ]
    flat = EmbeddingTaskGenerator(category="text-retrieval", flatten_tasks=True, llm=OfflineLLM())
    assert flat.outputs == ["task", "model_name"] and flat.inputs == []


# -- EmbeddingTaskGenerator: parsing ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("answer", "expected"),
    [
        (TASKS_ANSWER, 3),
        ('["Find duplicate questions.", "Match titles to abstracts."]', 2),
        ("['Find duplicate questions.', 'Match titles to abstracts.']", 2),  # a Python literal
        ('{"tasks": ["Find duplicate questions.", "Match titles to abstracts."]}', 2),
        ('[{"task": "Find duplicate questions."}, {"task": "Match titles."}]', 2),
        (
            "Sure:\n1. Find duplicate questions.\n2. Match titles to abstracts.\n"
            "3) Classify reviews by sentiment.\n",
            3,
        ),
        ("- Find duplicate questions.\n- Match titles to abstracts.", 2),
    ],
)
def test_reads_task_lists_as_models_write_them(answer: str, expected: int) -> None:
    task = EmbeddingTaskGenerator(category="text-retrieval", llm=OfflineLLM())
    tasks = task.format_output(answer, {})["tasks"]
    assert len(tasks) == expected
    assert all(isinstance(t, str) and t and not t.startswith(("-", "1", '"')) for t in tasks)


@pytest.mark.parametrize(
    "answer",
    [None, "", "I'm sorry, but I can't help with that.", "[]", '{"tasks": 3}', "```\n```"],
)
def test_unreadable_task_lists_raise_output_parse_error(answer: str | None) -> None:
    task = EmbeddingTaskGenerator(category="text-retrieval", llm=OfflineLLM())
    with pytest.raises(OutputParseError):
        task.format_output(answer, {})


# -- EmbeddingTaskGenerator: in a pipeline ---------------------------------------------------------


def test_a_row_per_completion_holds_its_list() -> None:
    task = EmbeddingTaskGenerator(
        category="text-retrieval", llm=scripted(TASKS_ANSWER, "nonsense"), num_generations=2
    )
    rows = rows_of(run(task))
    assert [len(r["tasks"]) if r["tasks"] else None for r in rows] == [3, None]
    assert rows[0]["model_name"] == "function-llm" and rows[0][ERROR_COLUMN] is None
    assert rows[1][ERROR_COLUMN].startswith("embedding_task_generator_0: OutputParseError")
    raw = rows[1]["synthflow_metadata"]["raw_output_embedding_task_generator_0"]
    assert raw == "nonsense"


def test_flatten_tasks_makes_a_row_per_task() -> None:
    task = EmbeddingTaskGenerator(
        category="text-retrieval",
        flatten_tasks=True,
        llm=scripted(TASKS_ANSWER, "nonsense"),
        num_generations=2,
        batch_size=2,
    )
    distiset = run(task)
    rows = rows_of(distiset)
    assert [r["task"] for r in rows][:3] == [
        "Given a question about a medication, retrieve leaflets that answer it.",
        "Given a bug report, retrieve forum threads describing the same error.",
        "Given a recipe name, retrieve recipes that cook the same dish.",
    ]
    assert rows[3]["task"] is None and rows[3][ERROR_COLUMN]  # the unreadable completion
    assert "tasks" not in rows[0]


def test_tasks_feed_a_task_downstream() -> None:
    with Pipeline(name="brainstorm-then-write") as pipeline:
        brainstorm = EmbeddingTaskGenerator(
            category="text-classification", flatten_tasks=True, llm=scripted(TASKS_ANSWER)
        )
        write = TextGeneration(
            name="write",
            llm=FunctionLLM(fn=lambda messages: f"example for: {messages[-1]['content']}"),
            input_mappings={"instruction": "task"},
        )
        brainstorm >> write
    rows = rows_of(pipeline.run(use_cache=False, progress=False))
    assert len(rows) == 3
    assert rows[0]["generation"] == (
        "example for: Given a question about a medication, retrieve leaflets that answer it."
    )


def test_drop_and_fail_policies_of_a_source() -> None:
    dropped = EmbeddingTaskGenerator(
        category="text-retrieval", llm=scripted("nonsense"), on_error="drop"
    )
    assert run(dropped)["default"]["train"].num_rows == 0
    failing = EmbeddingTaskGenerator(
        category="text-retrieval", llm=scripted("nonsense"), on_error="fail"
    )
    with pytest.raises(Exception, match="OutputParseError"):
        run(failing)


def test_a_failed_call_is_a_row_failure() -> None:
    from synthflow.errors import LLMError

    def broken(messages: ChatType) -> str:
        raise LLMError("the server answered 500")

    rows = rows_of(
        run(EmbeddingTaskGenerator(category="text-retrieval", llm=FunctionLLM(fn=broken)))
    )
    assert rows[0]["tasks"] is None
    assert rows[0][ERROR_COLUMN] == (
        "embedding_task_generator_0: LLMError: the server answered 500"
    )


# -- triplets --------------------------------------------------------------------------------------


def test_monolingual_prompt_with_every_attribute_set() -> None:
    task = MonolingualTripletGenerator(
        language="French",
        unit="sentence",
        difficulty="college",
        high_score="4.5",
        low_score="2.5",
        llm=OfflineLLM(),
    )
    task.load()
    (message,) = task.format_input({})
    assert message == {
        "role": "user",
        "content": "Write three sentences in French for training a model that measures how "
        "similar two texts are in meaning, with similarity on a scale from 1 (unrelated) to 5 "
        "(the same meaning).\n\n"
        '- "S1": any sentence.\n'
        '- "S2": a sentence whose similarity to S1 is 4.5: it says (nearly) the same thing in '
        "other words.\n"
        '- "S3": a sentence whose similarity to S1 is 2.5: it shares words or a topic with S1, '
        "but its meaning differs.\n\n"
        "A college student should understand all three. Pick an original topic.\n\n"
        'Answer with a JSON object with the keys "S1", "S2" and "S3" and nothing else.',
    }


def test_bitext_prompt_with_every_attribute_set() -> None:
    task = BitextRetrievalGenerator(
        source_language="English",
        target_language="Spanish",
        unit="phrase",
        difficulty="high school",
        high_score="5",
        low_score="3",
        llm=OfflineLLM(),
    )
    task.load()
    (message,) = task.format_input({})
    assert message["content"] == (
        "Write three phrases for training a model that finds the translation of a text among "
        "many candidates, with similarity on a scale from 1 (unrelated) to 5 (the same "
        "meaning).\n\n"
        '- "S1": a phrase in English.\n'
        '- "S2": a translation of S1 into Spanish; its similarity to S1 is 5.\n'
        '- "S3": a phrase in Spanish that looks like a translation of S1 but changes its '
        "meaning; its similarity to S1 is 3.\n\n"
        "A high school student should understand all three. Pick an original topic.\n\n"
        'Answer with a JSON object with the keys "S1", "S2" and "S3" and nothing else.'
    )


def test_unset_attributes_are_sampled_from_the_seed() -> None:
    def prompts(seed: int) -> list[str]:
        task = MonolingualTripletGenerator(seed=seed, llm=OfflineLLM())
        task.load()
        return [task.format_input({})[0]["content"] for _ in range(8)]

    assert prompts(1) == prompts(1)
    assert len(set(prompts(1))) > 1  # each call samples anew
    assert prompts(1) != prompts(2)


def test_bitext_needs_a_target_language() -> None:
    with pytest.raises(ValueError, match="target_language"):
        BitextRetrievalGenerator(llm=OfflineLLM())  # type: ignore[call-arg]


@pytest.mark.parametrize(
    "answer",
    [
        '{"S1": "The cat sleeps.", "S2": "The cat is asleep.", "S3": "The cat sleeps badly."}',
        'Sure!\n```json\n{\n  "S1": "The cat sleeps.",\n  "S2": "The cat is asleep.",\n'
        '  "S3": "The cat sleeps badly."\n}\n```',
        '{"s1": " The cat sleeps. ", "s2": "The cat is asleep.", "s3": "The cat sleeps badly."}',
        # a raw line break inside a string, as models write long passages
        '{"S1": "The cat sleeps.", "S2": "The cat\nis asleep.", "S3": "The cat sleeps badly."}',
    ],
)
def test_reads_triplets(answer: str) -> None:
    task = MonolingualTripletGenerator(llm=OfflineLLM())
    columns = task.format_output(answer, {})
    assert set(columns) == {"S1", "S2", "S3"}
    assert columns["S1"] == "The cat sleeps."
    assert columns["S2"].replace("\n", " ") == "The cat is asleep."


@pytest.mark.parametrize(
    "answer",
    [
        None,
        "",
        "I can't write that.",
        '{"S1": "only one"}',
        '{"S1": "a", "S2": "b", "S3": ""}',
        '{"S1": "a", "S2": "b", "S3": ["c"]}',
        '["a", "b", "c"]',
    ],
)
def test_unreadable_triplets_raise_output_parse_error(answer: str | None) -> None:
    with pytest.raises(OutputParseError):
        BitextRetrievalGenerator(target_language="German", llm=OfflineLLM()).format_output(
            answer, {}
        )


def test_triplets_in_a_pipeline() -> None:
    good = '{"S1": "Hello.", "S2": "Hola.", "S3": "Adiós."}'
    task = BitextRetrievalGenerator(
        name="bitext", target_language="Spanish", llm=scripted(good, "oops"), num_generations=2
    )
    rows = rows_of(run(task))
    assert {k: rows[0][k] for k in ("S1", "S2", "S3", "model_name")} == {
        "S1": "Hello.",
        "S2": "Hola.",
        "S3": "Adiós.",
        "model_name": "function-llm",
    }
    assert rows[1]["S1"] is None and rows[1][ERROR_COLUMN].startswith("bitext: OutputParseError")


def test_standalone_process_yields_the_rows() -> None:
    import anyio

    task = MonolingualTripletGenerator(
        name="sts",
        llm=scripted('{"S1": "a", "S2": "b", "S3": "c"}'),
        add_raw_output=False,
        add_raw_input=False,
    )
    task.load()

    async def collect() -> list[dict[str, Any]]:
        return [row async for batch in task.process() for row in batch]

    rows = anyio.run(collect)
    assert rows == [
        {
            "S1": "a",
            "S2": "b",
            "S3": "c",
            "model_name": "function-llm",
            "synthflow_metadata": {"statistics_sts": {"input_tokens": 0, "output_tokens": 0}},
        }
    ]


def test_round_trips_through_yaml_with_the_same_signature() -> None:
    with Pipeline(name="sources-yaml") as pipeline:
        EmbeddingTaskGenerator(
            name="brainstorm", category="text-matching-long", flatten_tasks=True, llm=OfflineLLM()
        )
        BitextRetrievalGenerator(
            name="bitext", target_language="Italian", unit="passage", seed=7, llm=OfflineLLM()
        )
        MonolingualTripletGenerator(name="sts", language="German", llm=OfflineLLM())
    loaded = Pipeline.from_yaml(to_text(pipeline.dump(), "yaml"))
    assert loaded.signature == pipeline.signature
    brainstorm, bitext = loaded.steps["brainstorm"], loaded.steps["bitext"]
    assert isinstance(brainstorm, EmbeddingTaskGenerator) and brainstorm.flatten_tasks
    assert isinstance(bitext, BitextRetrievalGenerator)
    assert (bitext.target_language, bitext.unit, bitext.seed) == ("Italian", "passage", 7)
    assert loaded.steps["sts"].outputs == ["S1", "S2", "S3", "model_name"]


def test_offline_llm_runs_every_source() -> None:
    """With the built-in OfflineLLM (no JSON in its answers) every source keeps its row, null."""
    distiset = run(
        EmbeddingTaskGenerator(category="text-retrieval", llm=OfflineLLM()),
        MonolingualTripletGenerator(llm=OfflineLLM()),
    )
    for name in distiset:
        (row,) = rows_of(distiset, name)
        assert row[ERROR_COLUMN] and row["model_name"] == "synthflow-offline"


def test_against_an_openai_compatible_server_with_the_runs_accounting() -> None:
    from synthflow.models.llms.openai import OpenAILLM
    from tests.servers import Reply, Request, fake_api

    triplets = [
        '{"S1": "The cat sleeps.", "S2": "The cat is asleep.", "S3": "The cat sleeps badly."}',
        "```json\n" + '{"S1": "Rain.", "S2": "Rainfall.", "S3": "Brain."}' + "\n```",
    ]

    def handler(request: Request) -> Reply:
        body = request.json
        choices = [
            {"index": i, "message": {"role": "assistant", "content": triplets[i]}}
            for i in range(body.get("n", 1))
        ]
        for choice in choices:
            choice["finish_reason"] = "stop"
        return Reply(
            body={
                "id": "c",
                "object": "chat.completion",
                "model": body["model"],
                "choices": choices,
                "usage": {"prompt_tokens": 80, "completion_tokens": 30, "total_tokens": 110},
            }
        )

    with fake_api(handler) as api:
        llm = OpenAILLM(model="writer", base_url=f"{api.url}/v1", api_key="sk-test")
        task = MonolingualTripletGenerator(name="sts", llm=llm, num_generations=2, unit="sentence")
        distiset = run(task)

    rows = rows_of(distiset)
    assert [r["S2"] for r in rows] == ["The cat is asleep.", "Rainfall."]
    assert {r["model_name"] for r in rows} == {"writer"}
    (request,) = api.requests  # one call: its two completions are the two rows
    assert request.json["n"] == 2
    assert "Write three sentences in English" in request.json["messages"][0]["content"]
    stats = distiset.stats["sts"].llm
    assert stats is not None and (stats.requests, stats.input_tokens) == (1, 80)


POWER_CUT_ON: list[str] = []  # an outside event, not a parameter of the run


class PowerCut(Step):
    """Takes the power down when it sees a task in POWER_CUT_ON."""

    @property
    def inputs(self) -> list[str]:
        return ["task"]

    def process(self, inputs: StepInput) -> Iterator[list[dict[str, Any]]]:
        for row in inputs:
            if row["task"] in POWER_CUT_ON:
                raise RuntimeError("power cut")
        yield inputs


def test_a_source_task_resumes_after_a_crash_from_the_cached_answer() -> None:
    from synthflow.errors import StepError
    from synthflow.models.llms.openai import OpenAILLM
    from tests.servers import Reply, Request, fake_api

    tasks = [f"Task number {i}." for i in range(10)]

    def handler(request: Request) -> Reply:
        return Reply(
            body={
                "id": "c",
                "object": "chat.completion",
                "model": request.json["model"],
                "choices": [
                    {
                        "index": 0,
                        "message": {"role": "assistant", "content": str(tasks)},
                        "finish_reason": "stop",
                    }
                ],
                "usage": {"prompt_tokens": 10, "completion_tokens": 10, "total_tokens": 20},
            }
        )

    with fake_api(handler) as api:
        llm = OpenAILLM(model="writer", base_url=f"{api.url}/v1", api_key="sk-test")
        with Pipeline(name="resumable-source") as pipeline:
            source = EmbeddingTaskGenerator(
                name="brainstorm",
                category="text-retrieval",
                flatten_tasks=True,
                batch_size=2,
                llm=llm,
            )
            source >> PowerCut(name="work", input_batch_size=2)
        POWER_CUT_ON[:] = [tasks[7]]
        try:
            with pytest.raises(StepError, match="power cut"):
                pipeline.run(progress=False)
        finally:
            POWER_CUT_ON.clear()
        distiset = pipeline.run(progress=False)  # the same run again: it resumes

    assert [r["task"] for r in rows_of(distiset)] == tasks  # each once, in order
    assert len(api.requests) == 1  # the resumed source got its answer from the run's cache
