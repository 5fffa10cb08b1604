"""Magpie and MagpieGenerator: raw prompts, turn parsing, and runs against loopback servers that
speak /v1/completions (vLLM, llama.cpp) and TGI's /generate."""

from __future__ import annotations

from typing import Any

import pydantic
import pytest

from synthflow.errors import OutputParseError, PipelineValidationError
from synthflow.models import (
    AnthropicLLM,
    ClientvLLM,
    CohereLLM,
    GeminiLLM,
    InferenceEndpointsLLM,
    OllamaLLM,
    OpenAILLM,
)
from synthflow.models.llms.magpie import PRE_QUERY_TEMPLATES, user_turn_prompt
from synthflow.pipeline import Pipeline
from synthflow.steps import LoadDataFromDicts
from synthflow.steps.tasks import ERROR_COLUMN, Magpie, MagpieGenerator
from synthflow.steps.tasks.magpie import MULTI_TURN_SYSTEM_PROMPT, clean_turn
from synthflow.testing import FunctionLLM, OfflineLLM
from tests.servers import fake_api
from tests.servers.completions import SERVED_MODEL, openai_server, tgi_server, user_text

SYSTEM = "You are a chemistry tutor."
TURNS = [
    {"role": "system", "content": SYSTEM},
    {"role": "user", "content": "What is a mole?"},
    {"role": "assistant", "content": "A count of particles."},
]


# -- raw prompts ----------------------------------------------------------------------------


def test_an_empty_conversation_is_the_pre_query_template_alone() -> None:
    for template in PRE_QUERY_TEMPLATES.values():
        assert user_turn_prompt([], template) == template
    assert user_turn_prompt([], "<custom>user:") == "<custom>user:"


def test_llama3_prompt_snapshot() -> None:
    assert user_turn_prompt(TURNS, PRE_QUERY_TEMPLATES["llama3"]) == (
        "<|begin_of_text|>"
        "<|start_header_id|>system<|end_header_id|>\n\nYou are a chemistry tutor.<|eot_id|>"
        "<|start_header_id|>user<|end_header_id|>\n\nWhat is a mole?<|eot_id|>"
        "<|start_header_id|>assistant<|end_header_id|>\n\nA count of particles.<|eot_id|>"
        "<|start_header_id|>user<|end_header_id|>\n\n"
    )


def test_qwen2_prompt_snapshot() -> None:
    assert user_turn_prompt(TURNS, PRE_QUERY_TEMPLATES["qwen2"]) == (
        "<|im_start|>system\nYou are a chemistry tutor.<|im_end|>\n"
        "<|im_start|>user\nWhat is a mole?<|im_end|>\n"
        "<|im_start|>assistant\nA count of particles.<|im_end|>\n"
        "<|im_start|>user\n"
    )


def test_an_unknown_format_with_a_system_prompt_asks_for_a_tokenizer() -> None:
    with pytest.raises(Exception, match="tokenizer_id= / tokenizer="):
        user_turn_prompt(TURNS[:1], "<custom>user:")


# -- reading turns --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("How do I balance a redox equation?", "How do I balance a redox equation?"),
        ("  What is entropy?\n\n", "What is entropy?"),
        ("What is pH?<|eot_id|>", "What is pH?"),
        (
            "Why is the sky blue?<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\nIt",
            "Why is the sky blue?",
        ),
        ("Name a noble gas.<|im_end|>\n<|im_start|>assistant\nNeon", "Name a noble gas."),
        ("Tell me a joke.</s>", "Tell me a joke."),
        ("Line one.\nLine two.", "Line one.\nLine two."),
    ],
)
def test_clean_turn_reads_what_models_write(text: str, expected: str) -> None:
    assert clean_turn(text, "user turn") == expected


@pytest.mark.parametrize("text", [None, "", "   \n", "<|eot_id|>", "<|im_end|>\nmore"])
def test_clean_turn_refuses_an_empty_turn(text: str | None) -> None:
    with pytest.raises(OutputParseError, match="user turn"):
        clean_turn(text, "user turn")


