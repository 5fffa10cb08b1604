"""GenerateSentencePair: prompts per action, the answers models write, and a run."""

from __future__ import annotations

from typing import Any

import pytest

from synthflow.errors import OutputParseError
from synthflow.pipeline import Pipeline
from synthflow.steps import LoadDataFromDicts
from synthflow.steps.tasks import GenerateSentencePair
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
