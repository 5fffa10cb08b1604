"""UltraFeedback: prompts, parsing real-looking and broken answers, alignment with null
generations, and the seed's preference pipeline (offline and against a loopback server)."""

from __future__ import annotations

import re
from typing import Any

import pytest

from synthflow.errors import OutputParseError
from synthflow.models.llms.openai import OpenAILLM
from synthflow.pipeline import Pipeline
from synthflow.steps import CombineColumns, LoadDataFromDicts
from synthflow.steps.tasks import ERROR_COLUMN, TextGeneration, UltraFeedback
from synthflow.testing import FunctionLLM, OfflineLLM
from tests.servers import Reply, Request, fake_api

ROW = {"instruction": "What is 2 + 2?", "generations": ["4", None, "Five."]}
TYPED = ("helpfulness", "truthfulness")
UNTYPED = ("honesty", "instruction-following", "overall-rating")


def judge(aspect: str = "overall-rating") -> UltraFeedback:
    return UltraFeedback(llm=FunctionLLM(fn=lambda messages: ""), aspect=aspect)  # type: ignore[arg-type]


def shown_texts(messages: list[dict[str, Any]]) -> list[str]:
    return re.findall(r"<text \d+>\n(.*?)\n</text \d+>", messages[-1]["content"], re.DOTALL)


def rows_of(distiset: Any, name: str = "default") -> list[dict[str, Any]]:
    return list(distiset[name]["train"])


# -- prompts ------------------------------------------------------------------------------------


def test_the_prompt_shows_the_non_null_texts_numbered_in_order() -> None:
    messages = judge("instruction-following").format_input(ROW)
    assert [m["role"] for m in messages] == ["system", "user"]
    prompt = messages[1]["content"]
    assert prompt.startswith(
        "Evaluate 2 texts written in answer to the instruction below, for one aspect: "
        "instruction following.\n\n"
    )
    assert "<instruction>\nWhat is 2 + 2?\n</instruction>\n\n<text 1>\n4\n</text 1>\n\n" in prompt
    assert "<text 2>\nFive.\n</text 2>" in prompt
    assert "<text 3>" not in prompt and "None" not in prompt
    assert prompt.endswith(
        "Answer with one block per text, from Text 1 to Text 2, in this format and nothing "
        "else:\n\n"
        "#### Output for Text 1\nRating: <an integer from 1 to 5>\n"
        "Rationale: <why, in one or two sentences>\n\n"
        "#### Output for Text 2\nRating: <an integer from 1 to 5>\n"
        "Rationale: <why, in one or two sentences>"
    )
    assert "Rating scale:\n1. Irrelevant: the text does not address the instruction.\n" in prompt


@pytest.mark.parametrize("aspect", TYPED)
def test_typed_aspects_ask_for_types_with_their_own_rationale(aspect: str) -> None:
    prompt = judge(aspect).format_input(ROW)[1]["content"]
    assert "Types (several may apply):\n1. " in prompt
    assert "#### Output for Text 1\nType: <the numbers of the " in prompt
    assert "Rationale: <why, in one or two sentences>\nRating: <an integer from 1 to 5>\n" in prompt


@pytest.mark.parametrize("aspect", [*TYPED, *UNTYPED])
def test_every_aspect_has_its_own_rubric(aspect: str) -> None:
    prompts = {a: judge(a).format_input(ROW)[1]["content"] for a in (*TYPED, *UNTYPED)}
    assert sum(p == prompts[aspect] for p in prompts.values()) == 1
    assert prompts[aspect].count("\n5. ") == 1


def test_many_texts_show_two_blocks_and_say_how_far_to_go() -> None:
    row = {"instruction": "q", "generations": ["a", "b", "c", "d"]}
    prompt = judge().format_input(row)[1]["content"]
    assert "#### Output for Text 3" not in prompt
    assert prompt.endswith("... and so on, up to Text 4.")


def test_columns_follow_the_aspect() -> None:
    assert judge().inputs == ["instruction", "generations"]
    assert judge("honesty").outputs == ["ratings", "rationales", "model_name"]
    assert judge("truthfulness").outputs == [
        "types",
        "rationales",
        "ratings",
        "rationales-for-ratings",
        "model_name",
    ]