# -- configuration --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "llm",
    [
        OpenAILLM(model="gpt-4o-mini"),
        AnthropicLLM(model="claude-3-5-haiku-latest"),
        GeminiLLM(model="gemini-1.5-flash"),
        CohereLLM(model="command-r"),
        OllamaLLM(model="llama3"),
    ],
    ids=lambda llm: type(llm).__name__,
)
def test_a_chat_only_llm_is_refused_when_the_task_is_built(llm: Any) -> None:
    with pytest.raises(PipelineValidationError, match="can't run Magpie: it needs raw completion"):
        Magpie(llm=llm)
    with pytest.raises(PipelineValidationError, match="ClientvLLM") as caught:
        MagpieGenerator(llm=llm, num_rows=1)
    assert "\n" not in str(caught.value)


def test_a_raw_completion_llm_without_a_template_is_refused() -> None:
    llm = InferenceEndpointsLLM(base_url="http://127.0.0.1:9")
    with pytest.raises(PipelineValidationError, match="needs magpie_pre_query_template"):
        Magpie(llm=llm)


def test_a_saved_pipeline_with_a_chat_only_llm_is_refused_when_loaded() -> None:
    with Pipeline(name="magpie-yaml") as pipeline:
        MagpieGenerator(name="magpie", llm=OfflineLLM(), num_rows=1)
    data = pipeline.dump()
    step = data["pipeline"]["steps"][0]
    step["llm"] = {
        "type_info": {"module": "synthflow.models.llms.openai", "name": "OpenAILLM"},
        "model": "gpt-4o-mini",
    }
    with pytest.raises(Exception, match="can't run Magpie"):
        Pipeline.from_dict(data)


def test_probabilities_must_add_up_to_one() -> None:
    with pytest.raises(pydantic.ValidationError, match=r"add up to 1\.2"):
        Magpie(llm=OfflineLLM(), system_prompt={"a": ("A", 0.6), "b": ("B", 0.6)})
    with pytest.raises(pydantic.ValidationError):
        Magpie(llm=OfflineLLM(), system_prompt={"a": ("A", 1.0), "b": "B"})


@pytest.mark.parametrize(
    ("kwargs", "columns"),
    [
        ({}, ["instruction", "response", "model_name"]),
        ({"only_instruction": True, "n_turns": 3}, ["instruction", "model_name"]),
        ({"n_turns": 2}, ["conversation", "model_name"]),
        (
            {"system_prompt": {"a": "A"}},
            ["instruction", "response", "system_prompt_key", "model_name"],
        ),
    ],
)
def test_output_columns(kwargs: dict[str, Any], columns: list[str]) -> None:
    assert Magpie(llm=OfflineLLM(), **kwargs).outputs == columns
    assert MagpieGenerator(llm=OfflineLLM(), num_rows=1, **kwargs).outputs == columns


# -- the conversation loop, scripted --------------------------------------------------------


def scripted(messages: list[dict[str, Any]]) -> str:
    """User turns ask a numbered question; answers repeat it."""
    if not messages or messages[-1]["role"] != "user":
        asked = sum(1 for m in messages if m["role"] == "user")
        return f"Question {asked + 1}?"
    return f"Answer to {messages[-1]['content']}"


def run_magpie(**kwargs: Any) -> list[dict[str, Any]]:
    task = Magpie(llm=FunctionLLM(fn=scripted), **kwargs)
    task.load()
    return list(next(task.process([{}])))


def test_one_turn_gives_instruction_and_response() -> None:
    [row] = run_magpie()
    assert (row["instruction"], row["response"]) == ("Question 1?", "Answer to Question 1?")
    assert row["model_name"] == "function-llm"


def test_several_turns_give_a_conversation_with_the_multi_turn_system_prompt() -> None:
    [row] = run_magpie(n_turns=2, include_system_prompt=True)
    assert row["conversation"] == [
        {"role": "system", "content": MULTI_TURN_SYSTEM_PROMPT},
        {"role": "user", "content": "Question 1?"},
        {"role": "assistant", "content": "Answer to Question 1?"},
        {"role": "user", "content": "Question 2?"},
        {"role": "assistant", "content": "Answer to Question 2?"},
    ]


