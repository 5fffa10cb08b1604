"""TransformersLLM with a tiny, randomly initialised Llama built here: no download, no network.

Needs the extra: ``pip install torch transformers`` (skipped without it).
"""

from __future__ import annotations

from typing import Any

import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")
tokenizers = pytest.importorskip("tokenizers")

from synthflow.errors import LLMResponseError  # noqa: E402
from synthflow.models.llms.base import ChatType, GenerateOutput  # noqa: E402
from synthflow.models.llms.local.transformers import TransformersLLM  # noqa: E402
from synthflow.pipeline import Pipeline  # noqa: E402
from synthflow.steps import LoadDataFromDicts  # noqa: E402
from synthflow.steps.tasks import TextGeneration  # noqa: E402

WORDS = ["hello", "world", "the", "a", "cat", "dog", "say", "hi", "yes", "no", "ok", "red"]
SPECIAL = ["<pad>", "<unk>", "<s>", "</s>"]
ROLES = ["System:", "User:", "Assistant:"]


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A 2-layer Llama with a word-level vocabulary of 19 tokens, saved with its tokenizer."""
    path = tmp_path_factory.mktemp("tiny-llama")
    vocab = {token: i for i, token in enumerate(SPECIAL + ROLES + WORDS)}
    word_level = tokenizers.Tokenizer(tokenizers.models.WordLevel(vocab, unk_token="<unk>"))
    word_level.pre_tokenizer = tokenizers.pre_tokenizers.WhitespaceSplit()
    tokenizer = transformers.PreTrainedTokenizerFast(
        tokenizer_object=word_level,
        pad_token="<pad>",
        unk_token="<unk>",
        bos_token="<s>",
        eos_token="</s>",
    )
    tokenizer.save_pretrained(path)
    config = transformers.LlamaConfig(
        vocab_size=len(vocab),
        hidden_size=16,
        intermediate_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        num_key_value_heads=2,
        max_position_embeddings=256,
        pad_token_id=0,
        bos_token_id=2,
        eos_token_id=3,
    )
    torch.manual_seed(0)
    transformers.LlamaForCausalLM(config).save_pretrained(path)
    return str(path)


@pytest.fixture(autouse=True)
def _offline(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")


@pytest.fixture
def llm(tiny_model: str) -> TransformersLLM:
    llm = TransformersLLM(
        model=tiny_model, device="cpu", generation_kwargs={"max_new_tokens": 6, "temperature": 0}
    )
    llm.load()
    return llm


def user(text: str) -> ChatType:
    return [{"role": "user", "content": text}]


def test_a_process_pool_task_generates_with_the_model(tiny_model: str) -> None:
    llm = TransformersLLM(model=tiny_model, device="cpu", generation_kwargs={"max_new_tokens": 4})
    with Pipeline() as pipeline:
        load = LoadDataFromDicts(data=[{"instruction": f"hello {w}"} for w in WORDS[:6]])
        load >> TextGeneration(name="gen", llm=llm, executor="process", workers=1)
    rows = list(pipeline.run()["default"]["train"])
    assert [r["instruction"] for r in rows] == [f"hello {w}" for w in WORDS[:6]]
    assert all(isinstance(r["generation"], str) for r in rows)
    assert {r["model_name"] for r in rows} == {tiny_model}
    assert all(r.get("synthflow_error") is None for r in rows)
    assert not llm.loaded  # the workers loaded their own copies


@pytest.mark.anyio
async def test_batched_greedy_answers_match_one_at_a_time(
    llm: TransformersLLM, monkeypatch: pytest.MonkeyPatch
) -> None:
    conversations = [user(" ".join(WORDS[: i + 1])) for i in range(5)]
    singles = [await llm.agenerate(c) for c in conversations]
    calls: list[int] = []
    original = TransformersLLM.generate_batch

    def spy(self: TransformersLLM, batch: list[ChatType], n: int) -> list[GenerateOutput]:
        calls.append(len(batch))
        return original(self, batch, n)

    monkeypatch.setattr(TransformersLLM, "generate_batch", spy)
    llm.max_batch_size = 4
    batched = await llm.agenerate_batch(conversations)
    assert calls == [4, 1]  # left padding, one call of the model per batch
    assert [o.generations for o in batched] == [o.generations for o in singles]
    # "<s>User: w1 .. wk\n\nAssistant:" is the plain template: 3 tokens + the k words.
    assert [o.usage.input_tokens for o in batched] == [3 + i + 1 for i in range(5)]
    assert all(0 < o.usage.output_tokens <= 6 for o in batched)


@pytest.mark.anyio
async def test_sampling_is_reproducible_with_a_seed(llm: TransformersLLM) -> None:
    llm.generation_kwargs = {"max_new_tokens": 8, "temperature": 1.5, "seed": 7}
    first = await llm.agenerate(user("hello"), num_generations=3)
    again = await llm.agenerate(user("hello"), num_generations=3)
    assert len(first.generations) == 3
    assert first.generations == again.generations
    assert len(set(first.generations)) > 1  # three samples, not one repeated


@pytest.mark.anyio
async def test_several_greedy_generations_are_one_answer_repeated(llm: TransformersLLM) -> None:
    output = await llm.agenerate(user("hello"), num_generations=2)
    assert output.generations[0] == output.generations[1]


@pytest.mark.anyio
async def test_the_answer_ends_before_a_stop_string(llm: TransformersLLM) -> None:
    llm.generation_kwargs = {"max_new_tokens": 12, "temperature": 0}
    full = (await llm.agenerate(user("the cat"))).generations[0]
    assert full is not None
    words = full.split()
    assert len(words) >= 2, full
    stop = words[1]
    llm.generation_kwargs = {"max_new_tokens": 12, "temperature": 0, "stop": [stop]}
    stopped = await llm.agenerate(user("the cat"))
    assert stopped.generations == [full[: full.index(stop)]]
    assert stopped.usage.output_tokens < 12


@pytest.mark.anyio
async def test_a_chat_template_replaces_the_plain_one(tiny_model: str) -> None:
    llm = TransformersLLM(
        model=tiny_model,
        device="cpu",
        chat_template="{% for m in messages %}{{ m['content'] }} {% endfor %}",
        generation_kwargs={"max_new_tokens": 2},
    )
    llm.load()
    output = await llm.agenerate(user("hello world"))
    assert output.usage.input_tokens == 2  # just the two words, no roles, no BOS
    llm.unload()
    assert not llm.loaded


@pytest.mark.anyio
async def test_structured_output_re_asks_then_gives_up(tiny_model: str) -> None:
    llm = TransformersLLM(
        model=tiny_model,
        device="cpu",
        structured_output={"type": "object"},
        structured_retries=1,
        generation_kwargs={"max_new_tokens": 3, "temperature": 0},
    )
    llm.load()
    with pytest.raises(LLMResponseError, match="after 1 re-asks"):
        await llm.agenerate(user("hello"))


def test_generation_kwargs_map_to_generate(tiny_model: str) -> None:
    llm = TransformersLLM(model=tiny_model)
    defaults: Any = transformers.GenerationConfig()
    llm.generation_kwargs = {"max_tokens": 5, "temperature": 0.7, "top_p": 0.9, "seed": 1}
    kwargs, seed, repeat = llm._generate_kwargs(2, defaults)
    assert kwargs == {
        "max_new_tokens": 5,
        "do_sample": True,
        "temperature": 0.7,
        "top_p": 0.9,
        "num_return_sequences": 2,
    }
    assert (seed, repeat) == (1, 1)
    llm.generation_kwargs = {"temperature": 0, "top_k": 5}
    kwargs, seed, repeat = llm._generate_kwargs(3, defaults)
    assert kwargs["do_sample"] is False and kwargs["num_return_sequences"] == 1
    assert kwargs["max_new_tokens"] == 512 and kwargs["top_k"] is None
    assert (seed, repeat) == (None, 3)


@pytest.mark.anyio
async def test_magpie_user_turns_complete_the_raw_prompt(tiny_model: str) -> None:
    # The vocabulary has "User:", so the pre-query template is one token; a chat template
    # renders the conversation before it ("System: hi" then "User:": 3 tokens).
    llm = TransformersLLM(
        model=tiny_model,
        device="cpu",
        magpie_pre_query_template="User:",
        chat_template="{% for m in messages %}{{ m['role'] | capitalize }}: {{ m['content'] }} "
        "{% endfor %}",
        generation_kwargs={"max_new_tokens": 4, "temperature": 0},
    )
    llm.load()
    alone = await llm.agenerate_user_turn([])
    after = await llm.agenerate_user_turn([{"role": "system", "content": "hi"}])
    assert alone.usage.input_tokens == 1
    assert after.usage.input_tokens == 3
    assert all(isinstance(o.generations[0], str) for o in (alone, after))


def test_magpie_generator_runs_a_local_model_in_a_worker(tiny_model: str) -> None:
    from synthflow.steps.tasks import MagpieGenerator

    llm = TransformersLLM(
        model=tiny_model,
        device="cpu",
        magpie_pre_query_template="User:",
        generation_kwargs={"max_new_tokens": 4, "temperature": 1.0, "seed": 1},
    )
    with Pipeline() as pipeline:
        MagpieGenerator(name="magpie", llm=llm, num_rows=3, executor="process")
    rows = list(pipeline.run()["default"]["train"])
    assert len(rows) == 3
    assert {r["model_name"] for r in rows} == {tiny_model}
    # A random tiny model may end a turn at once (an empty turn fails its row): each row is
    # either a readable pair or a failed row with null outputs.
    for row in rows:
        done = row["instruction"] is not None and row["response"] is not None
        assert done or row.get("synthflow_error")
