"""ArgillaLabeller: the prompt, the answer schema per question type, parsing of realistic and
malformed answers, per-row settings, and a run with the structured output held by an
OpenAI-compatible server on 127.0.0.1."""

from __future__ import annotations

import json
from typing import Any

import pytest

from synthflow.errors import OutputParseError
from synthflow.models.llms.openai import OpenAILLM
from synthflow.pipeline import Pipeline
from synthflow.steps import LoadDataFromDicts
from synthflow.steps.tasks import ERROR_COLUMN, ArgillaLabeller
from synthflow.testing import FunctionLLM, OfflineLLM
from tests.servers import Reply, Request, fake_api

FIELDS = [
    {"name": "text", "title": "Review", "settings": {"type": "text"}},
    {"name": "product", "title": None, "settings": {"type": "text"}},
]


def question(kind: str, options: list[Any] | None = None, **extra: Any) -> dict[str, Any]:
    settings: dict[str, Any] = {"type": kind}
    if options is not None:
        settings["options"] = [
            {"value": o, "text": str(o).title(), "description": None} for o in options
        ]
    return {"name": kind.split("_")[0], "title": f"The {kind}?", "settings": settings, **extra}


LABEL = question("label_selection", ["positive", "negative"], description="Tone of the review.")
MULTI = question("multi_label_selection", ["price", "quality", "delivery"])
RATING = question("rating", [1, 2, 3, 4, 5])
TEXT = question("text")

RECORD = {"id": "r1", "fields": {"text": "Great kettle, fast delivery.", "product": "kettle"}}


def record(review: str, **responses: Any) -> dict[str, Any]:
    return {
        "fields": {"text": review, "product": "kettle"},
        "responses": {name: [{"value": v, "user_id": "u1"}] for name, v in responses.items()},
    }


def labeller(answer: str = "", **kwargs: Any) -> ArgillaLabeller:
    kwargs.setdefault("fields", FIELDS)
    return ArgillaLabeller(llm=FunctionLLM(fn=lambda m: answer, model="judge"), **kwargs)


# -- the prompt --------------------------------------------------------------------------------


def test_prompt_with_guidelines_examples_and_options() -> None:
    task = labeller(
        question=LABEL,
        guidelines="Label the tone, not the product.",
        example_records=[
            record("Broke in a week.", label="negative"),
            record("No answer here."),  # left out: nobody answered the question
        ],
    )
    (system, user) = task.format_input({"record": RECORD})
    assert system["role"] == "system" and "JSON object" in system["content"]
    assert user["content"] == (
        "# Annotation guidelines\nLabel the tone, not the product.\n\n"
        "# Examples answered by people\n## Example 1\nReview: Broke in a week.\n"
        'product: kettle\nAnswer: {"label": "negative"}\n\n'
        "# Record\nReview: Great kettle, fast delivery.\nproduct: kettle\n\n"
        "# Question\nThe label_selection?\nTone of the review.\n"
        "Choose the one option that fits the record best.\n"
        "Options:\n- positive: Positive\n- negative: Negative\n"
        'Answer with only this JSON object: {"label": "<option>"}'
    )


@pytest.mark.parametrize(
    ("q", "shape"),
    [
        (MULTI, '{"labels": ["<option>", ...]}'),
        (RATING, '{"rating": <value>}'),
        (TEXT, '{"text": "<answer>"}'),
    ],
)
def test_each_question_type_asks_for_its_shape(q: dict[str, Any], shape: str) -> None:
    content = labeller(question=q, system_prompt=None).format_input({"record": RECORD})
    assert len(content) == 1
    assert content[0]["content"].endswith(f"Answer with only this JSON object: {shape}")


def test_own_instructions_per_type_and_a_record_of_plain_fields() -> None:
    task = labeller(question=RATING, question_to_label_instruction={"rating": "Stars, 1 to 5."})
    text = task.format_input({"record": {"text": "ok", "product": "mug"}})[-1]["content"]
    assert "Review: ok\nproduct: mug" in text and "Stars, 1 to 5." in text


def test_settings_in_the_row_win_over_the_task() -> None:
    task = labeller(question=LABEL, guidelines="task guidelines")
    row = {
        "record": RECORD,
        "question": TEXT,
        "fields": [FIELDS[1]],
        "guidelines": "row guidelines",
        "example_records": [record("Fine.", text="It is fine.")],
    }
    text = task.format_input(row)[-1]["content"]
    assert "row guidelines" in text and "task guidelines" not in text
    assert 'Answer: {"text": "It is fine."}' in text
    assert "Review:" not in text and "product: kettle" in text
    assert task.format_output('{"text": "Nice."}', row)["suggestion"]["question_name"] == "text"