def test_end_with_user_leaves_the_last_turn_unanswered() -> None:
    [row] = run_magpie(n_turns=2, end_with_user=True)
    assert [m["role"] for m in row["conversation"]] == ["user", "assistant", "user"]
    [row] = run_magpie(end_with_user=True)
    assert (row["instruction"], row["response"]) == ("Question 1?", None)


def test_a_rows_system_prompt_wins_and_a_dict_names_its_draw() -> None:
    seen: list[str] = []

    def record(messages: list[dict[str, Any]]) -> str:
        if messages and messages[0]["role"] == "system":
            seen.append(messages[0]["content"])
        return scripted(messages)

    task = Magpie(
        llm=FunctionLLM(fn=record),
        only_instruction=True,
        system_prompt={"math": ("Teach maths.", 1.0), "art": ("Teach art.", 0.0)},
    )
    task.load()
    rows = next(task.process([{}, {}, {"system_prompt": "Own prompt."}]))
    assert [r.get("system_prompt_key") for r in rows] == ["math", "math", None]
    assert sorted(seen) == ["Own prompt.", "Teach maths.", "Teach maths."]


def test_an_empty_turn_fails_its_row_and_keeps_the_text() -> None:
    task = Magpie(llm=FunctionLLM(fn=lambda messages: "<|eot_id|>"), name="magpie")
    task.load()
    [row] = next(task.process([{}]))
    assert row["instruction"] is None and row["response"] is None
    assert "empty user turn" in row[ERROR_COLUMN]
    assert row["synthflow_metadata"]["raw_output_magpie"] == "<|eot_id|>"


# -- end to end against loopback servers ----------------------------------------------------


def test_magpie_generator_against_a_vllm_server(transport: str) -> None:
    with fake_api(openai_server()) as api:
        llm = ClientvLLM(
            base_url=f"{api.url}/v1",
            magpie_pre_query_template="llama3",
            generation_kwargs={"temperature": 1.0, "max_new_tokens": 64},
        )
        with Pipeline(name="magpie-vllm") as pipeline:
            MagpieGenerator(name="magpie", llm=llm, num_rows=3, n_turns=2, system_prompt=SYSTEM)
        distiset = pipeline.run(progress=False)
        rows = list(distiset["default"]["train"])
        first_turn = user_turn_prompt(
            [{"role": "system", "content": SYSTEM}], PRE_QUERY_TEMPLATES["llama3"]
        )
        completions = [r for r in api.requests if r.path == "/v1/completions"]
        chats = [r for r in api.requests if r.path == "/v1/chat/completions"]
        assert [r.path for r in api.requests].count("/v1/models") == 1  # the served model, once
        assert len(completions) == 6 and len(chats) == 6
        assert completions[0].json["model"] == SERVED_MODEL
        assert completions[0].json["max_tokens"] == 64
        assert first_turn in {r.json["prompt"] for r in completions}
        for row in rows:
            turns = row["conversation"]
            assert [t["role"] for t in turns] == ["user", "assistant", "user", "assistant"]
            assert turns[0]["content"] == user_text(first_turn).removesuffix("<|eot_id|>")
            assert turns[1]["content"].startswith("answer 0.0 to ")
            assert row["model_name"] == SERVED_MODEL

        # One turn instead of two makes the run start over, and pays nothing: the first user
        # turns and their answers come from the response cache.
        before = len(api.requests)
        again = pipeline.run(parameters={"magpie": {"n_turns": 1}}, progress=False)
        shorter = list(again["default"]["train"])
        assert [r["instruction"] for r in shorter] == [
            r["conversation"][0]["content"] for r in rows
        ]
        assert [r["response"] for r in shorter] == [r["conversation"][1]["content"] for r in rows]
        assert api.requests[before:] == []


