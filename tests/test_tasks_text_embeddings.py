"""Embedding training data: sentence pairs and retrieval, matching and classification examples."""

from __future__ import annotations

from typing import Any

import pytest

from synthflow.errors import OutputParseError
from synthflow.pipeline import Pipeline
from synthflow.steps import LoadDataFromDicts
from synthflow.steps.tasks import (
    GenerateLongTextMatchingData,
    GenerateSentencePair,
    GenerateShortTextMatchingData,
    GenerateTextClassificationData,
    GenerateTextRetrievalData,
)
from synthflow.testing import FunctionLLM, OfflineLLM


def task(**kwargs: Any) -> GenerateSentencePair:
    kwargs.setdefault("action", "paraphrase")
    return GenerateSentencePair(llm=FunctionLLM(fn=lambda m: ""), **kwargs)


def test_paraphrase_prompt() -> None:
    assert task().format_input({"anchor": "The cat sleeps."}) == [
        {
            "role": "system",
            "content": "You write training data for text-embedding models. Given an anchor "
            "sentence, write a paraphrase of the anchor: the same meaning, in other words.\n"
            "Write natural sentences, as people write them; don't copy the anchor.\n\n"
            "Answer in exactly this form, and nothing else:\n## Positive\n<the positive>",
        },
        {"role": "user", "content": "## Anchor\nThe cat sleeps."},
    ]


def test_hard_negative_query_prompt_with_context() -> None:
    system = task(action="query", triplet=True, hard_negative=True, context="cooking blogs")
    content = system.format_input({"anchor": "Boil pasta for 9 minutes."})[0]["content"]
    assert content == (
        "You write training data for text-embedding models. Given an anchor sentence, write two "
        "sentences: a search query for which the anchor would be a good result; and a hard "
        "negative: a sentence that shares the anchor's subject and many of its words, so that it "
        "looks like a match, yet is not a search query for which the anchor would be a good "
        "result.\nThe anchors come from this setting: cooking blogs\n"
        "Write natural sentences, as people write them; don't copy the anchor.\n\n"
        "Answer in exactly this form, and nothing else:\n"
        "## Positive\n<the positive>\n## Negative\n<the negative>"
    )


@pytest.mark.parametrize(
    "answer",
    [
        "## Positive\nA cat is napping.\n## Negative\nThe stock market fell.",
        "Positive: A cat is napping.\nNegative: The stock market fell.",
        '**Positive:** "A cat is napping."\n\n**Negative:** The stock market fell.',
        "Sure!\n\n### Positive sentence\nA cat is napping.\n\n### Negative sentence\n"
        "The stock market fell.",
        '```json\n{"positive": "A cat is napping.", "negative": "The stock market fell."}\n```',
    ],
)
def test_parses_realistic_triplet_answers(answer: str) -> None:
    assert task(triplet=True).format_output(answer, {"anchor": "x"}) == {
        "positive": "A cat is napping.",
        "negative": "The stock market fell.",
    }


def test_a_pair_ignores_a_negative() -> None:
    answer = "## Positive\nA cat is napping.\n## Negative\nNo."
    assert task().format_output(answer, {"anchor": "x"}) == {"positive": "A cat is napping."}


@pytest.mark.parametrize(
    ("answer", "triplet", "error"),
    [
        (None, False, "no text"),
        ("A cat is napping.", False, "no positive"),
        ("## Positive\nA cat is napping.", True, "no negative"),
        ("## Positive\n\n## Negative\n", True, "no positive or negative"),
        ('{"positive": 3}', False, "no positive"),
    ],
)
def test_unreadable_answers(answer: str | None, triplet: bool, error: str) -> None:
    with pytest.raises(OutputParseError, match=error):
        task(triplet=triplet).format_output(answer, {"anchor": "x"})


def test_structured_output_is_asked_for_when_enabled() -> None:
    on = GenerateSentencePair(
        llm=OfflineLLM(), action="answer", triplet=True, use_default_structured_output=True
    )
    assert on.llm.structured_output is not None
    assert on.llm.structured_output["required"] == ["positive", "negative"]
    off = GenerateSentencePair(llm=OfflineLLM(), action="answer")
    assert off.llm.structured_output is None


def test_in_a_pipeline_with_the_offline_llm_in_json_mode() -> None:
    with Pipeline(name="pairs") as pipeline:
        LoadDataFromDicts(data=[{"anchor": "a"}, {"anchor": "b"}]) >> GenerateSentencePair(
            name="pairs",
            llm=OfflineLLM(),
            action="semantically-similar",
            triplet=True,
            use_default_structured_output=True,
        )
    rows = list(pipeline.run(progress=False)["default"]["train"])
    assert all(isinstance(r["positive"], str) and isinstance(r["negative"], str) for r in rows)
    assert {r["model_name"] for r in rows} == {"synthflow-offline"}