def test_bad_inputs_say_what_to_do() -> None:
    with pytest.raises(TypeError, match="group the texts of a row into one list column"):
        judge().format_input({"instruction": "q", "generations": "one text"})
    with pytest.raises(TypeError, match="must hold strings"):
        judge().format_input({"instruction": "q", "generations": [1, 2]})
    with pytest.raises(ValueError, match="aspect"):
        UltraFeedback(llm=FunctionLLM(fn=str), aspect="kindness")  # type: ignore[arg-type]


# -- parsing ------------------------------------------------------------------------------------

TYPED_ANSWER = """#### Output for Text 1
Type: 1, 3
Rationale: Clear, relevant and short.
Rating: 3
Rationale: Correct, but gives no explanation.

#### Output for Text 2
Type: None
Rationale: It does not answer the question correctly.
Rating: 1
Rationale: The answer is wrong."""


def test_typed_answer_is_read_and_put_back_around_the_null_generation() -> None:
    assert judge("helpfulness").format_output(TYPED_ANSWER, ROW) == {
        "types": [1, None, None],
        "rationales": [
            "Clear, relevant and short.",
            None,
            "It does not answer the question correctly.",
        ],
        "ratings": [3, None, 1],
        "rationales-for-ratings": [
            "Correct, but gives no explanation.",
            None,
            "The answer is wrong.",
        ],
    }


@pytest.mark.parametrize(
    "answer",
    [
        # The format asked for.
        "#### Output for Text 1\nRating: 5\nRationale: Correct.\n\n"
        "#### Output for Text 2\nRating: 1\nRationale: Wrong.",
        # Bold Markdown headers and fields, a preamble, "4/5"-style ratings.
        "Here is my evaluation.\n\n**Text 1:**\n**Rating:** 5/5\n**Rationale:** Correct.\n\n"
        "**Text 2:**\n**Rating:** 1 (Low quality)\n**Rationale:** Wrong.",
        # Blocks out of order are put in order by their numbers.
        "### Text 2\nRating: 1\nRationale: Wrong.\n\n### Text 1\nRating: 5\nRationale: Correct.",
        # No headers: a second "Rating:" starts the next text.
        "Rating: 5\nRationale: Correct.\nRating: 1\nRationale: Wrong.",
        # JSON (what structured output gives), in a code fence.
        '```json\n{"ratings": [5, 1], "rationales": ["Correct.", "Wrong."]}\n```',
        # Header and first field on one line; the rationale runs on over two lines.
        "Text 1: Rating: 5\nRationale: Correct.\n\nText 2: Rating: 1\nRationale: Wrong.",
    ],
)
def test_realistic_answers(answer: str) -> None:
    assert judge().format_output(answer, ROW) == {
        "ratings": [5, None, 1],
        "rationales": ["Correct.", None, "Wrong."],
    }


def test_prose_mentioning_a_text_is_not_a_header() -> None:
    answer = (
        "#### Output for Text 1\nRating: 4\nRationale: Right.\nText 2 is much worse than\n"
        "this one.\n\n#### Output for Text 2\nRating: 2\nRationale: Wrong."
    )
    out = judge().format_output(answer, ROW)
    assert out["ratings"] == [4, None, 2]
    assert out["rationales"][0] == "Right.\nText 2 is much worse than\nthis one."


def test_not_applicable_is_a_null_rating_not_a_failure() -> None:
    answer = (
        "Text 1:\nRating: N/A\nRationale: Not a factual question.\n\n"
        "Text 2:\nRating: 2\nRationale: x"
    )
    assert judge("honesty").format_output(answer, ROW)["ratings"] == [None, None, 2]


def test_typed_json_with_distilabel_keys() -> None:
    answer = (
        '{"types": [[1, 2], null], "ratings": [4, 2], "rationales": ["a", "b"], '
        '"rationales_for_rating": ["c", "d"]}'
    )
    assert judge("truthfulness").format_output(answer, ROW) == {
        "types": [1, None, None],
        "rationales": ["a", None, "b"],
        "ratings": [4, None, 2],
        "rationales-for-ratings": ["c", None, "d"],
    }


