"""What every in-process model shares (``LocalLLM``), and the optional extras' import guards."""

from __future__ import annotations

import pickle
import subprocess
import sys
from typing import Any, ClassVar

import anyio
import pytest
from pydantic import BaseModel

from synthflow.errors import LLMError, LLMResponseError
from synthflow.models.llms.base import ChatType, GenerateOutput, Usage
from synthflow.models.llms.local.base import LocalLLM, cut_at_stop, plain_prompt
from synthflow.models.llms.local.litellm import LiteLLM
from synthflow.models.llms.local.llama_cpp import LlamaCppLLM
from synthflow.models.llms.local.transformers import TransformersLLM
from synthflow.models.llms.local.vllm import vLLM
from synthflow.pipeline import Pipeline
from synthflow.steps import LoadDataFromDicts
from synthflow.steps.tasks import TextGeneration


class Scripted(LocalLLM):
    """Answers with the next of ``replies`` while there are any, then echoes the last message;
    records the batches the model was called with."""

    replies: list[str] = []
    fail_on: str | None = None

    @property
    def model_name(self) -> str:
        return "scripted"

    def load(self) -> None:
        self._runtime.model = []  # the "model" is the list of batches it saw

    def generate_batch(
        self, conversations: list[ChatType], num_generations: int
    ) -> list[GenerateOutput]:
        prompts = [str(c[-1]["content"]) for c in conversations]
        self._runtime.model.append(prompts)
        if self.fail_on is not None and self.fail_on in prompts:
            raise ValueError(f"can't answer {self.fail_on!r}")
        outputs = []
        for prompt in prompts:
            text = self.replies.pop(0) if self.replies else f"echo {prompt}"
            outputs.append(GenerateOutput([text] * num_generations, Usage(1, num_generations)))
        return outputs

    @property
    def batches(self) -> list[list[str]]:
        return list(self._runtime.model)


def user(text: str) -> ChatType:
    return [{"role": "user", "content": text}]


async def gather(llm: LocalLLM, texts: list[str], n: int = 1) -> list[GenerateOutput]:
    outputs: list[GenerateOutput] = [GenerateOutput([]) for _ in texts]

    async def one(i: int) -> None:
        outputs[i] = await llm.agenerate(user(texts[i]), num_generations=n)

    async with anyio.create_task_group() as tg:
        for i in range(len(texts)):
            tg.start_soon(one, i)
    return outputs


@pytest.mark.anyio
async def test_concurrent_calls_are_coalesced_into_batches_of_max_batch_size() -> None:
    llm = Scripted(max_batch_size=3)
    llm.load()
    texts = [f"q{i}" for i in range(7)]
    outputs = await gather(llm, texts)
    assert [o.generations for o in outputs] == [[f"echo {t}"] for t in texts]
    assert llm.batches == [["q0", "q1", "q2"], ["q3", "q4", "q5"], ["q6"]]


@pytest.mark.anyio
async def test_agenerate_batch_keeps_order_and_num_generations() -> None:
    llm = Scripted()
    llm.load()
    outputs = await llm.agenerate_batch([user("a"), user("b")], num_generations=2)
    assert [o.generations for o in outputs] == [["echo a", "echo a"], ["echo b", "echo b"]]
    assert [o.usage for o in outputs] == [Usage(1, 2), Usage(1, 2)]
    assert llm.batches == [["a", "b"]]


@pytest.mark.anyio
async def test_a_failing_batch_is_retried_one_by_one_so_only_the_bad_row_fails() -> None:
    llm = Scripted(fail_on="bad")
    llm.load()
    results: dict[str, Any] = {}

    async def one(text: str) -> None:
        try:
            results[text] = (await llm.agenerate(user(text))).generations
        except ValueError as exc:
            results[text] = exc

    async with anyio.create_task_group() as tg:
        for text in ("a", "bad", "c"):
            tg.start_soon(one, text)
    assert results["a"] == ["echo a"] and results["c"] == ["echo c"]
    assert isinstance(results["bad"], ValueError)
    assert llm.batches[0] == ["a", "bad", "c"]


@pytest.mark.anyio
async def test_calling_before_load_says_so() -> None:
    with pytest.raises(LLMError, match="not loaded: call load"):
        await Scripted().agenerate(user("x"))


class Answer(BaseModel):
    label: str


@pytest.mark.anyio
async def test_structured_output_is_validated_and_re_asked() -> None:
    llm = Scripted(structured_output=Answer, replies=["not json", '{"label": "ok"}'])
    llm.load()
    output = await llm.agenerate(user("hi"))
    assert output.generations == ['{"label": "ok"}']
    assert output.usage == Usage(2, 2)
    reask = llm.batches[1][0]
    assert reask.startswith("Your previous answer is not valid JSON") and "label" in reask