def test_missing_or_unsupported_question_says_what_to_give() -> None:
    with pytest.raises(ValueError, match="needs a question"):
        labeller().format_input({"record": RECORD})
    with pytest.raises(ValueError, match="of type 'span'"):
        labeller(question=question("span")).format_input({"record": RECORD})
    with pytest.raises(ValueError, match="needs the fields to show"):
        ArgillaLabeller(llm=OfflineLLM(), question=LABEL).format_input({"record": RECORD})


class FakeSDKQuestion:
    """What argilla's question objects offer: ``serialize()``."""

    def serialize(self) -> dict[str, Any]:
        return LABEL


def test_argilla_sdk_objects_are_read_as_their_dicts() -> None:
    task = labeller(question=FakeSDKQuestion())
    assert task.question == LABEL


# -- the answer ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("q", "answer", "value"),
    [
        (LABEL, '{"label": "positive"}', "positive"),
        (LABEL, 'Sure!\n```json\n{"label": "Negative"}\n```', "negative"),
        (MULTI, '{"labels": ["quality", "delivery", "quality"]}', ["quality", "delivery"]),
        (MULTI, '{"labels": []}', []),
        (RATING, '{"rating": 4}', 4),
        (RATING, '{"rating": "5"}', 5),
        (TEXT, '{"text": "  Praises the speed. "}', "Praises the speed."),
    ],
)
def test_realistic_answers(q: dict[str, Any], answer: str, value: Any) -> None:
    task = labeller(question=q)
    assert task.format_output(answer, {"record": RECORD}) == {
        "suggestion": {
            "value": value,
            "question_name": q["name"],
            "type": "model",
            "agent": "judge",
        }
    }


@pytest.mark.parametrize(
    ("q", "answer", "message"),
    [
        (LABEL, '{"label": "neutral"}', "not one of"),
        (LABEL, '{"labels": "positive"}', 'no "label"'),
        (MULTI, '{"labels": ["price", "color"]}', "'color' is not one of"),
        (RATING, '{"rating": 9}', "not one of"),
        (RATING, '{"rating": true}', "not one of"),
        (TEXT, '{"text": ""}', "empty"),
        (LABEL, "positive, I think", "no JSON"),
        (LABEL, None, "returned no text"),
    ],
)
def test_malformed_answers_fail_the_row(
    q: dict[str, Any], answer: str | None, message: str
) -> None:
    with pytest.raises(OutputParseError, match=message):
        labeller(question=q).format_output(answer, {"record": RECORD})


def test_answer_schema_per_question_type() -> None:
    assert labeller(question=LABEL).get_structured_output() == {
        "title": "ArgillaSuggestion",
        "type": "object",
        "properties": {"label": {"type": "string", "enum": ["positive", "negative"]}},
        "required": ["label"],
    }
    multi = labeller(question=MULTI).get_structured_output()
    assert multi is not None and multi["properties"]["labels"]["items"]["enum"][0] == "price"
    rating = labeller(question=RATING).get_structured_output()
    assert rating is not None and rating["properties"]["rating"]["enum"] == [1, 2, 3, 4, 5]
    assert labeller().get_structured_output() is None


# -- in a pipeline -------------------------------------------------------------------------------


def test_standalone_as_distilabel_documents_it() -> None:
    task = labeller('{"rating": 5}', question=RATING)
    task.load()
    (rows,) = list(task.process([{"record": RECORD}, {"record": {"fields": {"text": "meh"}}}]))
    assert [r["suggestion"]["value"] for r in rows] == [5, 5]
    assert {r["model_name"] for r in rows} == {"judge"}


def chat_server(request: Request) -> Reply:
    schema = request.json["response_format"]["json_schema"]["schema"]
    options = schema["properties"]["label"]["enum"]
    prompt = request.json["messages"][-1]["content"]
    label = options[1] if "Broke" in prompt.split("# Record")[1] else options[0]
    return Reply(
        body={
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": json.dumps({"label": label})},
                    "finish_reason": "stop",
                }
            ],
            "usage": {"prompt_tokens": 10, "completion_tokens": 3},
        }
    )


