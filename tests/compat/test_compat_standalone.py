"""Steps, tasks and LLMs used alone, outside a pipeline, as distilabel's docs use them."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from synthflow.errors import StepError
from synthflow.models.llms import OpenAILLM
from synthflow.steps import Step, StepInput, StepOutput, step
from synthflow.steps.tasks import TextGeneration
from synthflow.testing import FunctionLLM, OfflineLLM
from tests.servers import FakeAPI, Reply, Request, fake_api


class Upper(Step):
    @property
    def inputs(self) -> list[str]:
        return ["text"]

    @property
    def outputs(self) -> list[str]:
        return ["upper"]

    def process(self, inputs: StepInput) -> StepOutput:
        for row in inputs:
            row["upper"] = row["text"].upper()
        yield inputs


@step(inputs=["text"], outputs=["size"])
def Size(*inputs: StepInput) -> StepOutput:
    for row in inputs[0]:
        row["size"] = len(row["text"])
    yield inputs[0]


def test_a_step_processes_a_batch_by_position_or_keyword() -> None:
    upper = Upper(name="upper")
    upper.load()
    assert next(upper.process([{"text": "a"}])) == [{"text": "a", "upper": "A"}]
    assert next(upper.process(inputs=[{"text": "b"}])) == [{"text": "b", "upper": "B"}]
    size = Size(name="size")
    size.load()
    assert next(size.process([{"text": "abc"}])) == [{"text": "abc", "size": 3}]
    assert next(size.process(inputs=[{"text": "ab"}])) == [{"text": "ab", "size": 2}]


def test_a_task_processes_a_batch_synchronously() -> None:
    task = TextGeneration(name="gen", llm=OfflineLLM())
    task.load()
    rows = next(task.process([{"instruction": "Hi"}, {"instruction": "Bye"}]))
    assert [r["instruction"] for r in rows] == ["Hi", "Bye"]
    assert all(isinstance(r["generation"], str) for r in rows)
    assert {r["model_name"] for r in rows} == {"synthflow-offline"}
    assert "statistics_gen" in rows[0]["synthflow_metadata"]
    grouped = TextGeneration(name="g2", llm=OfflineLLM(), num_generations=2, group_generations=True)
    grouped.load()
    (row,) = next(grouped.process(inputs=[{"instruction": "Hi"}]))
    assert len(row["generation"]) == 2


def test_a_task_runs_its_rows_concurrently() -> None:
    in_flight = 0
    peak = 0

    async def answer(messages: list[dict[str, Any]]) -> str:
        nonlocal in_flight, peak
        in_flight += 1
        peak = max(peak, in_flight)
        await asyncio.sleep(0.05)
        in_flight -= 1
        return "ok"

    task = TextGeneration(name="gen", llm=FunctionLLM(fn=answer))
    task.load()
    rows = next(task.process([{"instruction": str(i)} for i in range(8)]))
    assert [r["generation"] for r in rows] == ["ok"] * 8
    assert peak == 8


def test_a_task_alone_works_inside_a_running_event_loop() -> None:
    task = TextGeneration(name="gen", llm=OfflineLLM())
    task.load()

    async def notebook_cell() -> list[dict[str, Any]]:
        return next(task.process([{"instruction": "Hi"}]))

    assert asyncio.run(notebook_cell())[0]["generation"]


def test_llm_generate_returns_distilabels_shape() -> None:
    llm = OfflineLLM()
    llm.load()
    outputs = llm.generate(
        inputs=[
            [{"role": "user", "content": "What's the capital of Spain?"}],
            [{"role": "user", "content": "And of France?"}],
        ],
        num_generations=2,
    )
    assert len(outputs) == 2
    for output in outputs:
        assert len(output["generations"]) == 2
        assert set(output["statistics"]) == {"input_tokens", "output_tokens"}
        assert isinstance(output["statistics"]["input_tokens"], list)
    assert llm.generate_outputs(inputs=[[{"role": "user", "content": "x"}]])[0]["generations"]


def openai_answer(request: Request) -> Reply:
    body = request.json
    content = f"{body['messages'][-1]['content']}/{body.get('temperature')}"
    return Reply(
        body={
            "id": "c",
            "object": "chat.completion",
            "model": body["model"],
            "choices": [
                {
                    "index": i,
                    "message": {
                        "role": "assistant",
                        "content": content,
                    },
                    "finish_reason": "stop",
                }
                for i in range(body.get("n", 1))
            ],
            "usage": {"prompt_tokens": 7, "completion_tokens": 3, "total_tokens": 10},
        }
    )


def client(api: FakeAPI) -> OpenAILLM:
    return OpenAILLM(model="gpt-4o-mini", base_url=f"{api.url}/v1", api_key="sk-test")


def test_an_api_llm_generates_synchronously_and_asynchronously() -> None:
    with fake_api(openai_answer) as api:
        llm = client(api)
        llm.load()
        outputs = llm.generate(inputs=[[{"role": "user", "content": "q"}]], temperature=0.5)
        assert outputs == [
            {"generations": ["q/0.5"], "statistics": {"input_tokens": [7], "output_tokens": [3]}}
        ]
        assert llm.generation_kwargs == {}  # the override was for that call only

        async def call() -> Any:
            try:
                return await llm.agenerate([{"role": "user", "content": "r"}], num_generations=1)
            finally:
                await llm.aclose()

        assert asyncio.run(call()).generations[0].startswith("r/")


def test_a_task_alone_calls_an_api_llm() -> None:
    with fake_api(openai_answer) as api:
        task = TextGeneration(
            name="gen", llm=client(api), system_prompt="Be brief.", add_raw_output=False
        )
        task.llm.generation_kwargs = {"temperature": 0.1}
        task.load()
        rows = next(task.process(inputs=[{"instruction": "a"}, {"instruction": "b"}]))
        assert [r["generation"] for r in rows] == ["a/0.1", "b/0.1"]
        assert api.requests[0].json["messages"][0] == {"role": "system", "content": "Be brief."}


def failing(messages: list[dict[str, Any]]) -> str:
    if messages[-1]["content"] == "bad":
        raise RuntimeError("the endpoint broke")
    return "fine"


def test_a_task_alone_follows_its_error_policy() -> None:
    rows = [{"instruction": "ok"}, {"instruction": "bad"}]
    nulls = TextGeneration(name="gen", llm=FunctionLLM(fn=failing))
    nulls.load()
    out = next(nulls.process([dict(r) for r in rows]))
    assert [r["generation"] for r in out] == ["fine", None]
    assert "the endpoint broke" in out[1]["synthflow_error"]
    assert all(not k.startswith("_sf_") for r in out for k in r)
    drops = TextGeneration(name="gen", llm=FunctionLLM(fn=failing), on_error="drop")
    drops.load()
    assert len(next(drops.process([dict(r) for r in rows]))) == 1
    fails = TextGeneration(name="gen", llm=FunctionLLM(fn=failing), on_error="fail")
    fails.load()
    with pytest.raises(StepError, match="the endpoint broke"):
        next(fails.process([dict(r) for r in rows]))
