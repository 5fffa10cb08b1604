"""TextClassification: prompt, schema, parsing, and a run against an OpenAI-compatible server."""

from __future__ import annotations

from typing import Any

import pytest

from synthflow.errors import OutputParseError
from synthflow.models.llms.openai import OpenAILLM
from synthflow.pipeline import Pipeline
from synthflow.steps import LoadDataFromDicts
from synthflow.steps.tasks import TextClassification
from synthflow.testing import FunctionLLM, OfflineLLM
from tests.servers import Reply, Request, fake_api


def scripted(**kwargs: Any) -> TextClassification:
    return TextClassification(llm=FunctionLLM(fn=lambda m: ""), **kwargs)


def test_prompt_with_described_labels_and_examples() -> None:
    task = scripted(
        available_labels={"sports": "games and athletes", "politics": "government"},
        examples=["'The match ended 2-1' -> sports"],
        query_title="Headline",
        context=None,
    )
    assert task.format_input({"text": "Parliament votes today"}) == [
        {
            "role": "system",
            "content": "You label texts. Read the text you are given and answer only with the "
            "labels that classify it, in the format asked for.",
        },
        {
            "role": "user",
            "content": "# Task\nClassify the text below.\n"
            "Give the one label that describes the text best.\n\n"
            "## Labels\nChoose from these labels, read with their meaning:\n"
            "- sports: games and athletes\n- politics: government\n\n"
            "## Examples\n- 'The match ended 2-1' -> sports\n\n"
            "If the text is too ambiguous or too short to classify, answer Unclassified.\n\n"
            '## Answer\nAnswer with only this JSON object: {"labels": "label"}\n\n'
            "## Headline\nParliament votes today",
        },
    ]


def test_multi_label_prompt_asks_for_a_list() -> None:
    content = scripted(n=3, system_prompt=None).format_input({"text": "t"})
    assert len(content) == 1
    text = content[0]["content"]
    assert "Give a list of the 3 labels that describe the text best." in text
    assert 'Answer with only this JSON object: {"labels": ["label", "label", "label"]}' in text
    assert "Use plain, widely understood words for labels." in text


def test_llm_that_takes_a_schema_is_asked_for_the_labels() -> None:
    llm = OfflineLLM()
    task = TextClassification(llm=llm, available_labels=["pos", "neg"])
    assert task.llm.structured_output == {
        "title": "Labels",
        "type": "object",
        "properties": {"labels": {"type": "string", "enum": ["pos", "neg", "Unclassified"]}},
        "required": ["labels"],
    }
    assert llm.structured_output is None  # the user's object is left alone
    plain = TextClassification(llm=OfflineLLM(), use_default_structured_output=False)
    assert plain.llm.structured_output is None
    multi = TextClassification(llm=OfflineLLM(), n=2)
    assert multi.llm.structured_output is not None
    assert multi.llm.structured_output["properties"]["labels"]["type"] == "array"


@pytest.mark.parametrize(
    ("answer", "n", "expected"),
    [
        ('{"labels": "Positive"}', 1, "positive"),
        ('```json\n{"labels": "negative"}\n```', 1, "negative"),
        ('The label is:\n{"label": "positive"}\nThanks.', 1, "positive"),
        ('"negative"', 1, "negative"),
        ("Sentiment: **Negative**", 1, "negative"),
        ('{"labels": ["positive"]}', 1, "positive"),
        ('{"labels": ["positive", "neutral", "negative"]}', 2, ["positive", "neutral"]),
        ('{"labels": "positive"}', 2, ["positive"]),
        ('{"labels": "Sarcastic"}', 1, "Sarcastic"),
    ],
)
def test_parses_realistic_answers(answer: str, n: int, expected: object) -> None:
    task = scripted(n=n, available_labels=["positive", "negative", "neutral"])
    assert task.format_output(answer, {"text": "t"}) == {"labels": expected}


@pytest.mark.parametrize(
    "answer",
    [None, "", '{"labels": []}', '{"labels": 3}', "It is both positive and negative.", "Unsure."],
)
def test_unreadable_answers_raise_output_parse_error(answer: str | None) -> None:
    with pytest.raises(OutputParseError):
        scripted(available_labels=["positive", "negative"]).format_output(answer, {"text": "t"})


def test_against_an_openai_compatible_server_with_its_json_schema_mode() -> None:
    def handler(request: Request) -> Reply:
        text = request.json["messages"][-1]["content"]
        label = "sports" if "match" in text else "politics"
        return Reply(
            body={
                "id": "x",
                "object": "chat.completion",
                "model": "gpt-4o-mini",
                "choices": [
                    {
                        "index": 0,
                        "message": {"role": "assistant", "content": f'{{"labels": "{label}"}}'},
                        "finish_reason": "stop",
                    }
                ],
                "usage": {"prompt_tokens": 50, "completion_tokens": 5, "total_tokens": 55},
            }
        )

    with fake_api(handler) as api:
        with Pipeline(name="classify") as pipeline:
            llm = OpenAILLM(model="gpt-4o-mini", base_url=f"{api.url}/v1", api_key="sk-t")
            LoadDataFromDicts(
                data=[{"text": "The match ended 2-1"}, {"text": "Parliament votes today"}]
            ) >> TextClassification(
                name="classify", llm=llm, available_labels=["sports", "politics"]
            )
        rows = list(pipeline.run(progress=False)["default"]["train"])
    assert [r["labels"] for r in rows] == ["sports", "politics"]
    body = api.requests[0].json
    assert body["response_format"]["type"] == "json_schema"
    schema = body["response_format"]["json_schema"]["schema"]
    assert schema["properties"]["labels"]["enum"] == ["sports", "politics", "Unclassified"]


def test_the_schema_follows_the_labels_when_they_change() -> None:
    task = TextClassification(llm=OfflineLLM(), available_labels=["a", "b"])
    task.available_labels = ["c"]
    assert task.llm.structured_output is not None
    assert task.llm.structured_output["properties"]["labels"]["enum"] == ["c", "Unclassified"]
    own = {"title": "Mine", "type": "object"}
    kept = TextClassification(llm=OfflineLLM(structured_output=own))
    assert kept.llm.structured_output == own  # a schema the user set is theirs