def test_retrieval_prompt_with_every_attribute_set() -> None:
    gen = GenerateTextRetrievalData(
        llm=OfflineLLM(),
        language="French",
        query_type="long-tail",
        query_length="5 to 15 words",
        difficulty="college",
        clarity="clear",
        num_words=100,
    )
    assert gen.format_input({"task": "Find recipes for given ingredients."}) == [
        {
            "role": "user",
            "content": "You are writing one example for this retrieval task: Find recipes for "
            "given ingredients.\n\n"
            "Write a JSON object with these keys:\n"
            '- "user_query": a long-tail query for the task, 5 to 15 words long, clear, that '
            "takes a college level of education to understand.\n"
            '- "positive_document": a document of about 100 words that answers the query '
            "well.\n"
            '- "hard_negative_document": a document of about 100 words on the same subject, '
            "with many of the same words, that looks relevant but doesn't answer the query.\n\n"
            "The documents stand on their own: they don't mention the query or each other.\n"
            "Answer with only the JSON object, and write every value in French.",
        }
    ]


def test_unset_attributes_are_drawn_per_task_and_repeat_with_the_seed() -> None:
    gen = GenerateTextRetrievalData(llm=OfflineLLM())
    tasks = [{"task": f"Retrieval task {i}"} for i in range(20)]
    prompts = [gen.format_input(t)[0]["content"] for t in tasks]
    assert len({p.split("\n")[3] for p in prompts}) > 3  # the query line varies across tasks
    assert prompts == [gen.format_input(t)[0]["content"] for t in tasks]
    other = GenerateTextRetrievalData(llm=OfflineLLM(), seed=7)
    assert [other.format_input(t)[0]["content"] for t in tasks] != prompts


def test_classification_and_matching_prompts() -> None:
    cls = GenerateTextClassificationData(llm=OfflineLLM(), difficulty="PhD", clarity="ambiguous")
    content = cls.format_input({"task": "Label reviews as positive or negative."})[0]["content"]
    assert '- "input_text": a text to classify, ambiguous, that takes a PhD level' in content
    assert '"misleading_label": a label of the task that a careless reader might choose' in content
    short = GenerateShortTextMatchingData(llm=OfflineLLM()).format_input({"task": "t"})
    assert '"input": a short text for the task: a sentence or a phrase.' in short[0]["content"]
    long = GenerateLongTextMatchingData(llm=OfflineLLM()).format_input({"task": "t"})
    assert '"input": a long text for the task, of at least a paragraph.' in long[0]["content"]


@pytest.mark.parametrize(
    "answer",
    [
        '{"user_query": "q", "positive_document": "p", "hard_negative_document": "n"}',
        'Sure! ```json\n{"user_query": "q", "positive_document": "p",\n'
        '"hard_negative_document": "n"}\n```',
        '{"user_query": "q", "positive_document": "p", "hard_negative_document": "n", "x": 1}',
    ],
)
def test_retrieval_answers(answer: str) -> None:
    gen = GenerateTextRetrievalData(llm=OfflineLLM())
    assert gen.format_output(answer, {"task": "t"}) == {
        "user_query": "q",
        "positive_document": "p",
        "hard_negative_document": "n",
    }


def test_raw_line_breaks_inside_long_documents_are_read() -> None:
    answer = '{"input": "First paragraph.\n\nSecond paragraph.", "positive_document": "Abstract."}'
    gen = GenerateLongTextMatchingData(llm=OfflineLLM())
    assert gen.format_output(answer, {"task": "t"})["input"] == (
        "First paragraph.\n\nSecond paragraph."
    )


@pytest.mark.parametrize(
    ("answer", "error"),
    [
        ('{"input_text": "t", "label": "l"}', r"no text for \['misleading_label'\]"),
        ('{"input_text": "", "label": "l", "misleading_label": "m"}', "input_text"),
        ("The text is about sports.", "found no JSON"),
        ('["t", "l", "m"]', "expected a JSON object"),
    ],
)
def test_incomplete_examples_fail(answer: str, error: str) -> None:
    gen = GenerateTextClassificationData(llm=OfflineLLM())
    with pytest.raises(OutputParseError, match=error):
        gen.format_output(answer, {"task": "t"})


def test_retrieval_data_in_a_pipeline() -> None:
    def model(messages: Any) -> str:
        task = str(messages[-1]["content"]).split("task: ")[1].split("\n")[0]
        return (
            f'{{"user_query": "query for {task}", "positive_document": "good",'
            ' "hard_negative_document": "bad"}'
        )

    with Pipeline(name="retrieval") as pipeline:
        LoadDataFromDicts(data=[{"task": "Find poems."}, {"task": "Find laws."}]) >> (
            GenerateTextRetrievalData(name="retrieval", llm=FunctionLLM(fn=model))
        )
    rows = list(pipeline.run(progress=False)["default"]["train"])
    assert [r["user_query"] for r in rows] == ["query for Find poems.", "query for Find laws."]
    assert {r["hard_negative_document"] for r in rows} == {"bad"}


def test_example_schema_is_asked_for_when_enabled() -> None:
    gen = GenerateTextClassificationData(llm=OfflineLLM(), use_default_structured_output=True)
    assert gen.llm.structured_output == {
        "title": "GenerateTextClassificationData",
        "type": "object",
        "properties": {k: {"type": "string"} for k in ("input_text", "label", "misleading_label")},
        "required": ["input_text", "label", "misleading_label"],
    }
    assert GenerateTextClassificationData(llm=OfflineLLM()).llm.structured_output is None
