"""vLLM against a stand-in ``vllm`` module that records what it is given.

vLLM needs a GPU and can't be installed here, so these tests check only synthflow's side: the
engine arguments, the ``SamplingParams`` mapping, the prompts, and how outputs are read.
"""

from __future__ import annotations

import sys
import types
from types import SimpleNamespace
from typing import Any

import pytest

from synthflow.models.llms.base import Usage
from synthflow.models.llms.local.vllm import vLLM


class FakeTokenizer:
    def __init__(self, chat_template: str | None) -> None:
        self.chat_template = chat_template
        self.bos_token = "<s>"
        self.templates: list[str] = []

    def apply_chat_template(
        self, messages: list[dict[str, Any]], *, chat_template: str, **kwargs: Any
    ) -> str:
        assert kwargs == {"tokenize": False, "add_generation_prompt": True}
        self.templates.append(chat_template)
        return "".join(f"<|{m['role']}|> {m['content']} " for m in messages) + "<|assistant|>"

    def encode(self, text: str, add_special_tokens: bool) -> list[int]:
        assert add_special_tokens is False
        return [len(word) for word in text.split()]


class FakeEngine:
    def __init__(
        self, answers: list[str], tokenizer: FakeTokenizer, kwargs: dict[str, Any]
    ) -> None:
        self.kwargs = kwargs
        self.answers = answers
        self.tokenizer = tokenizer
        self.calls: list[tuple[list[dict[str, Any]], Any]] = []

    def get_tokenizer(self) -> FakeTokenizer:
        return self.tokenizer

    def generate(self, prompts: list[dict[str, Any]], params: Any, *, use_tqdm: bool) -> Any:
        assert use_tqdm is False
        self.calls.append((prompts, params))
        results = []
        for prompt in prompts:
            outputs = [
                SimpleNamespace(
                    index=i,
                    text=self.answers.pop(0) if self.answers else f"answer {i}",
                    token_ids=[7] * (i + 2),
                )
                for i in reversed(range(params.kwargs["n"]))  # the engine's order is not ours
            ]
            results.append(
                SimpleNamespace(prompt_token_ids=prompt["prompt_token_ids"], outputs=outputs)
            )
        return results


class Recorded:
    def __init__(self, **kwargs: Any) -> None:
        self.kwargs = kwargs


def install_vllm(
    monkeypatch: pytest.MonkeyPatch,
    *,
    chat_template: str | None = "{{ template }}",
    answers: list[str] | None = None,
    guided: str = "StructuredOutputsParams",
) -> types.ModuleType:
    module = types.ModuleType("vllm")
    tokenizer = FakeTokenizer(chat_template)
    module.engines = []  # type: ignore[attr-defined]

    def make_engine(**kwargs: Any) -> FakeEngine:
        engine = FakeEngine(list(answers or []), tokenizer, kwargs)
        module.engines.append(engine)
        return engine

    module.LLM = make_engine  # type: ignore[attr-defined]
    module.SamplingParams = type("SamplingParams", (Recorded,), {})  # type: ignore[attr-defined]
    sampling = types.ModuleType("vllm.sampling_params")
    setattr(sampling, guided, type(guided, (Recorded,), {}))
    module.sampling_params = sampling  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "vllm", module)
    monkeypatch.setitem(sys.modules, "vllm.sampling_params", sampling)
    return module


def test_load_creates_the_engine_with_its_arguments(monkeypatch: pytest.MonkeyPatch) -> None:
    vllm = install_vllm(monkeypatch)
    llm = vLLM(
        model="org/model",
        revision="v1",
        dtype="bfloat16",
        tensor_parallel_size=2,
        gpu_memory_utilization=0.5,
        max_model_len=4096,
        engine_kwargs={"enforce_eager": True, "dtype": "float16"},
    )
    llm.load()
    assert vllm.engines[0].kwargs == {
        "model": "org/model",
        "tokenizer": None,
        "revision": "v1",
        "dtype": "float16",  # engine_kwargs win
        "quantization": None,
        "trust_remote_code": False,
        "tensor_parallel_size": 2,
        "gpu_memory_utilization": 0.5,
        "max_model_len": 4096,
        "enforce_eager": True,
    }
    assert llm.model_name == "org/model"