def test_a_pipeline_holds_the_llm_to_the_question_schema() -> None:
    records = [record("Lovely."), record("Broke in a week."), {"fields": {"text": None}}]
    with fake_api(chat_server) as api:
        with Pipeline(name="argilla-labeller") as pipeline:
            load = LoadDataFromDicts(data=[{"record": r} for r in records])
            load >> ArgillaLabeller(
                name="label",
                llm=OpenAILLM(model="gpt-4o-mini", base_url=f"{api.url}/v1", api_key="k"),
                fields=FIELDS,
                question=LABEL,
            )
        rows = list(pipeline.run(progress=False)["default"]["train"])
    assert [r["suggestion"]["value"] for r in rows] == ["positive", "negative", "positive"]
    assert rows[0]["suggestion"] == {
        "value": "positive",
        "question_name": "label",
        "type": "model",
        "agent": "gpt-4o-mini",
    }
    assert all(r.get(ERROR_COLUMN) is None for r in rows)
    assert len(api.requests) == 3


def test_a_failed_answer_keeps_the_row_with_a_null_suggestion() -> None:
    with Pipeline(name="argilla-labeller-bad") as pipeline:
        load = LoadDataFromDicts(data=[{"record": RECORD}])
        load >> labeller('{"label": "maybe"}', name="label", question=LABEL)
    (row,) = list(pipeline.run(progress=False)["default"]["train"])
    assert row["suggestion"] is None and "not one of" in row[ERROR_COLUMN]


# -- with an Argilla server --------------------------------------------------------------------


def argilla_call(url: str, method: str, path: str, body: Any = None) -> Any:
    import urllib.request

    from tests.servers.argilla import API_KEY

    request = urllib.request.Request(
        f"{url}{path}",
        method=method,
        data=None if body is None else json.dumps(body).encode(),
        headers={"x-argilla-api-key": API_KEY, "content-type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.loads(response.read())


def test_suggestions_for_a_dataset_on_an_argilla_server(monkeypatch: pytest.MonkeyPatch) -> None:
    """A dataset made by TextGenerationToArgilla, its fields and question read over Argilla's
    API, its records labelled, and the suggestions sent back as Argilla takes them."""
    from synthflow.steps import TextGenerationToArgilla
    from tests.servers.argilla import API_KEY, FakeArgilla

    server = FakeArgilla()
    server.api.start()
    monkeypatch.setenv("ARGILLA_API_URL", server.url)
    monkeypatch.setenv("ARGILLA_API_KEY", API_KEY)
    try:
        with Pipeline(name="to-argilla") as pipeline:
            rows = [{"instruction": "Name a colour.", "generation": "Blue."}]
            rows.append({"instruction": "Name a fruit.", "generation": "A hammer."})
            load = LoadDataFromDicts(data=rows)
            load >> TextGenerationToArgilla(dataset_name="reviews")
        pipeline.run(progress=False, use_cache=False)
        dataset = server.dataset("reviews")
        base = f"/api/v1/datasets/{dataset['id']}"
        fields = argilla_call(server.url, "GET", f"{base}/fields")["items"]
        (quality,) = argilla_call(server.url, "GET", f"{base}/questions")["items"]
        records = server.records("reviews")

        def judge(messages: list[dict[str, Any]]) -> str:
            record = messages[-1]["content"].split("# Record")[1]
            return '{"label": "bad"}' if "hammer" in record else '{"label": "good"}'

        with Pipeline(name="label-argilla") as pipeline:
            load = LoadDataFromDicts(data=[{"record": r} for r in records])
            load >> ArgillaLabeller(
                name="label",
                llm=FunctionLLM(fn=judge, model="judge"),
                fields=fields,
                question=quality,
                guidelines=dataset.get("guidelines"),
            )
        labelled = list(pipeline.run(progress=False, use_cache=False)["default"]["train"])
        assert [r["suggestion"]["value"] for r in labelled] == ["good", "bad"]

        items = [
            {
                **row["record"],
                "suggestions": [
                    {
                        "question_id": quality["id"],
                        "value": row["suggestion"]["value"],
                        "type": row["suggestion"]["type"],
                        "agent": row["suggestion"]["agent"],
                    }
                ],
            }
            for row in labelled
        ]
        argilla_call(server.url, "PUT", f"{base}/records/bulk", {"items": items})
    finally:
        server.api.stop()
    suggested = [r["suggestions"][0]["value"] for r in server.records("reviews")]
    assert suggested == ["good", "bad"]
