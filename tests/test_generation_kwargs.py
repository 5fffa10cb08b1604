"""Generation kwargs are checked where they are set: every client, valid and invalid names and
types, distilabel 1.5.3's names, the escape hatches on the wire, and the CLI."""

from __future__ import annotations

import random
import types
import typing
from pathlib import Path
from typing import Any, Literal

import pytest

import synthflow.models.llms as llms
from synthflow.errors import RuntimeParameterError
from synthflow.models.llms.base import LLM
from synthflow.models.llms.generation_kwargs import (
    GenerationKwargsError,
    declared_generation_kwargs,
)
from synthflow.pipeline import Pipeline
from synthflow.steps import LoadDataFromDicts
from synthflow.steps.tasks import TextGeneration
from synthflow.testing import FunctionLLM
from tests.servers import Request, fake_api
from tests.test_cli import assert_one_line_error, synthflow
from tests.test_openai import completion

# How to build each client without a network, a GPU or a model file.
CLIENTS: dict[type[LLM], dict[str, Any]] = {
    llms.OpenAILLM: {"model": "m"},
    llms.AzureOpenAILLM: {"model": "m", "base_url": "https://x.openai.azure.com"},
    llms.TogetherLLM: {"model": "m"},
    llms.AnyscaleLLM: {"model": "m"},
    llms.GroqLLM: {"model": "m"},
    llms.MistralLLM: {"model": "m"},
    llms.InferenceEndpointsLLM: {"model_id": "org/m"},
    llms.AnthropicLLM: {"model": "m"},
    llms.CohereLLM: {"model": "m"},
    llms.GeminiLLM: {"model": "m"},
    llms.VertexAILLM: {"model": "m", "project": "p"},
    llms.OllamaLLM: {"model": "m"},
    llms.OfflineLLM: {},
    FunctionLLM: {"fn": lambda messages: "ok"},
    llms.TransformersLLM: {"model": "m"},
    llms.vLLM: {"model": "m"},
    llms.LlamaCppLLM: {"model_path": "m.gguf"},
    llms.LiteLLM: {"model": "openai/m"},
}

# distilabel 1.5.3's generation kwargs for each client (the keyword arguments of its
# agenerate/generate, by name), which its pipelines pass and which must keep working.
_DL_OPENAI = [
    "max_new_tokens",
    "logprobs",
    "top_logprobs",
    "echo",
    "frequency_penalty",
    "presence_penalty",
    "temperature",
    "top_p",
    "stop",
    "response_format",
    "extra_body",
]
DISTILABEL: dict[type[LLM], list[str]] = {
    llms.OpenAILLM: _DL_OPENAI,
    llms.AzureOpenAILLM: _DL_OPENAI,
    llms.TogetherLLM: _DL_OPENAI,
    llms.AnyscaleLLM: _DL_OPENAI,
    llms.GroqLLM: ["seed", "max_new_tokens", "temperature", "top_p", "stop"],
    llms.MistralLLM: ["max_new_tokens", "temperature", "top_p"],
    llms.InferenceEndpointsLLM: [
        "max_new_tokens",
        "frequency_penalty",
        "logit_bias",
        "logprobs",
        "presence_penalty",
        "seed",
        "stop_sequences",
        "temperature",
        "tool_choice",
        "tool_prompt",
        "tools",
        "top_logprobs",
        "top_n_tokens",
        "top_p",
        "do_sample",
        "repetition_penalty",
        "return_full_text",
        "top_k",
        "typical_p",
        "watermark",
    ],
    llms.AnthropicLLM: ["max_tokens", "stop_sequences", "temperature", "top_p", "top_k"],
    llms.CohereLLM: [
        "temperature",
        "max_tokens",
        "k",
        "p",
        "seed",
        "stop_sequences",
        "frequency_penalty",
        "presence_penalty",
        "raw_prompting",
    ],
    llms.VertexAILLM: [
        "temperature",
        "top_p",
        "top_k",
        "max_output_tokens",
        "stop_sequences",
        "safety_settings",
        "tools",
    ],
    llms.OllamaLLM: ["format", "options", "keep_alive"],
    llms.TransformersLLM: [
        "max_new_tokens",
        "temperature",
        "repetition_penalty",
        "top_p",
        "top_k",
        "do_sample",
    ],
    llms.vLLM: [
        "max_new_tokens",
        "presence_penalty",
        "frequency_penalty",
        "repetition_penalty",
        "temperature",
        "top_p",
        "top_k",
        "min_p",
        "logprobs",
        "stop",
        "stop_token_ids",
        "include_stop_str_in_output",
        "skip_special_tokens",
        "logits_processors",
        "extra_sampling_params",
        "echo",
    ],
    llms.LlamaCppLLM: [
        "max_new_tokens",
        "frequency_penalty",
        "presence_penalty",
        "temperature",
        "top_p",
        "extra_generation_kwargs",
    ],
    llms.LiteLLM: [
        "functions",
        "function_call",
        "temperature",
        "top_p",
        "stop",
        "max_tokens",
        "presence_penalty",
        "frequency_penalty",
        "logit_bias",
        "user",
        "metadata",
        "api_base",
        "api_version",
        "api_key",
        "model_list",
        "mock_response",
        "force_timeout",
        "custom_llm_provider",
    ],
}