def test_magpie_task_against_tgi() -> None:
    with fake_api(tgi_server()) as api:
        llm = InferenceEndpointsLLM(
            base_url=api.url,
            magpie_pre_query_template="qwen2",
            generation_kwargs={"max_new_tokens": 32, "temperature": 0.8, "top_k": 50},
        )
        with Pipeline(name="magpie-tgi") as pipeline:
            load = LoadDataFromDicts(
                name="load", data=[{"system_prompt": SYSTEM}, {"system_prompt": "Be brief."}]
            )
            load >> Magpie(name="magpie", llm=llm)
        rows = list(pipeline.run(progress=False)["default"]["train"])
    generate = [r for r in api.requests if r.path == "/generate"]
    assert len(generate) == 2
    body = generate[0].json
    assert body["parameters"]["max_new_tokens"] == 32
    assert body["parameters"]["top_k"] == 50  # sent on the raw route, unlike the chat one
    assert body["parameters"]["return_full_text"] is False
    prompts = {r.json["inputs"] for r in generate}
    assert f"<|im_start|>system\n{SYSTEM}<|im_end|>\n<|im_start|>user\n" in prompts
    chat = next(r for r in api.requests if r.path == "/v1/chat/completions")
    assert "top_k" not in chat.json
    assert [r["instruction"] for r in rows] == [
        user_text(r.json["inputs"]).removesuffix("<|eot_id|>")
        for r in sorted(generate, key=lambda r: SYSTEM not in r.json["inputs"])
    ]
    assert all(r["response"].startswith("answer 0.0 to Question number") for r in rows)


def test_an_empty_completion_fails_the_row_in_a_pipeline() -> None:
    with fake_api(openai_server(lambda prompt: "  <|eot_id|>")) as api:
        llm = ClientvLLM(base_url=f"{api.url}/v1", model="m", magpie_pre_query_template="llama3")
        with Pipeline(name="magpie-empty") as pipeline:
            MagpieGenerator(name="magpie", llm=llm, num_rows=2, only_instruction=True)
        distiset = pipeline.run(progress=False)
    rows = list(distiset["default"]["train"])
    assert [r["instruction"] for r in rows] == [None, None]
    assert all("empty user turn" in r[ERROR_COLUMN] for r in rows)
    assert distiset.failed_rows == {"magpie": 2}


def test_a_truncated_completion_with_no_text_is_a_failed_call() -> None:
    with fake_api(openai_server(lambda prompt: None, finish_reason="length")) as api:
        llm = ClientvLLM(
            base_url=f"{api.url}/v1", model="m", magpie_pre_query_template="llama3", max_retries=0
        )
        task = Magpie(llm=llm, only_instruction=True)
        task.load()
        [row] = next(task.process([{}]))
    assert row["instruction"] is None
    assert "cut off before any text" in row[ERROR_COLUMN]


def test_a_bare_server_url_gets_v1() -> None:
    assert ClientvLLM(base_url="http://localhost:8000").endpoint == "http://localhost:8000/v1"
    assert ClientvLLM(base_url="http://h:1/v1/").endpoint == "http://h:1/v1"
    assert ClientvLLM(base_url="http://h:1/proxy/v1").endpoint == "http://h:1/proxy/v1"


def test_a_dead_server_says_to_pass_the_model() -> None:
    llm = ClientvLLM(base_url="http://127.0.0.1:9/v1", magpie_pre_query_template="llama3")
    with pytest.raises(Exception, match="pass model="):
        llm.load()


def test_draws_in_a_pipeline_follow_the_rows_and_repeat_on_a_re_run() -> None:
    def run(name: str) -> list[Any]:
        with Pipeline(name=name) as pipeline:  # another name: another run, not a resumed one
            load = LoadDataFromDicts(
                data=[{"n": i} for i in range(20)] + [{"n": 20, "system_prompt": "Own."}]
            )
            load >> Magpie(
                name="magpie",
                llm=FunctionLLM(fn=scripted),
                only_instruction=True,
                system_prompt={"math": ("Teach maths.", 0.5), "art": ("Teach art.", 0.5)},
            )
        rows = pipeline.run(progress=False, use_cache=False)["default"]["train"]
        return [row["system_prompt_key"] for row in rows]

    keys = run("draws")
    assert set(keys[:20]) == {"math", "art"} and keys[20] is None
    assert run("draws-again") == keys