@pytest.mark.anyio
async def test_structured_output_gives_up_after_structured_retries() -> None:
    llm = Scripted(structured_output={"type": "object"}, structured_retries=1)
    llm.load()
    with pytest.raises(LLMResponseError, match="after 1 re-asks"):
        await llm.agenerate(user("hi"))
    assert len(llm.batches) == 2


@pytest.mark.anyio
async def test_without_native_constraints_the_schema_goes_into_the_prompt() -> None:
    llm = Scripted(structured_output={"type": "object"}, structured_retries=0)
    llm.load()
    with pytest.raises(LLMResponseError):
        await llm.agenerate(user("hi"))
    (prompt,) = llm.batches[0]
    assert prompt.startswith("hi\n\nAnswer with only a JSON value") and '"object"' in prompt


def test_a_pickled_copy_arrives_unloaded_and_keeps_its_schema_model() -> None:
    llm = Scripted(structured_output=Answer)
    llm.load()
    copy = pickle.loads(pickle.dumps(llm))
    assert llm.loaded and not copy.loaded
    assert copy._schema_model is Answer
    assert copy.structured_output == Answer.model_json_schema()


def test_a_local_llm_runs_in_a_pipeline_on_the_loop() -> None:
    with Pipeline() as pipeline:
        load = LoadDataFromDicts(data=[{"instruction": f"q{i}"} for i in range(5)])
        load >> TextGeneration(name="gen", llm=Scripted(max_batch_size=2), num_generations=2)
    rows = list(pipeline.run()["default"]["train"])
    assert [r["generation"] for r in rows] == [f"echo q{i // 2}" for i in range(10)]
    assert {r["model_name"] for r in rows} == {"scripted"}


def test_plain_prompt_and_stop_strings() -> None:
    messages: ChatType = [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": [{"type": "text", "text": "Hi"}]},
    ]
    assert plain_prompt(messages) == "System: Be brief.\n\nUser: Hi\n\nAssistant:"
    assert cut_at_stop("one two three", ["three", "two"]) == "one "
    assert cut_at_stop("one", ["x", ""]) == "one"


@pytest.mark.parametrize(
    ("module", "llm", "install"),
    [
        ("transformers", TransformersLLM(model="m"), "'synthflow[transformers]'"),
        ("vllm", vLLM(model="m"), "'synthflow[vllm]'"),
        ("llama_cpp", LlamaCppLLM(model_path="m.gguf"), "'synthflow[llama-cpp]'"),
        ("litellm", LiteLLM(model="openai/m"), "'synthflow[litellm]'"),
    ],
)
def test_a_missing_extra_says_what_to_pip_install(
    module: str, llm: Any, install: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, module, None)  # import now raises ImportError
    with pytest.raises(ImportError, match="pip install " + install.replace("[", r"\[")):
        llm.load()


def test_importing_the_local_llm_modules_imports_no_heavy_library() -> None:
    code = (
        "import sys\n"
        "import synthflow.models.llms.local.transformers, synthflow.models.llms.local.vllm\n"
        "import synthflow.models.llms.local.llama_cpp, synthflow.models.llms.local.litellm\n"
        "heavy = {'torch', 'transformers', 'vllm', 'llama_cpp', 'litellm', 'tokenizers'}\n"
        "print(sorted(heavy & set(sys.modules)))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=30
    )
    assert result.stdout.strip() == "[]"


class SaysNothingTo(Scripted):
    """Answers ``None`` (no text) to the prompt ``silent_on``; ``asked`` lists every prompt."""

    silent_on: str = "bad"
    asked: ClassVar[list[str]] = []  # not a field: it would change the pipeline's signature

    def generate_batch(
        self, conversations: list[ChatType], num_generations: int
    ) -> list[GenerateOutput]:
        self.asked.extend(str(c[-1]["content"]) for c in conversations)
        outputs = super().generate_batch(conversations, num_generations)
        for conversation, output in zip(conversations, outputs, strict=True):
            if conversation[-1]["content"] == self.silent_on:
                output.generations = [None] * num_generations
        return outputs


def test_a_local_answer_without_text_fails_its_row_and_is_not_cached() -> None:
    SaysNothingTo.asked.clear()
    llm = SaysNothingTo()
    with Pipeline(name="local-empty") as pipeline:
        load = LoadDataFromDicts(data=[{"instruction": "good"}, {"instruction": "bad"}])
        load >> TextGeneration(name="gen", llm=llm)
    good, bad = pipeline.run(progress=False)["default"]["train"]
    assert good["generation"] == "echo good"
    assert bad["generation"] is None
    assert bad["synthflow_error"].startswith(
        "gen: LLMEmptyAnswerError: SaysNothingTo returned no text for 1 of 1 generations"
    )

    assert sorted(llm.asked) == ["bad", "good"]
    pipeline.run(progress=False)  # the answered row comes from the cache; the other is asked
    assert sorted(llm.asked) == ["bad", "bad", "good"]