def test_generation_kwargs_become_sampling_params(monkeypatch: pytest.MonkeyPatch) -> None:
    install_vllm(monkeypatch)
    llm = vLLM(
        model="m",
        generation_kwargs={
            "max_new_tokens": 64,
            "temperature": 0.3,
            "top_p": 0.8,
            "top_k": 20,
            "seed": 5,
            "stop": "END",
            "min_p": 0.1,
        },
    )
    assert llm.sampling_params(3).kwargs == {
        "n": 3,
        "max_tokens": 64,
        "temperature": 0.3,
        "top_p": 0.8,
        "top_k": 20,
        "seed": 5,
        "stop": ["END"],
        "min_p": 0.1,
    }
    llm.generation_kwargs = {"do_sample": False, "max_tokens": 9}
    assert llm.sampling_params(1).kwargs == {"n": 1, "max_tokens": 9, "temperature": 0.0}
    llm.generation_kwargs = {}
    assert llm.sampling_params(1).kwargs == {"n": 1, "max_tokens": 512}


@pytest.mark.anyio
async def test_prompts_use_the_chat_template_and_outputs_are_read_in_order(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    vllm = install_vllm(monkeypatch)
    llm = vLLM(model="m", chat_template="mine")
    llm.load()
    output = await llm.agenerate([{"role": "user", "content": "hi there"}], num_generations=2)
    assert output.generations == ["answer 0", "answer 1"]
    # "<|user|> hi there <|assistant|>" -> one id per word; outputs of 2 and 3 tokens.
    assert output.usage == Usage(4, 5)
    engine = vllm.engines[0]
    ((prompts, params),) = engine.calls
    assert prompts == [{"prompt_token_ids": [8, 2, 5, 13]}]
    assert params.kwargs["n"] == 2 and "stop" not in params.kwargs
    assert engine.tokenizer.templates == ["mine"]


@pytest.mark.anyio
async def test_concurrent_calls_reach_the_engine_as_one_batch(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    vllm = install_vllm(monkeypatch)
    llm = vLLM(model="m")
    llm.load()
    outputs = await llm.agenerate_batch(
        [[{"role": "user", "content": "w " * (i + 1)}] for i in range(5)]
    )
    assert [o.usage.input_tokens for o in outputs] == [3, 4, 5, 6, 7]
    assert [len(prompts) for prompts, _ in vllm.engines[0].calls] == [5]


@pytest.mark.anyio
async def test_without_a_chat_template_the_plain_one_is_used(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    vllm = install_vllm(monkeypatch, chat_template=None)
    llm = vLLM(model="m", generation_kwargs={"stop": ["###"]})
    llm.load()
    await llm.agenerate([{"role": "user", "content": "hi"}])
    ((prompts, params),) = vllm.engines[0].calls
    # "<s>User: hi\n\nAssistant:" -> "<s>User:", "hi", "Assistant:"
    assert prompts == [{"prompt_token_ids": [8, 2, 10]}]
    assert params.kwargs["stop"] == ["###", "\n\nUser:"]


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("api", "keyword"),
    [
        ("StructuredOutputsParams", "structured_outputs"),
        ("GuidedDecodingParams", "guided_decoding"),
    ],
)
async def test_structured_output_uses_guided_decoding_and_is_validated(
    monkeypatch: pytest.MonkeyPatch, api: str, keyword: str
) -> None:
    schema = {"type": "object", "required": ["a"]}
    vllm = install_vllm(monkeypatch, guided=api, answers=['{"b": 1}', '{"a": 1}'])
    llm = vLLM(model="m", structured_output=schema)
    llm.load()
    output = await llm.agenerate([{"role": "user", "content": "hi"}])
    assert output.generations == ['{"a": 1}']
    first, reask = vllm.engines[0].calls
    assert first[1].kwargs[keyword].kwargs == {"json": schema}
    assert len(reask[0][0]["prompt_token_ids"]) > len(first[0][0]["prompt_token_ids"])


@pytest.mark.anyio
async def test_several_greedy_generations_are_one_answer_repeated(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    vllm = install_vllm(monkeypatch)
    llm = vLLM(model="m", generation_kwargs={"temperature": 0})
    llm.load()
    output = await llm.agenerate([{"role": "user", "content": "hi"}], num_generations=3)
    assert output.generations == ["answer 0"] * 3
    ((_, params),) = vllm.engines[0].calls
    assert params.kwargs["n"] == 1


def test_magpie_user_turns_send_the_raw_prompt(monkeypatch: pytest.MonkeyPatch) -> None:
    vllm = install_vllm(monkeypatch, chat_template=None, answers=["Question?"])
    llm = vLLM(model="m", magpie_pre_query_template="<|user|> start")
    llm.load()

    async def ask() -> Any:
        return await llm.agenerate_user_turn([])

    import anyio

    output = anyio.run(ask)
    assert output.generations == ["Question?"]
    [(prompts, _)] = vllm.engines[0].calls
    # The template alone, tokenized as it is (the fake tokenizer counts word lengths).
    assert prompts == [{"prompt_token_ids": [8, 5]}]