@pytest.mark.parametrize(
    ("answer", "message"),
    [
        ("Both texts are fine.", "found 0"),
        ("Text 1:\nRating: 4\nRationale: ok", "found 1"),
        ("Rating: 4\nRating: 3\nRating: 2", "found 3"),
        ("Text 1:\nRating: 6\nRationale: x\nText 2:\nRating: 2\nRationale: y", "off the scale"),
        ("Text 1:\nRating: 0\nRationale: x\nText 2:\nRating: 2\nRationale: y", "off the scale"),
        ("Text 1:\nRating: 3.5\nRationale: x\nText 2:\nRating: 2\nRationale: y", "whole number"),
        ("Text 1:\nRating: good\nRationale: x\nText 2:\nRating: 2\nRationale: y", "no number"),
        ("Text 1:\nRationale: x\nText 2:\nRating: 2\nRationale: y", "no 'Rating:' line"),
        ("Text 1:\nRating: 4\nText 1:\nRating: 2", "numbered [1, 1]"),
        ("Text 1:\nRating: 4\nText 3:\nRating: 2", "numbered [1, 3]"),
        ('{"ratings": [4], "rationales": ["x"]}', "list of 2 entries"),
        ('{"ratings": [4, 9], "rationales": ["x", "y"]}', "off the scale"),
        ('{"ratings": [true, 2], "rationales": ["x", "y"]}', "not a number"),
    ],
)
def test_malformed_answers_are_parse_failures(answer: str, message: str) -> None:
    with pytest.raises(OutputParseError, match=re.escape(message)):
        judge().format_output(answer, ROW)


def test_type_off_its_list_is_a_parse_failure() -> None:
    answer = TYPED_ANSWER.replace("Type: 1, 3", "Type: 4")
    with pytest.raises(OutputParseError, match="text 1's type is 4, off the scale 1 to 3"):
        judge("helpfulness").format_output(answer, ROW)


def test_no_answer_gives_null_verdicts_of_the_right_length() -> None:
    assert judge("truthfulness").format_output(None, ROW) == {
        "types": [None] * 3,
        "rationales": [None] * 3,
        "ratings": [None] * 3,
        "rationales-for-ratings": [None] * 3,
    }


# -- running ------------------------------------------------------------------------------------


def rate_by_length(messages: list[dict[str, Any]]) -> str:
    """A judge that gives each shown text min(len, 5) and says which text it rated."""
    texts = shown_texts(messages)
    return "\n\n".join(
        f"#### Output for Text {i}\nRating: {min(len(t), 5)}\nRationale: saw {t!r}"
        for i, t in enumerate(texts, 1)
    )


def test_standalone_process_skips_the_call_when_there_is_nothing_to_judge() -> None:
    calls: list[int] = []

    def counting(messages: list[dict[str, Any]]) -> str:
        calls.append(len(shown_texts(messages)))
        return rate_by_length(messages)

    task = UltraFeedback(llm=FunctionLLM(fn=counting))
    task.load()
    rows = [
        {"instruction": "q", "generations": ["ab", None, "abcdefg"]},
        {"instruction": "q", "generations": [None, None]},
        {"instruction": None, "generations": ["x"]},
    ]

    out = [r for batch in task.process(rows) for r in batch]  # a task alone is synchronous
    assert calls == [2]
    assert [r["ratings"] for r in out] == [[2, None, 5], [None, None], [None]]
    assert out[0]["rationales"] == ["saw 'ab'", None, "saw 'abcdefg'"]
    assert all(r["model_name"] == "function-llm" for r in out)


