"""RewardModelScore with a tiny reward model (a Llama sequence classifier built here: no
download). Needs ``pip install torch transformers`` (skipped without them)."""

from __future__ import annotations

import sys
from typing import Any

import pytest

from synthflow.errors import StepError
from synthflow.pipeline import Pipeline
from synthflow.serialization import to_text
from synthflow.steps import LoadDataFromDicts, RewardModelScore

ROWS: list[dict[str, Any]] = [
    {"instruction": "say hello", "response": "hello world"},
    {"instruction": "say hi", "response": "hi"},
    {"instruction": "the cat", "response": "a red cat say yes no ok the dog"},
]


def conversation_of(row: dict[str, Any]) -> list[dict[str, str]]:
    return [
        {"role": "user", "content": row["instruction"]},
        {"role": "assistant", "content": row["response"]},
    ]


def test_without_transformers_load_says_what_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "transformers", None)
    step = RewardModelScore(model="some/reward-model")
    with pytest.raises(ImportError, match=r"pip install 'synthflow\[transformers\]'"):
        step.load()


def test_fields_round_trip_and_the_token_stays_out_of_the_yaml() -> None:
    with Pipeline(name="rm") as pipeline:
        LoadDataFromDicts(data=ROWS) >> RewardModelScore(
            name="rm",
            model="some/reward-model",
            revision="v1",
            torch_dtype="float32",
            device_map="auto",
            token="hf_secret",
            truncation=True,
            max_length=128,
        )
    text = to_text(pipeline.dump(), "yaml")
    assert "hf_secret" not in text
    loaded = Pipeline.from_yaml(text)
    step = loaded.steps["rm"]
    assert isinstance(step, RewardModelScore)
    assert (step.revision, step.torch_dtype, step.device_map) == ("v1", "float32", "auto")
    assert (step.truncation, step.max_length) == (True, 128)
    assert (step.inputs, step.outputs) == ([], ["score"])
    assert loaded.signature == pipeline.signature


# -- with the tiny model ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def reward_model(tmp_path_factory: pytest.TempPathFactory) -> str:
    pytest.importorskip("torch")
    pytest.importorskip("transformers")
    from tests.tiny_models import save_tiny_reward_model

    return save_tiny_reward_model(tmp_path_factory.mktemp("tiny-rm"))


