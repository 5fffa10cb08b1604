"""The public test doubles in synthflow.testing, and structured-output validation."""

from __future__ import annotations

import anyio
import orjson
from pydantic import BaseModel

from synthflow.models.callpath.structured import validation_error
from synthflow.pipeline import Pipeline
from synthflow.steps import LoadDataFromDicts
from synthflow.steps.tasks import TextGeneration
from synthflow.testing import FunctionLLM, OfflineLLM


class Review(BaseModel):
    rating: int
    summary: str
    tags: list[str]


def test_offline_llm_answers_deterministically() -> None:
    llm = OfflineLLM(seed=1)
    messages = [{"role": "user", "content": "hi"}]
    first = anyio.run(lambda: llm.agenerate(messages, num_generations=2))
    again = anyio.run(lambda: llm.agenerate(messages, num_generations=2))
    assert first.generations == again.generations
    assert first.generations[0] != first.generations[1]
    other = anyio.run(lambda: OfflineLLM(seed=2).agenerate(messages))
    assert other.generations[0] != first.generations[0]


def test_offline_llm_produces_schema_valid_structured_output() -> None:
    llm = OfflineLLM(structured_output=Review)
    out = anyio.run(lambda: llm.agenerate([{"role": "user", "content": "rate"}], num_generations=3))
    for text in out.generations:
        assert text is not None
        assert validation_error(text, llm.structured_output or {}, Review) is None
        Review.model_validate(orjson.loads(text))


def test_function_llm_scripts_answers_and_failures_in_a_pipeline() -> None:
    def script(messages: list[dict[str, str]]) -> str:
        if messages[-1]["content"] == "boom":
            raise ConnectionError("scripted failure")
        return messages[-1]["content"][::-1]

    with Pipeline() as pipeline:
        load = LoadDataFromDicts(data=[{"instruction": "abc"}, {"instruction": "boom"}])
        load >> TextGeneration(name="gen", llm=FunctionLLM(fn=script))
    rows = list(pipeline.run(progress=False)["default"]["train"])
    assert rows[0]["generation"] == "cba"
    assert rows[1]["generation"] is None
    assert "scripted failure" in rows[1]["synthflow_error"]


def test_function_llm_holds_answers_to_structured_output_and_re_asks() -> None:
    asked: list[list[dict[str, str]]] = []

    def script(messages: list[dict[str, str]]) -> str:
        asked.append(messages)
        if len(messages) == 1:  # the first answer misses a field
            return '{"rating": 4, "summary": "fine"}'
        return '{"rating": 4, "summary": "fine", "tags": ["ok"]}'

    with Pipeline() as pipeline:
        load = LoadDataFromDicts(data=[{"instruction": "rate it"}])
        llm = FunctionLLM(fn=script, structured_output=Review)
        load >> TextGeneration(name="gen", llm=llm)
    rows = list(pipeline.run(progress=False)["default"]["train"])

    # The answer arrives as JSON text, as with every LLM; it follows the schema.
    assert rows[0]["generation"] == '{"rating": 4, "summary": "fine", "tags": ["ok"]}'
    assert Review.model_validate_json(rows[0]["generation"]).tags == ["ok"]
    assert len(asked) == 2
    assert asked[1][1] == {"role": "assistant", "content": '{"rating": 4, "summary": "fine"}'}
    assert "tags" in asked[1][2]["content"]


def test_function_llm_structured_output_that_never_fits_fails_the_row() -> None:
    with Pipeline() as pipeline:
        load = LoadDataFromDicts(data=[{"instruction": "rate it"}])
        llm = FunctionLLM(fn=lambda messages: "not json", structured_output=Review)
        load >> TextGeneration(name="gen", llm=llm)
    rows = list(pipeline.run(progress=False)["default"]["train"])
    assert rows[0]["generation"] is None
    assert "does not follow the output schema after 2 re-asks" in rows[0]["synthflow_error"]


def test_schema_validation_reports_where_it_fails() -> None:
    schema = Review.model_json_schema()
    assert validation_error('{"rating": 5, "summary": "ok", "tags": []}', schema) is None
    assert validation_error('{"rating": "5", "summary": "ok", "tags": []}', schema) == (
        "$.rating: expected integer, got str"
    )
    assert validation_error('{"rating": 5}', schema) == "$: missing required property 'summary'"
    assert validation_error('```json\n{"rating": 5, "summary": "x", "tags": [1]}\n```', schema) == (
        "$.tags[0]: expected string, got int"
    )
    assert validation_error("nope", schema, None).startswith("not JSON")
