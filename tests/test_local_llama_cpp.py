"""LlamaCppLLM against a stand-in ``llama_cpp`` module that records what it is given.

No GGUF model file is at hand offline, so these tests check only synthflow's side: the ``Llama``
arguments, the ``create_chat_completion`` arguments, and how responses are read.
"""

from __future__ import annotations

import sys
import types
from typing import Any

import pytest

from synthflow.models.llms.base import Usage
from synthflow.models.llms.local.llama_cpp import LlamaCppLLM
from synthflow.pipeline import Pipeline
from synthflow.steps import LoadDataFromDicts
from synthflow.steps.tasks import TextGeneration


class FakeLlama:
    def __init__(self, answers: list[str], kwargs: dict[str, Any]) -> None:
        self.kwargs = kwargs
        self.answers = answers
        self.calls: list[dict[str, Any]] = []

    def create_chat_completion(self, **kwargs: Any) -> dict[str, Any]:
        self.calls.append(kwargs)
        last = kwargs["messages"][-1]["content"]
        text = self.answers.pop(0) if self.answers else f"re: {last}"
        return {
            "choices": [{"index": 0, "message": {"role": "assistant", "content": text}}],
            "usage": {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5},
        }


def install_llama_cpp(
    monkeypatch: pytest.MonkeyPatch, answers: list[str] | None = None
) -> types.ModuleType:
    module = types.ModuleType("llama_cpp")
    module.models = []  # type: ignore[attr-defined]

    def make(**kwargs: Any) -> FakeLlama:
        model = FakeLlama(list(answers or []), kwargs)
        module.models.append(model)
        return model

    module.Llama = make  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "llama_cpp", module)
    return module


def test_load_opens_the_model_file_with_its_arguments(monkeypatch: pytest.MonkeyPatch) -> None:
    llama_cpp = install_llama_cpp(monkeypatch)
    llm = LlamaCppLLM(
        model_path="/models/qwen-0.5b-q4.gguf",
        n_ctx=2048,
        n_gpu_layers=-1,
        chat_format="chatml",
        model_kwargs={"n_threads": 4},
    )
    llm.load()
    assert llama_cpp.models[0].kwargs == {
        "model_path": "/models/qwen-0.5b-q4.gguf",
        "n_ctx": 2048,
        "n_gpu_layers": -1,
        "verbose": False,
        "chat_format": "chatml",
        "n_threads": 4,
    }
    assert llm.model_name == "qwen-0.5b-q4.gguf"


@pytest.mark.anyio
async def test_each_generation_is_one_call_with_mapped_arguments(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    llama_cpp = install_llama_cpp(monkeypatch)
    llm = LlamaCppLLM(
        model_path="m.gguf",
        generation_kwargs={
            "max_new_tokens": 32,
            "temperature": 0.5,
            "top_p": 0.9,
            "seed": 10,
            "stop": "###",
            "repetition_penalty": 1.2,
        },
    )
    llm.load()
    messages = [{"role": "user", "content": "hi"}]
    output = await llm.agenerate(messages, num_generations=2)
    assert output.generations == ["re: hi", "re: hi"]
    assert output.usage == Usage(6, 4)
    calls = llama_cpp.models[0].calls
    assert calls[0] == {
        "messages": messages,
        "max_tokens": 32,
        "temperature": 0.5,
        "top_p": 0.9,
        "seed": 10,
        "stop": ["###"],
        "repeat_penalty": 1.2,
    }
    assert calls[1]["seed"] == 11  # the second sample differs from the first


@pytest.mark.anyio
async def test_structured_output_uses_a_json_schema_response_format(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    schema = {"type": "object", "required": ["a"]}
    llama_cpp = install_llama_cpp(monkeypatch, answers=["{}", '{"a": 2}'])
    llm = LlamaCppLLM(model_path="m.gguf", structured_output=schema)
    llm.load()
    output = await llm.agenerate([{"role": "user", "content": "hi"}])
    assert output.generations == ['{"a": 2}']
    first, reask = llama_cpp.models[0].calls
    assert first["response_format"] == {"type": "json_object", "schema": schema}
    assert first["max_tokens"] == 512
    assert reask["messages"][-1]["content"].startswith("Your previous answer is not valid JSON")


def test_a_task_uses_it_in_a_pipeline(monkeypatch: pytest.MonkeyPatch) -> None:
    install_llama_cpp(monkeypatch)  # on the loop: a process worker would not see the stand-in
    with Pipeline() as pipeline:
        load = LoadDataFromDicts(data=[{"instruction": "a"}, {"instruction": "b"}])
        load >> TextGeneration(name="gen", llm=LlamaCppLLM(model_path="/x/tiny.gguf"))
    rows = list(pipeline.run()["default"]["train"])
    assert [(r["generation"], r["model_name"]) for r in rows] == [
        ("re: a", "tiny.gguf"),
        ("re: b", "tiny.gguf"),
    ]