def test_seed_preference_pipeline_keeps_ratings_aligned_with_generations() -> None:
    def sometimes_down(messages: list[dict[str, Any]]) -> str:
        if messages[-1]["content"] == "q1":
            raise RuntimeError("endpoint down")
        return "a much longer answer to " + messages[-1]["content"]

    prompts: list[list[str]] = []

    def judge_fn(messages: list[dict[str, Any]]) -> str:
        prompts.append(shown_texts(messages))
        if "q2" in messages[-1]["content"]:
            return "I cannot rate these."
        return rate_by_length(messages)

    with Pipeline(name="preference") as pipeline:
        load = LoadDataFromDicts(data=[{"instruction": f"q{i}"} for i in range(4)])
        short = TextGeneration(name="short", llm=FunctionLLM(fn=lambda m: "ok", model="short-m"))
        flaky = TextGeneration(name="flaky", llm=FunctionLLM(fn=sometimes_down, model="long-m"))
        group = CombineColumns(
            name="group",
            columns=["generation", "model_name"],
            output_columns=["generations", "generation_models"],
        )
        rate = UltraFeedback(name="rate", llm=FunctionLLM(fn=judge_fn, model="judge-m"))
        load >> [short, flaky] >> group >> rate

    distiset = pipeline.run(progress=False)
    rows = rows_of(distiset)
    assert [r["instruction"] for r in rows] == ["q0", "q1", "q2", "q3"]
    assert rows[0]["generations"] == ["ok", "a much longer answer to q0"]
    assert rows[0]["generation_models"] == ["short-m", "long-m"]
    assert rows[0]["ratings"] == [2, 5]
    assert rows[0]["model_name"] == "judge-m"
    # q1's second generation failed: the judge saw one text, and its rating stays first.
    assert rows[1]["generations"] == ["ok", None]
    assert ["ok"] in prompts
    assert rows[1]["ratings"] == [2, None]
    assert rows[1]["rationales"] == ["saw 'ok'", None]
    # q2's verdict could not be read: the row is kept with null outputs and the error.
    assert rows[2]["ratings"] is None and rows[2]["rationales"] is None
    assert rows[2][ERROR_COLUMN].startswith("rate: OutputParseError: expected a rating block")
    assert rows[3][ERROR_COLUMN] is None
    assert distiset.stats["rate"].errors == 1


def test_round_trips_through_yaml_with_the_same_signature() -> None:
    with Pipeline(name="uf-yaml") as pipeline:
        load = LoadDataFromDicts(data=[{"instruction": "q", "generations": ["a", "b"]}])
        load >> UltraFeedback(name="rate", llm=OfflineLLM(), aspect="truthfulness")

    text = pipeline.dump()
    loaded = Pipeline.from_yaml(_yaml(text))
    assert loaded.signature == pipeline.signature
    step = loaded.steps["rate"]
    assert isinstance(step, UltraFeedback) and step.aspect == "truthfulness"


def _yaml(data: dict[str, Any]) -> str:
    from synthflow.serialization import to_text

    return to_text(data, "yaml")


def test_against_an_openai_compatible_server() -> None:
    def handler(request: Request) -> Reply:
        body = request.json
        return Reply(
            body={
                "id": "c",
                "object": "chat.completion",
                "model": body["model"],
                "choices": [
                    {
                        "index": 0,
                        "message": {
                            "role": "assistant",
                            "content": rate_by_length(body["messages"]),
                        },
                        "finish_reason": "stop",
                    }
                ],
                "usage": {"prompt_tokens": 50, "completion_tokens": 20, "total_tokens": 70},
            }
        )

    with fake_api(handler) as api:
        llm = OpenAILLM(model="judge", base_url=f"{api.url}/v1", api_key="sk-test")
        with Pipeline(name="uf-http") as pipeline:
            load = LoadDataFromDicts(
                data=[{"instruction": "q", "generations": ["abc", None, "abcdef"]}]
            )
            load >> UltraFeedback(name="rate", llm=llm, aspect="honesty")
        distiset = pipeline.run(progress=False)

    (row,) = rows_of(distiset)
    assert row["ratings"] == [3, None, 5]
    assert row["model_name"] == "judge"
    (request,) = api.requests
    assert request.json["messages"][0]["role"] == "system"
    assert "for one aspect: honesty and uncertainty" in request.json["messages"][1]["content"]
