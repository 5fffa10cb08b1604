"""LiteLLM against a stand-in ``litellm`` module (the real one is a heavy dependency)."""

from __future__ import annotations

import re
import sys
import types
from types import SimpleNamespace
from typing import Any

import pytest

from synthflow.errors import (
    LLMConnectionError,
    LLMEmptyAnswerError,
    LLMError,
    LLMStatusError,
    LLMTimeoutError,
)
from synthflow.models.llms.base import Usage
from synthflow.models.llms.local.litellm import LiteLLM


class Timeout(Exception):
    status_code = 408


class APIConnectionError(Exception):
    status_code = 500


class RateLimitError(Exception):
    status_code = 429


def install_litellm(
    monkeypatch: pytest.MonkeyPatch, respond: Any, *, as_dicts: bool = False
) -> list[dict[str, Any]]:
    """``respond(kwargs)`` returns the texts of the choices, or raises."""
    calls: list[dict[str, Any]] = []

    async def acompletion(**kwargs: Any) -> Any:
        calls.append(kwargs)
        texts = respond(kwargs)
        choices: list[dict[str, Any]] = [
            {"index": i, "message": {"content": t}} for i, t in enumerate(texts)
        ]
        usage = {"prompt_tokens": 10, "completion_tokens": 3 * len(texts)}
        if as_dicts:
            return {"choices": choices, "usage": usage}
        return SimpleNamespace(
            choices=[
                SimpleNamespace(index=c["index"], message=SimpleNamespace(**c["message"]))
                for c in reversed(choices)
            ],
            usage=SimpleNamespace(**usage),
        )

    module = types.ModuleType("litellm")
    module.acompletion = acompletion  # type: ignore[attr-defined]
    module.Timeout = Timeout  # type: ignore[attr-defined]
    module.APIConnectionError = APIConnectionError  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "litellm", module)
    return calls


MESSAGES = [{"role": "user", "content": "hi"}]


@pytest.mark.anyio
@pytest.mark.parametrize("as_dicts", [False, True])
async def test_one_call_with_n_and_mapped_arguments(
    monkeypatch: pytest.MonkeyPatch, as_dicts: bool
) -> None:
    calls = install_litellm(
        monkeypatch, lambda kw: [f"a{i}" for i in range(kw.get("n", 1))], as_dicts=as_dicts
    )
    llm = LiteLLM(
        model="ollama/llama3",
        api_base="http://localhost:11434",
        api_key="sk-test",
        generation_kwargs={"max_new_tokens": 20, "temperature": 0.2, "seed": 1},
    )
    llm.load()
    output = await llm.agenerate(MESSAGES, num_generations=2)
    assert output.generations == ["a0", "a1"]
    assert output.usage == Usage(10, 6)
    assert calls == [
        {
            "model": "ollama/llama3",
            "messages": MESSAGES,
            "n": 2,
            "max_tokens": 20,
            "temperature": 0.2,
            "seed": 1,
            "timeout": 120.0,
            "num_retries": 3,
            "api_base": "http://localhost:11434",
            "api_key": "sk-test",
        }
    ]
    assert "api_key" not in llm.model_dump()
    assert llm.model_name == "ollama/llama3"


@pytest.mark.anyio
async def test_fewer_choices_than_asked_are_topped_up(monkeypatch: pytest.MonkeyPatch) -> None:
    calls = install_litellm(monkeypatch, lambda kw: ["only one"])
    output = await LiteLLM(model="x/y").agenerate(MESSAGES, num_generations=3)
    assert output.generations == ["only one"] * 3
    assert [c.get("n") for c in calls] == [3, 2, None]
    assert output.usage == Usage(30, 9)


@pytest.mark.anyio
async def test_without_n_support_generations_are_single_calls(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    calls = install_litellm(monkeypatch, lambda kw: ["x"])
    output = await LiteLLM(model="x/y", supports_n=False).agenerate(MESSAGES, num_generations=3)
    assert output.generations == ["x", "x", "x"]
    assert len(calls) == 3 and all("n" not in c for c in calls)


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("raised", "expected"),
    [
        (Timeout("slow"), LLMTimeoutError),
        (APIConnectionError("reset"), LLMConnectionError),
        (RateLimitError("too many"), LLMStatusError),
        (RuntimeError("odd"), LLMError),
    ],
)
async def test_litellm_errors_become_synthflow_errors(
    monkeypatch: pytest.MonkeyPatch, raised: Exception, expected: type[LLMError]
) -> None:
    def respond(kwargs: Any) -> list[str]:
        raise raised

    install_litellm(monkeypatch, respond)
    with pytest.raises(expected) as info:
        await LiteLLM(model="x/y").agenerate(MESSAGES)
    assert type(info.value) is expected
    assert info.value.__cause__ is raised
    if isinstance(info.value, LLMStatusError):
        assert info.value.status_code == 429


@pytest.mark.anyio
async def test_an_empty_answer_is_an_error(monkeypatch: pytest.MonkeyPatch) -> None:
    install_litellm(monkeypatch, lambda kw: [])
    with pytest.raises(LLMEmptyAnswerError, match="no text for 1 of 1 generations"):
        await LiteLLM(model="x/y").agenerate(MESSAGES)


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("choice", "reason"),
    [
        ({"message": {"content": None, "refusal": "No."}}, "refused: 'No.'"),
        (
            {"message": {"content": "partial"}, "finish_reason": "content_filter"},
            "blocked by a content filter",
        ),
    ],
)
async def test_a_refusal_or_filtered_choice_is_a_failed_call(
    monkeypatch: pytest.MonkeyPatch, choice: dict[str, Any], reason: str
) -> None:
    async def acompletion(**kwargs: Any) -> Any:
        return {"choices": [{"index": 0, **choice}], "usage": {}}

    module = types.ModuleType("litellm")
    module.acompletion = acompletion  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "litellm", module)
    with pytest.raises(LLMEmptyAnswerError, match=re.escape(reason)):
        await LiteLLM(model="x/y").agenerate(MESSAGES)


def test_a_cost_budget_prices_litellm_calls_by_the_routed_model_name(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from synthflow.errors import PipelineValidationError
    from synthflow.pipeline import Pipeline
    from synthflow.steps import LoadDataFromDicts
    from synthflow.steps.tasks import TextGeneration

    install_litellm(monkeypatch, lambda kwargs: ["ok"])

    def run(model: str) -> Any:
        with Pipeline(name=f"litellm-budget-{model.replace('/', '-')}") as pipeline:
            load = LoadDataFromDicts(data=[{"instruction": "q"}])
            load >> TextGeneration(name="gen", llm=LiteLLM(model=model))
        return pipeline.run(progress=False, max_cost=1.0)

    # "openai/gpt-4o-mini" is priced as gpt-4o-mini: 10 input and 3 output tokens.
    assert run("openai/gpt-4o-mini").llm_usage().cost == pytest.approx((10 * 0.15 + 3 * 0.6) / 1e6)
    # A billed model with no price refuses a cost budget rather than let its calls through.
    with pytest.raises(PipelineValidationError, match="no price is known for model 'acme/x-1'"):
        run("acme/x-1")