def build(cls: type[LLM], **kwargs: Any) -> LLM:
    return cls(**CLIENTS[cls], **kwargs)


def spec_of(cls: type[LLM]) -> dict[str, Any]:
    assert cls.generation_kwargs_spec is not None
    return declared_generation_kwargs(cls.generation_kwargs_spec)


# -- an independent model of the types: a value each accepts, and one none of them does ------


def sample(hint: Any) -> Any:
    """A value of type ``hint``."""
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        return sample(typing.get_args(hint)[0])
    if origin is Literal:
        return typing.get_args(hint)[0]
    if origin is list:
        return []
    if origin is dict or hint is dict:
        return {}
    return {float: 0.5, int: 3, bool: True, str: "x"}.get(hint, "x")


def wrong_for(hint: Any) -> Any:
    """A value that is not of type ``hint``: text where a number is expected, and so on."""
    if hint in (float, int, bool) or (
        typing.get_origin(hint) is not None and str not in typing.get_args(hint)
    ):
        return "hot"
    return 3.5j  # a complex number is none of the declared types


CASES = [(cls, key, hint) for cls in CLIENTS for key, hint in spec_of(cls).items()]


def test_every_client_declares_its_generation_kwargs() -> None:
    exported = {getattr(llms, name) for name in llms.__all__}
    clients = {c for c in exported if isinstance(c, type) and issubclass(c, LLM)}
    abstract = {llms.LLM, llms.APILLM, llms.LocalLLM}
    for cls in (clients - abstract) | set(CLIENTS):
        assert cls.generation_kwargs_spec is not None, f"{cls.__name__} declares no kwargs"


@pytest.mark.parametrize(("cls", "key", "hint"), CASES, ids=lambda v: getattr(v, "__name__", v))
def test_a_declared_kwarg_of_its_type_or_none_is_taken_and_another_type_is_refused(
    cls: type[LLM], key: str, hint: Any
) -> None:
    if key in cls.unsupported_generation_kwargs:
        pytest.skip("refused on purpose")
    value = sample(hint)
    assert build(cls, generation_kwargs={key: value}).generation_kwargs == {key: value}
    assert build(cls, generation_kwargs={key: None}).generation_kwargs == {key: None}
    wrong = wrong_for(hint)
    with pytest.raises(GenerationKwargsError, match=f"generation kwarg '{key}' takes") as info:
        build(cls, generation_kwargs={key: wrong})
    assert "\n" not in str(info.value) and info.value.key == key


def misspellings(word: str, rng: random.Random) -> list[str]:
    """A dropped letter, two letters swapped, a letter doubled: typos of ``word``."""
    i = rng.randrange(len(word) - 1)
    dropped = word[:i] + word[i + 1 :]
    swapped = word[:i] + word[i + 1] + word[i] + word[i + 2 :]
    doubled = word[:i] + word[i] + word[i:]
    return [dropped, swapped, doubled]


TYPO_CASES = [
    (cls, key, typo)
    for n, cls in enumerate(CLIENTS)
    for key in sorted(spec_of(cls))
    if len(key) >= 6
    for typo in misspellings(key, random.Random(f"{n}-{key}"))
    if typo not in spec_of(cls) and typo not in cls.unsupported_generation_kwargs
]


@pytest.mark.parametrize(
    ("cls", "key", "typo"), TYPO_CASES, ids=lambda v: getattr(v, "__name__", v)
)
def test_a_misspelt_kwarg_is_refused_with_a_suggestion(cls: type[LLM], key: str, typo: str) -> None:
    with pytest.raises(GenerationKwargsError) as info:
        build(cls, generation_kwargs={typo: sample(spec_of(cls)[key])})
    message = str(info.value)
    assert message.startswith(f"{cls.__name__}: unknown generation kwarg {typo!r}")
    assert "\n" not in message
    suggested = message.partition("did you mean '")[2].partition("'")[0]
    assert suggested in spec_of(cls)  # a real name, usually the one meant
    if cls.passthrough_generation_kwarg:
        assert cls.passthrough_generation_kwarg in message


DISTILABEL_CASES = [(cls, key) for cls, keys in DISTILABEL.items() for key in keys]


@pytest.mark.parametrize(("cls", "key"), DISTILABEL_CASES, ids=lambda v: getattr(v, "__name__", v))
def test_every_kwarg_distilabel_takes_is_taken(cls: type[LLM], key: str) -> None:
    assert key in spec_of(cls), f"{cls.__name__} refuses distilabel's {key!r}"
    build(cls, generation_kwargs={key: sample(spec_of(cls)[key])})


def test_a_typo_set_later_is_refused_and_the_kwargs_stay_as_they_were() -> None:
    llm = build(llms.OpenAILLM, generation_kwargs={"temperature": 0.2})
    with pytest.raises(GenerationKwargsError, match="did you mean 'temperature'"):
        llm.generation_kwargs = {"temprature": 0.3}
    with pytest.raises(GenerationKwargsError, match="did you mean 'max_new_tokens'"):
        llm.generate([[{"role": "user", "content": "hi"}]], max_new_token=5)
    assert llm.generation_kwargs == {"temperature": 0.2}