@pytest.fixture(autouse=True)
def _offline(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")


@pytest.fixture
def step(reward_model: str) -> RewardModelScore:
    step = RewardModelScore(model=reward_model, torch_dtype="float32")
    step.load()
    return step


def scores_of(step: RewardModelScore, rows: list[dict[str, Any]]) -> list[Any]:
    return [row["score"] for row in next(step.process([dict(r) for r in rows]))]


def test_standalone_each_row_gets_a_float_score(step: RewardModelScore) -> None:
    out = next(step.process([dict(r) for r in ROWS]))
    assert [r["instruction"] for r in out] == [r["instruction"] for r in ROWS]
    assert all(isinstance(r["score"], float) for r in out)
    assert len({r["score"] for r in out}) == 3  # different answers, different scores


def test_a_batch_scores_as_its_rows_do_one_at_a_time(step: RewardModelScore) -> None:
    batched = scores_of(step, ROWS)
    singles = [scores_of(step, [row])[0] for row in ROWS]
    assert batched == pytest.approx(singles, abs=1e-5)  # padding changes nothing


def test_a_conversation_scores_as_its_instruction_and_response(step: RewardModelScore) -> None:
    conversations = [{"conversation": conversation_of(row)} for row in ROWS]
    assert scores_of(step, conversations) == pytest.approx(scores_of(step, ROWS), abs=1e-5)


def test_null_texts_get_a_null_score_without_reaching_the_model(step: RewardModelScore) -> None:
    rows = [{"instruction": "say hi", "response": None}, ROWS[0], {"conversation": None}]
    scores = scores_of(step, rows)
    assert scores[0] is None and scores[2] is None
    assert scores[1] == pytest.approx(scores_of(step, ROWS[:1])[0], abs=1e-5)


def test_the_tokenizers_chat_template_writes_the_conversation(reward_model: str) -> None:
    plain = RewardModelScore(model=reward_model, torch_dtype="float32")
    plain.load()
    templated = RewardModelScore(model=reward_model, torch_dtype="float32")
    templated.load()
    # The template keeps only the words: "say hello hello world" instead of "User: say hello..."
    templated._loaded.tokenizer.chat_template = (
        "{% for m in messages %}{{ m['content'] }} {% endfor %}"
    )
    bare = {"instruction": "say", "response": "hello world"}
    same_words = {"conversation": [{"role": "user", "content": "say hello world"}]}
    assert scores_of(templated, [bare]) == pytest.approx(scores_of(templated, [same_words]))
    assert scores_of(templated, [bare]) != pytest.approx(scores_of(plain, [bare]))


def test_truncation_keeps_max_length_tokens(reward_model: str) -> None:
    long_row = {"instruction": "say " * 40, "response": "hello"}
    cut = RewardModelScore(model=reward_model, torch_dtype="float32", truncation=True, max_length=4)
    cut.load()
    full = RewardModelScore(model=reward_model, torch_dtype="float32")
    full.load()
    same_start = {"instruction": "say say say", "response": "no"}  # the same 4 first tokens
    assert scores_of(cut, [long_row]) == pytest.approx(scores_of(cut, [same_start]))
    assert scores_of(full, [long_row]) != pytest.approx(scores_of(cut, [long_row]))


def test_bad_rows_get_one_line_errors(step: RewardModelScore) -> None:
    with pytest.raises(ValueError, match="needs 'instruction' and 'response', or 'conversation'"):
        next(step.process([{"instruction": "say hi"}]))
    with pytest.raises(TypeError, match="'conversation' must be a non-empty list"):
        next(step.process([{"conversation": "hello"}]))
    with pytest.raises(TypeError, match="'response' must be a string, got int"):
        next(step.process([{"instruction": "hi", "response": 3}]))


def test_scoring_before_load_is_a_one_line_error(reward_model: str) -> None:
    with pytest.raises(RuntimeError, match=r"call load\(\) first"):
        next(RewardModelScore(model=reward_model).process([dict(ROWS[0])]))


@pytest.mark.timeout(180)  # a worker process imports torch and transformers
def test_in_a_process_pool_pipeline_scores_match_standalone(
    reward_model: str, step: RewardModelScore
) -> None:
    rows = [*ROWS, {"conversation": conversation_of(ROWS[0])}]
    with Pipeline(name="rm") as pipeline:
        LoadDataFromDicts(data=rows) >> RewardModelScore(
            model=reward_model,
            torch_dtype="float32",
            executor="process",
            workers=1,
            input_batch_size=2,
        )
    out = list(pipeline.run(use_cache=False)["default"]["train"])
    assert [r["score"] for r in out] == pytest.approx(scores_of(step, rows), abs=1e-5)
    assert out[3]["score"] == pytest.approx(out[0]["score"], abs=1e-5)


def test_input_mappings_and_a_failing_row_in_a_pipeline(reward_model: str) -> None:
    rows = [
        {"prompt": "say hi", "answer": "hi"},
        {"prompt": "say hi"},  # no answer, no conversation: this row fails alone
    ]
    with Pipeline(name="rm") as pipeline:
        LoadDataFromDicts(data=rows) >> RewardModelScore(
            model=reward_model,
            input_mappings={"instruction": "prompt", "response": "answer"},
            output_mappings={"score": "reward"},
            on_error="null",
        )
    out = list(pipeline.run(use_cache=False)["default"]["train"])
    assert isinstance(out[0]["reward"], float)
    assert out[1]["reward"] is None
    assert "needs 'instruction' and 'response'" in out[1]["synthflow_error"]
    with Pipeline(name="rm") as failing:
        LoadDataFromDicts(data=rows[1:]) >> RewardModelScore(model=reward_model)
    with pytest.raises(StepError, match="or 'conversation'"):
        failing.run(use_cache=False)
