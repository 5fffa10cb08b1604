"""Formatting steps, standalone as in distilabel's docs and after real tasks in pipelines."""

from __future__ import annotations

import sys
import types
from typing import Any

import pytest

from synthflow.models.llms import OfflineLLM
from synthflow.pipeline import Pipeline
from synthflow.steps import (
    ConversationTemplate,
    FormatChatGenerationDPO,
    FormatChatGenerationSFT,
    FormatTextGenerationDPO,
    FormatTextGenerationSFT,
    GroupColumns,
    LoadDataFromDicts,
    Step,
    StepInput,
    TruncateTextColumn,
)
from synthflow.steps.tasks import TextGeneration
from synthflow.testing import FunctionLLM

PROMPT_ID = "7762ecf17ad41479767061a8f4a7bfa3b63d371672af5180872f9b82b4cd4e29"  # "What's 2+2?"


def first_batch(step: Any, *inputs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    step.load()
    return list(next(step.process(*inputs)))


def rows_of(distiset: Any) -> list[dict[str, Any]]:
    return list(distiset["default"]["train"])


class RateByLength(Step):
    """A stand-in judge: rates each generation by its length."""

    @property
    def inputs(self) -> list[str]:
        return ["generations"]

    @property
    def outputs(self) -> list[str]:
        return ["ratings"]

    def process(self, inputs: StepInput) -> Any:
        for row in inputs:
            row["ratings"] = [len(g) for g in row["generations"]]
        yield inputs


# -- SFT --------------------------------------------------------------------------------------


def test_text_generation_sft_standalone_as_in_distilabels_docs() -> None:
    result = first_batch(
        FormatTextGenerationSFT(), [{"instruction": "What's 2+2?", "generation": "4"}]
    )
    assert result == [
        {
            "instruction": "What's 2+2?",
            "generation": "4",
            "prompt": "What's 2+2?",
            "prompt_id": PROMPT_ID,
            "messages": [
                {"role": "user", "content": "What's 2+2?"},
                {"role": "assistant", "content": "4"},
            ],
        }
    ]


def test_text_generation_sft_uses_a_non_empty_system_prompt() -> None:
    rows = [
        {"instruction": "q", "generation": "a", "system_prompt": "Be brief."},
        {"instruction": "q", "generation": "a", "system_prompt": ""},
    ]
    with_system, without = first_batch(FormatTextGenerationSFT(), rows)
    assert with_system["messages"][0] == {"role": "system", "content": "Be brief."}
    assert [m["role"] for m in without["messages"]] == ["user", "assistant"]


def test_text_generation_sft_after_a_task_in_a_pipeline() -> None:
    with Pipeline(name="sft") as pipeline:
        load = LoadDataFromDicts(data=[{"instruction": f"q{i}"} for i in range(5)])
        gen = TextGeneration(name="gen", llm=OfflineLLM(model="m"))
        load >> gen >> FormatTextGenerationSFT(name="sft")

    rows = rows_of(pipeline.run(progress=False))
    assert [r["prompt"] for r in rows] == [f"q{i}" for i in range(5)]
    for row in rows:
        assert row["messages"] == [
            {"role": "user", "content": row["instruction"]},
            {"role": "assistant", "content": row["generation"]},
        ]
        assert len(row["prompt_id"]) == 64


def test_chat_generation_sft_standalone_as_in_distilabels_docs() -> None:
    result = first_batch(
        FormatChatGenerationSFT(),
        [{"messages": [{"role": "user", "content": "What's 2+2?"}], "generation": "4"}],
    )
    assert result == [
        {
            "messages": [
                {"role": "user", "content": "What's 2+2?"},
                {"role": "assistant", "content": "4"},
            ],
            "generation": "4",
            "prompt": "What's 2+2?",
            "prompt_id": PROMPT_ID,
        }
    ]


def test_sft_errors_name_the_missing_column_and_the_bad_messages() -> None:
    step = FormatTextGenerationSFT()
    step.load()
    with pytest.raises(ValueError, match=r"no column 'generation' \(its columns: instruction\)"):
        next(step.process([{"instruction": "q"}]))
    chat = FormatChatGenerationSFT()
    with pytest.raises(ValueError, match="'messages' must hold a list, got str"):
        next(chat.process([{"messages": "hi", "generation": "g"}]))


# -- DPO --------------------------------------------------------------------------------------


def test_text_generation_dpo_standalone_as_in_distilabels_docs() -> None:
    (row,) = first_batch(
        FormatTextGenerationDPO(),
        [{"instruction": "What's 2+2?", "generations": ["4", "5", "6"], "ratings": [1, 0, -1]}],
    )
    assert row["prompt"] == "What's 2+2?" and row["prompt_id"] == PROMPT_ID
    assert row["chosen"] == [
        {"role": "user", "content": "What's 2+2?"},
        {"role": "assistant", "content": "4"},
    ]
    assert row["rejected"][-1] == {"role": "assistant", "content": "6"}
    assert (row["chosen_rating"], row["rejected_rating"]) == (1, -1)
    assert (row["chosen_model"], row["rejected_model"]) == (None, None)


def test_dpo_ties_go_to_the_first_generation_as_in_distilabel() -> None:
    rows = [
        {"instruction": "q", "generations": ["a", "b", "c", "d"], "ratings": [3, 5, 5, 1]},
        {"instruction": "q", "generations": ["a", "b", "c"], "ratings": [2, 1, 1]},
        {"instruction": "q", "generations": ["a", "b"], "ratings": [4, 4]},
    ]
    picked = [
        (r["chosen"][-1]["content"], r["rejected"][-1]["content"])
        for r in first_batch(FormatTextGenerationDPO(), rows)
    ]
    assert picked == [("b", "d"), ("a", "b"), ("a", "a")]


def test_dpo_leaves_null_ratings_out_and_nulls_a_row_without_any() -> None:
    rows = [
        {"instruction": "q", "generations": ["a", "b", "c"], "ratings": [None, 2, 7]},
        {"instruction": "q", "generations": ["a", "b"], "ratings": [None, None]},
        {"instruction": "q", "generations": ["a", "b"], "ratings": None},
    ]
    partly, unrated, failed = first_batch(FormatTextGenerationDPO(), rows)
    assert (partly["chosen_rating"], partly["rejected_rating"]) == (7, 2)
    for row in (unrated, failed):
        assert row["prompt"] == "q"
        assert all(row[c] is None for c in ("chosen", "rejected", "chosen_rating"))


def test_dpo_one_line_errors() -> None:
    step = FormatTextGenerationDPO()
    with pytest.raises(ValueError, match="3 values for 2 'generations'"):
        next(step.process([{"instruction": "q", "generations": ["a", "b"], "ratings": [1, 2, 3]}]))
    with pytest.raises(ValueError, match="'ratings' must hold a list, got int"):
        next(step.process([{"instruction": "q", "generations": ["a"], "ratings": 3}]))


def test_chat_generation_dpo_with_generation_models_and_a_system_turn() -> None:
    messages = [
        {"role": "system", "content": "sys"},
        {"role": "user", "content": "What's 2+2?"},
    ]
    (row,) = first_batch(
        FormatChatGenerationDPO(),
        [
            {
                "messages": messages,
                "generations": ["4", "5"],
                "generation_models": ["m1", "m2"],
                "ratings": [1, 0],
            }
        ],
    )
    assert row["prompt"] == "What's 2+2?"
    assert row["chosen"] == [*messages, {"role": "assistant", "content": "4"}]
    assert (row["chosen_model"], row["rejected_model"]) == ("m1", "m2")
    assert row["messages"] == messages


def test_text_generation_dpo_after_two_models_grouped_and_rated_in_a_pipeline() -> None:
    with Pipeline(name="dpo") as pipeline:
        load = LoadDataFromDicts(data=[{"instruction": f"question {i}"} for i in range(6)])
        short = TextGeneration(name="short", llm=FunctionLLM(model="s", fn=lambda m: "ok"))
        long = TextGeneration(name="long", llm=FunctionLLM(model="l", fn=lambda m: "a longer one"))
        group = GroupColumns(
            columns=["generation", "model_name"],
            output_columns=["generations", "generation_models"],
        )
        load >> [short, long] >> group >> RateByLength(name="rate") >> FormatTextGenerationDPO()

    rows = rows_of(pipeline.run(progress=False))
    assert len(rows) == 6
    for row in rows:
        assert row["chosen_rating"] >= row["rejected_rating"]
        assert row["generation_models"] == ["s", "l"]
        assert (row["chosen_model"], row["rejected_model"]) == ("l", "s")
        assert row["chosen"][-1]["content"] == "a longer one"


# -- ConversationTemplate, TruncateTextColumn -------------------------------------------------


def test_conversation_template_standalone_as_in_distilabels_docs() -> None:
    result = first_batch(ConversationTemplate(), [{"instruction": "Hello", "response": "Hi"}])
    assert result == [
        {
            "instruction": "Hello",
            "response": "Hi",
            "conversation": [
                {"role": "user", "content": "Hello"},
                {"role": "assistant", "content": "Hi"},
            ],
        }
    ]


def test_truncate_by_characters_standalone_and_in_a_pipeline() -> None:
    text = "This is a sample text that is longer than 10 characters"
    assert first_batch(TruncateTextColumn(max_length=10), [{"text": text}]) == [
        {"text": "This is a "}
    ]
    with Pipeline(name="truncate") as pipeline:
        load = LoadDataFromDicts(data=[{"body": "abcdef"}, {"body": None}])
        load >> TruncateTextColumn(column="body", max_length=4)

    assert rows_of(pipeline.run(progress=False)) == [{"body": "abcd"}, {"body": None}]


def test_truncate_refuses_a_value_that_is_not_text() -> None:
    with pytest.raises(ValueError, match="'text' must hold text, got int"):
        first_batch(TruncateTextColumn(), [{"text": 3}])


def test_truncate_by_tokens_says_what_to_install_without_transformers(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "transformers", None)  # import fails, as when not installed
    step = TruncateTextColumn(tokenizer="some/tokenizer", max_length=2)
    with pytest.raises(ImportError, match="pip install transformers"):
        step.load()


def test_truncate_by_tokens_cuts_to_max_length_tokens(monkeypatch: pytest.MonkeyPatch) -> None:
    class WordTokenizer:  # stands in for a Hugging Face tokenizer: one token per word
        def encode(self, text: str, **kwargs: Any) -> list[str]:
            assert kwargs["add_special_tokens"] is False and kwargs["truncation"] is True
            return text.split()[: kwargs["max_length"]]

        def decode(self, ids: list[str]) -> str:
            return " ".join(ids)

    fake = types.ModuleType("transformers")
    fake.AutoTokenizer = types.SimpleNamespace(  # type: ignore[attr-defined]
        from_pretrained=lambda name: WordTokenizer()
    )
    monkeypatch.setitem(sys.modules, "transformers", fake)
    step = TruncateTextColumn(tokenizer="words", max_length=4)
    assert first_batch(step, [{"text": "This is a sample text that is long"}]) == [
        {"text": "This is a sample"}
    ]