def pipeline(llm: LLM) -> Pipeline:
    with Pipeline("kwargs") as p:
        LoadDataFromDicts(data=[{"instruction": "hi"}]) >> TextGeneration(name="gen", llm=llm)
    return p


def test_run_parameters_name_the_kwarg_before_any_request() -> None:
    with fake_api(completion) as api:
        llm = llms.OpenAILLM(model="m", base_url=f"{api.url}/v1", api_key="k")
        p = pipeline(llm)
        bad = {"gen": {"llm": {"generation_kwargs": {"temprature": 0.3}}}}
        with pytest.raises(RuntimeParameterError) as info:
            p.run(parameters=bad, progress=False)
        hot = {"gen": {"llm": {"generation_kwargs": {"temperature": "hot"}}}}
        with pytest.raises(RuntimeParameterError, match="takes a number, got 'hot'"):
            p.run(parameters=hot, progress=False)
    assert api.requests == []
    assert str(info.value) == (
        "runtime parameter 'gen.llm.generation_kwargs.temprature': OpenAILLM: unknown "
        "generation kwarg 'temprature': did you mean 'temperature'? (a field only your "
        "provider knows goes in extra_body)"
    )


@pytest.mark.parametrize(
    ("param", "expected"),
    [
        ("gen.llm.generation_kwargs.temprature=0.3", "did you mean 'temperature'?"),
        ("gen.llm.generation_kwargs.temperature=hot", "takes a number, got 'hot'"),
    ],
)
def test_the_cli_refuses_a_bad_kwarg_in_one_line(tmp_path: Path, param: str, expected: str) -> None:
    config = tmp_path / "p.yaml"
    pipeline(llms.OfflineLLM()).save(str(config))
    result = synthflow("pipeline", "run", "--config", str(config), "--param", param)
    assert_one_line_error(result, 2, expected)


def test_extra_body_reaches_the_wire_merged_into_the_body() -> None:
    seen: list[Request] = []

    def answer(request: Request) -> Any:
        seen.append(request)
        return completion(request)

    with fake_api(answer) as api:
        llm = llms.OpenAILLM(
            model="m",
            base_url=f"{api.url}/v1",
            api_key="k",
            generation_kwargs={
                "temperature": 0.1,
                "echo": True,  # distilabel's, for text prompts: not sent
                "extra_body": {"top_k": 20, "chat_template_kwargs": {"enable_thinking": False}},
            },
        )
        llm.generate([[{"role": "user", "content": "hi"}]])
    body = seen[0].json
    assert body["temperature"] == 0.1 and body["top_k"] == 20
    assert body["chat_template_kwargs"] == {"enable_thinking": False}
    assert "extra_body" not in body and "echo" not in body


def test_ollama_merges_distilabel_options_and_extra_body_into_its_options() -> None:
    llm = llms.OllamaLLM(
        model="m",
        generation_kwargs={
            "temperature": 0.2,
            "options": {"num_ctx": 4096},
            "extra_body": {"options": {"num_gpu": 1}, "keep_alive": "1m"},
        },
    )
    _, body = llm.prepared_request([{"role": "user", "content": "hi"}], 1)
    assert body["options"] == {"temperature": 0.2, "num_ctx": 4096, "num_gpu": 1}
    assert body["keep_alive"] == "1m"


def test_gemini_takes_vertex_safety_settings_as_a_mapping() -> None:
    llm = llms.GeminiLLM(
        model="m",
        generation_kwargs={
            "safety_settings": {"HARM_CATEGORY_HARASSMENT": "BLOCK_NONE"},
            "max_output_tokens": 5,
            "extra_body": {"generationConfig": {"audioTimestamp": True}},
        },
    )
    _, body = llm.prepared_request([{"role": "user", "content": "hi"}], 1)
    assert body["safetySettings"] == [
        {"category": "HARM_CATEGORY_HARASSMENT", "threshold": "BLOCK_NONE"}
    ]
    assert body["generationConfig"] == {"maxOutputTokens": 5, "audioTimestamp": True}


def test_local_escape_hatches_pass_their_fields_through() -> None:
    cpp = llms.LlamaCppLLM(
        model_path="m.gguf",
        generation_kwargs={"max_new_tokens": 4, "extra_generation_kwargs": {"grammar": "g"}},
    )
    assert cpp.completion_arguments() == {"max_tokens": 4, "grammar": "g"}


def test_vllm_takes_extra_sampling_params_and_distilabel_echo(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from tests.test_local_vllm import install_vllm

    install_vllm(monkeypatch)
    llm = llms.vLLM(
        model="m",
        generation_kwargs={
            "max_new_tokens": 8,
            "echo": False,
            "extra_sampling_params": {"bad_words": ["x"]},
        },
    )
    assert llm.sampling_params(1).kwargs == {"n": 1, "max_tokens": 8, "bad_words": ["x"]}
