"""Every catalog task and step through synthflow.checks, one pytest case per class and check.

Adding a class to the catalog is one line in CATALOG: the class, the constructor arguments its
example needs, its example rows when its inputs aren't plain text, and a well-formed answer when
the built-in OfflineLLM's answer isn't one for it.
"""

from __future__ import annotations

import base64
import importlib.util
import json
import shutil
import tempfile
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest

import synthflow.steps
import synthflow.steps.tasks
from synthflow.checks import (
    CHECKS,
    CheckFailed,
    StepSpec,
    check_docstring,
    check_in_pipeline,
    check_malformed_answers,
    check_standalone,
    check_step,
    check_yaml_round_trip,
    parametrize_with_checks,
)
from synthflow.errors import OutputParseError
from synthflow.models.embeddings import Embeddings
from synthflow.models.llms import LLM, TransformersLLM
from synthflow.steps import (
    CombineColumns,
    CombineOutputs,
    ConversationTemplate,
    DataSampler,
    DeitaFiltering,
    DropDuplicates,
    EmbeddingDedup,
    EmbeddingGeneration,
    ExpandColumns,
    FaissNearestNeighbour,
    FormatChatGenerationDPO,
    FormatChatGenerationSFT,
    FormatTextGenerationDPO,
    FormatTextGenerationSFT,
    GroupColumns,
    KeepColumns,
    LoadDataFromDicts,
    LoadDataFromDisk,
    LoadDataFromFileSystem,
    LoadDataFromHub,
    MergeColumns,
    MinHashDedup,
    RewardModelScore,
    Step,
    StepInput,
    TruncateTextColumn,
)
from synthflow.steps.base import Row
from synthflow.steps.tasks import (
    CLAIR,
    URIAL,
    APIGenExecutionChecker,
    APIGenGenerator,
    APIGenSemanticChecker,
    ArgillaLabeller,
    BitextRetrievalGenerator,
    ChatGeneration,
    ChatType,
    ComplexityScorer,
    EmbeddingTaskGenerator,
    EvolComplexity,
    EvolComplexityGenerator,
    EvolInstruct,
    EvolInstructGenerator,
    EvolQuality,
    FormatPRM,
    GenerateEmbeddings,
    GenerateLongTextMatchingData,
    GenerateSentencePair,
    GenerateShortTextMatchingData,
    GenerateTextClassificationData,
    GenerateTextRetrievalData,
    GeneratorTask,
    Genstruct,
    ImageGeneration,
    InstructionBacktranslation,
    Magpie,
    MagpieGenerator,
    MathShepherdCompleter,
    MathShepherdGenerator,
    MonolingualTripletGenerator,
    PairRM,
    PrometheusEval,
    QualityScorer,
    SelfInstruct,
    StructuredGeneration,
    Task,
    TextClassification,
    TextClustering,
    TextGeneration,
    TextGenerationWithImage,
    UltraFeedback,
)
from synthflow.testing import OfflineLLM


class LengthEmbeddings(Embeddings):
    """A deterministic embedding model for the checks: a text's length and its word count."""

    @property
    def model_name(self) -> str:
        return "length"

    def encode(self, inputs: Sequence[str]) -> list[list[float]]:
        return [[float(len(text)), float(len(text.split()))] for text in inputs]


def rewrite(messages: ChatType) -> str:
    """A model that rewrites the prompt in an evolution template: a new text every round."""
    prompt = str(messages[-1]["content"])
    if "New response:" in prompt:
        response = prompt.rsplit("Response:\n", 1)[1].split("\n\nNew response:")[0]
        return f"New response: {response} With one more detail."
    if "New prompt:" in prompt:
        original = prompt.rsplit("Prompt:\n", 1)[1].split("\n\nNew prompt:")[0]
        return f"New prompt: {original} Explain each step."
    return "An answer."


RETRIEVAL = '{"user_query": "q", "positive_document": "p", "hard_negative_document": "n"}'
MATCHING = '```json\n{"input": "a", "positive_document": "b"}\n```'
CLASSIFIED = 'Here: {"input_text": "t", "label": "l", "misleading_label": "m"}'
PAIR = "## Positive\nA cat sat on the mat.\n## Negative\nStocks fell sharply today."

APIGEN_ROW = {"examples": "q -> add(1, 2)", "func_name": "add", "func_desc": "Adds a and b."}
APIGEN_CALLS = '[{"name": "add", "arguments": {"a": 1, "b": 2}}]'
APIGEN_FUNCTIONS = str(Path(__file__).with_name("apigen_functions.py"))


class BrainstormTitles(GeneratorTask):
    """A user's source task: brainstorms book titles, one per line. Output columns: ``title``
    and ``model_name``."""

    @property
    def outputs(self) -> list[str]:
        return ["title", "model_name"]

    def format_input(self, row: Row) -> ChatType:
        return [{"role": "user", "content": "Brainstorm book titles, one per line."}]

    def format_output(self, output: str | None, row: Row) -> dict[str, Any]:
        lines = [line.strip() for line in (output or "").splitlines() if line.strip()]
        if not lines:
            raise OutputParseError("the answer holds no title")
        return {"title": lines[0]}


EXAMPLE_DATA = Path(__file__).resolve().parent.parent / "examples" / "data"
ASSETS = Path(tempfile.mkdtemp(prefix="synthflow-conformance-"))
"""Models and datasets the specs name, made by ``_assets`` before a case needs them."""

SAVED_DATASET = ASSETS / "saved-dataset"
TINY_REWARD_MODEL = ASSETS / "tiny-reward-model"
TINY_CAUSAL_LM = ASSETS / "tiny-causal-lm"

DPO_ROW = {
    "instruction": "q",
    "generations": ["g1", "g2", "g3"],
    "ratings": [3, 5, 1],
    "generation_models": ["m1", "m2", "m3"],
}
CHAT = [{"role": "user", "content": "Hi"}]
LABELLED = ["Step 1: 2 + 2 = 4. +", "Step 2: 4 * 2 = 8. The answer is: 8 -"]
SOLUTION = ["Step 1: 2 + 2 = 4.", "Step 2: 4 * 2 = 8.", "The answer is: 8"]
TASKS = '```json\n["Given a query, retrieve its answer.", "Given a claim, find evidence."]\n```'
TINY_PNG = base64.b64encode(b"\x89PNG\r\n\x1a\n" + b"\x00" * 16).decode()
TRIPLET = '{"S1": "A cat sat.", "S2": "A cat was sitting.", "S3": "A cat sat on a hat."}'

EXTRA_STEPS: list[StepSpec] = [
    StepSpec(GroupColumns, {"columns": ["generation"]}, rows=[{"generation": "x"}]),
    StepSpec(
        GroupColumns,
        {"columns": ["generation", "model_name"], "output_columns": ["gens", "models"]},
        rows=[{"generation": "x", "model_name": "m"}],
        id="GroupColumns-renamed",
    ),
    StepSpec(CombineOutputs, rows=[{"a": 1, "b": "x"}]),
    StepSpec(MergeColumns, {"columns": ["a", "b"]}, rows=[{"a": "x", "b": ["y", "z"]}]),
    StepSpec(ExpandColumns, {"columns": ["generations"]}, rows=[{"generations": ["a", "b"]}]),
    StepSpec(
        ExpandColumns,
        {"columns": {"generations": "generation"}, "encoded": True, "split_statistics": True},
        rows=[{"generations": '["a", "b"]'}],
        id="ExpandColumns-encoded",
    ),
    StepSpec(
        LoadDataFromFileSystem,
        {"data_files": str(EXAMPLE_DATA / "prompts.jsonl")},
        data_columns=True,
    ),
    StepSpec(LoadDataFromHub, {"repo_id": str(EXAMPLE_DATA)}, data_columns=True),
    StepSpec(LoadDataFromDisk, {"dataset_path": str(SAVED_DATASET)}, data_columns=True),
    StepSpec(DataSampler, {"data": [{"a": 1, "b": "x"}, {"a": 2}], "samples": 3, "seed": 7}),
    StepSpec(FormatTextGenerationSFT),
    StepSpec(
        FormatTextGenerationSFT,
        rows=[{"instruction": "q", "generation": "a", "system_prompt": "Be brief."}],
        id="FormatTextGenerationSFT-system",
    ),
    StepSpec(FormatChatGenerationSFT, rows=[{"messages": CHAT, "generation": "Hello"}]),
    StepSpec(FormatTextGenerationDPO, rows=[DPO_ROW]),
    StepSpec(
        FormatChatGenerationDPO,
        rows=[{"messages": CHAT, "generations": ["a", "b"], "ratings": [1, None]}],
    ),
    StepSpec(ConversationTemplate),
    StepSpec(TruncateTextColumn, {"column": "text", "max_length": 5}),
    StepSpec(
        MinHashDedup,
        rows=[
            {"text": "the quick brown fox jumps over the lazy dog"},
            {"text": "the quick brown fox jumps over the lazy dog"},
            {"text": "an entirely different sentence about synthetic data"},
        ],
    ),
    StepSpec(
        EmbeddingDedup,
        {"threshold": 0.8},
        rows=[
            {"nn_indices": [1], "nn_scores": [0.95]},
            {"nn_indices": [0], "nn_scores": [0.95]},
            {"nn_indices": [0], "nn_scores": [0.1]},
        ],
    ),
    StepSpec(
        DeitaFiltering,
        {"data_budget": 2, "diversity_threshold": 0.1},
        rows=[
            {"evol_instruction_score": 2.0, "evol_response_score": 3.0, "embedding": [1.0, 0.0]},
            {"evol_instruction_score": 1.0, "evol_response_score": 3.0, "embedding": [0.0, 1.0]},
            {"evol_instruction_score": 5.0, "evol_response_score": None, "embedding": [1.0, 0.1]},
        ],
        paper=True,
    ),
    StepSpec(
        FaissNearestNeighbour,
        {"k": 1},
        rows=[{"embedding": [1.0, 0.0]}, {"embedding": [0.0, 1.0]}, {"embedding": [1.0, 0.1]}],
    ),
    StepSpec(FormatPRM, rows=[{"instruction": "q", "solutions": LABELLED}], paper=True),
    StepSpec(
        FormatPRM,
        {"format": "trl"},
        rows=[{"instruction": "q", "solutions": LABELLED}],
        paper=True,
        id="FormatPRM-trl",
    ),
]

EXTRA_TASKS: list[StepSpec] = [
    StepSpec(
        CLAIR,
        rows=[{"task": "2 + 2?", "student_solution": "5"}],
        answer="Reasoning: the sum is wrong.\n\nRevised answer:\n4",
        paper=True,
    ),
    StepSpec(URIAL, rows=[{"instruction": "Say hi."}], paper=True),
    StepSpec(
        URIAL,
        rows=[{"conversation": [{"role": "system", "content": "Be kind."}, *CHAT]}],
        answer="# Assistant:\nHello!\n\n# User:\nand more",
        paper=True,
        id="URIAL-conversation",
    ),
    StepSpec(
        Genstruct,
        rows=[{"title": "Cats", "content": "Cats sleep a lot."}],
        answer="[[[User]]] Why do cats sleep?\n[[[Assistant]]] To save energy.",
        paper=True,
    ),
    StepSpec(MathShepherdGenerator, answer="\n".join(SOLUTION), paper=True),
    StepSpec(
        MathShepherdGenerator,
        {"M": 2},
        answer="\n".join(SOLUTION) + "\n---\n" + "\n".join(SOLUTION),
        paper=True,
        id="MathShepherdGenerator-M",
    ),
    StepSpec(
        MathShepherdGenerator,
        {"M": 2, "use_default_structured_output": True},
        answer=json.dumps([{"solution": "\n".join(SOLUTION)}] * 2),
        paper=True,
        id="MathShepherdGenerator-json",
    ),
    StepSpec(
        MathShepherdCompleter,
        {"N": 2},
        rows=[{"instruction": "q", "solutions": [SOLUTION], "golden_solution": SOLUTION}],
        answer="Step 2: 4 * 2 = 8.\nThe answer is: 8",
        paper=True,
    ),
    StepSpec(EmbeddingTaskGenerator, {"category": "text-retrieval"}, answer=TASKS, paper=True),
    StepSpec(
        EmbeddingTaskGenerator,
        {"category": "text-classification", "flatten_tasks": True},
        answer=TASKS,
        paper=True,
        id="EmbeddingTaskGenerator-flat",
    ),
    StepSpec(MonolingualTripletGenerator, answer=TRIPLET, paper=True),
    StepSpec(BitextRetrievalGenerator, {"target_language": "French"}, answer=TRIPLET, paper=True),
    StepSpec(BrainstormTitles, answer="Dune\nEmma"),
    StepSpec(Magpie, rows=[{"system_prompt": "You teach chemistry."}], paper=True),
    StepSpec(
        Magpie,
        {"n_turns": 2, "system_prompt": {"chem": ("You teach chemistry.", 0.7), "art": ("", 0.3)}},
        rows=[{"topic": "x"}],
        paper=True,
        id="Magpie-conversation",
    ),
    StepSpec(MagpieGenerator, {"num_rows": 3}, paper=True),
    StepSpec(ImageGeneration, rows=[{"prompt": "A white cat."}], answer=TINY_PNG),
    StepSpec(
        MagpieGenerator,
        {"num_rows": 2, "only_instruction": True, "system_prompt": ["Be brief.", "Be kind."]},
        paper=True,
        id="MagpieGenerator-instruction",
    ),
]

LOCAL_MODELS: list[StepSpec] = [
    StepSpec(
        RewardModelScore,
        {"model": str(TINY_REWARD_MODEL), "torch_dtype": "float32"},
        rows=[{"instruction": "hello world", "response": "the cat say hi"}],
    ),
    StepSpec(
        GenerateEmbeddings,
        {"llm": TransformersLLM(model=str(TINY_CAUSAL_LM), device="cpu")},
        rows=[{"text": "hello world"}],
        paper=True,
    ),
    StepSpec(PairRM, rows=[{"input": "hi", "candidates": ["hello", "yes"]}], paper=True),
]

NEEDS: dict[str, tuple[str, ...]] = {
    "FaissNearestNeighbour": ("faiss",),
    "RewardModelScore": ("torch", "transformers"),
    "GenerateEmbeddings": ("torch", "transformers"),
    "PairRM": ("llm_blender",),
    "LoadDataFromHub": ("datasets",),
    "LoadDataFromDisk": ("datasets",),
    "LoadDataFromFileSystem": ("datasets",),
}
"""The extras a case needs (modules); without them it is skipped, saying what to install."""


def _make_assets(name: str) -> None:
    """The model or dataset the case ``name`` reads, made once per test session."""
    from tests import tiny_models

    if name == "LoadDataFromDisk" and not SAVED_DATASET.exists():
        import datasets

        datasets.Dataset.from_list([{"text": "a", "n": 1}, {"text": "b", "n": 2}]).save_to_disk(
            str(SAVED_DATASET)
        )
    elif name == "RewardModelScore" and not TINY_REWARD_MODEL.exists():
        tiny_models.save_tiny_reward_model(TINY_REWARD_MODEL)
    elif name == "GenerateEmbeddings" and not TINY_CAUSAL_LM.exists():
        tiny_models.save_tiny_causal_lm(TINY_CAUSAL_LM)


@pytest.fixture(scope="session", autouse=True)
def _remove_assets() -> Iterator[None]:
    yield
    shutil.rmtree(ASSETS, ignore_errors=True)


@pytest.fixture(autouse=True)
def _assets(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    callspec = getattr(request.node, "callspec", None)
    spec = callspec.params.get("spec") if callspec is not None else None
    if not isinstance(spec, StepSpec):
        return
    name = spec.cls.__name__
    missing = [m for m in NEEDS.get(name, ()) if importlib.util.find_spec(m) is None]
    if missing:
        pytest.skip(f"{name} needs {', '.join(missing)} (its extra is not installed)")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    _make_assets(name)


CATALOG: list[StepSpec] = [
    # -- steps
    StepSpec(LoadDataFromDicts, {"data": [{"instruction": "a"}, {"instruction": "b", "n": 1}]}),
    StepSpec(KeepColumns, {"columns": ["a", "b"]}, rows=[{"a": 1, "b": 2, "c": 3}]),
    StepSpec(CombineColumns, {"columns": ["generation"]}, rows=[{"generation": "x"}]),
    StepSpec(DropDuplicates, {"columns": ["a"]}, rows=[{"a": 1}, {"a": 1}, {"a": 2}]),
    # -- tasks
    StepSpec(TextGeneration),
    StepSpec(TextGeneration, {"system_prompt": "Be brief."}, id="TextGeneration-system"),
    StepSpec(ChatGeneration, rows=[{"messages": [{"role": "user", "content": "Hi"}]}]),
    StepSpec(
        TextGenerationWithImage,
        rows=[{"instruction": "What is in it?", "image": "https://example.com/cat.jpg"}],
    ),
    StepSpec(SelfInstruct, {"num_instructions": 3}, answer="1. a\n2. b\n3. c", paper=True),
    StepSpec(EvolInstruct, {"num_evolutions": 2}, answer=rewrite, paper=True),
    StepSpec(
        EvolInstruct,
        {"num_evolutions": 2, "store_evolutions": True, "generate_answers": True},
        answer=rewrite,
        paper=True,
        id="EvolInstruct-stored-answered",
    ),
    StepSpec(
        EvolComplexity, {"num_evolutions": 1, "generate_answers": True}, answer=rewrite, paper=True
    ),
    StepSpec(EvolQuality, {"num_evolutions": 2}, answer=rewrite, paper=True),
    StepSpec(
        EvolInstructGenerator, {"num_instructions": 2, "min_length": 1}, answer=rewrite, paper=True
    ),
    StepSpec(
        EvolComplexityGenerator,
        {"num_instructions": 2, "min_length": 1, "generate_answers": True},
        answer=rewrite,
        paper=True,
    ),
    StepSpec(
        EvolQuality,
        {"num_evolutions": 2, "store_evolutions": True, "include_original_response": True},
        answer=rewrite,
        paper=True,
        id="EvolQuality-stored",
    ),
    StepSpec(TextClassification, {"available_labels": ["positive", "negative"]}, paper=True),
    StepSpec(
        TextClassification,
        {"n": 2, "available_labels": {"sports": "games", "news": "events"}},
        answer='{"labels": ["sports", "news"]}',
        paper=True,
        id="TextClassification-multi",
    ),
    StepSpec(
        StructuredGeneration,
        rows=[
            {
                "instruction": "A user",
                "structured_output": {
                    "format": "json",
                    "schema": {
                        "type": "object",
                        "properties": {"name": {"type": "string"}},
                        "required": ["name"],
                    },
                },
            }
        ],
        answer='{"name": "Ada"}',
    ),
    StepSpec(GenerateSentencePair, {"action": "paraphrase"}, answer=PAIR, paper=True),
    StepSpec(
        GenerateSentencePair,
        {"action": "query", "triplet": True, "hard_negative": True, "context": "recipes"},
        answer=PAIR,
        paper=True,
        id="GenerateSentencePair-triplet",
    ),
    StepSpec(
        GenerateSentencePair,
        {"action": "answer", "triplet": True, "use_default_structured_output": True},
        paper=True,
        id="GenerateSentencePair-json",
    ),
    StepSpec(GenerateTextRetrievalData, answer=RETRIEVAL, paper=True),
    StepSpec(InstructionBacktranslation, answer="Clear and complete.\nScore: 4", paper=True),
    StepSpec(
        GenerateTextRetrievalData,
        {"query_type": "common", "num_words": 50, "use_default_structured_output": True},
        id="GenerateTextRetrievalData-json",
    ),
    StepSpec(GenerateShortTextMatchingData, answer=MATCHING, paper=True),
    StepSpec(GenerateLongTextMatchingData, answer=MATCHING, paper=True),
    StepSpec(GenerateTextClassificationData, {"difficulty": "PhD"}, answer=CLASSIFIED, paper=True),
    StepSpec(
        APIGenGenerator,
        rows=[APIGEN_ROW],
        answer=f'{{"query": "What is 1 plus 2?", "answers": {APIGEN_CALLS}}}',
        paper=True,
    ),
    StepSpec(
        APIGenExecutionChecker,
        {"libpath": APIGEN_FUNCTIONS},
        rows=[{"answers": APIGEN_CALLS}],
        paper=True,
    ),
    # -- judges and scorers
    StepSpec(
        APIGenSemanticChecker,
        answer='{"thought": "The call adds the numbers asked for.", "passes": "yes"}',
        paper=True,
    ),
    StepSpec(
        UltraFeedback,
        rows=[{"instruction": "q", "generations": ["g1", "g2"]}],
        answer="Text 1:\nRating: 4\nRationale: a\n\nText 2:\nRating: 2\nRationale: b",
        paper=True,
    ),
    StepSpec(
        UltraFeedback,
        {"aspect": "helpfulness"},
        rows=[{"instruction": "q", "generations": ["g1", "g2"]}],
        answer="Text 1:\nType: 1\nRationale: a\nRating: 4\nRationale: b\n\n"
        "Text 2:\nType: None\nRationale: c\nRating: 2\nRationale: d",
        paper=True,
        id="UltraFeedback-helpfulness",
    ),
    StepSpec(
        UltraFeedback,
        {"use_default_structured_output": True},
        rows=[{"instruction": "q", "generations": ["g1"]}],  # the offline LLM's JSON: 1 rating
        paper=True,
        id="UltraFeedback-json",
    ),
    StepSpec(
        UltraFeedback,
        {"aspect": "truthfulness", "use_default_structured_output": True},
        rows=[{"instruction": "q", "generations": ["g1"]}],
        paper=True,
        id="UltraFeedback-typed-json",
    ),
    StepSpec(
        ComplexityScorer,
        {"use_default_structured_output": True},
        rows=[{"instructions": ["a"]}],
        paper=True,
        id="ComplexityScorer-json",
    ),
    StepSpec(
        QualityScorer,
        {"use_default_structured_output": True},
        rows=[{"instruction": "q", "responses": ["r1"]}],
        paper=True,
        id="QualityScorer-json",
    ),
    StepSpec(
        ComplexityScorer,
        rows=[{"instructions": ["a", "b"]}],
        answer="[1] Score: 1\n[2] Score: 3",
        paper=True,
    ),
    StepSpec(
        QualityScorer,
        rows=[{"instruction": "q", "responses": ["r1", "r2"]}],
        answer="[1] Score: 5\n[2] Score: 3",
        paper=True,
    ),
    StepSpec(PrometheusEval, answer="Feedback: fine. [RESULT] 4", paper=True),
    StepSpec(
        PrometheusEval,
        {"mode": "relative", "reference": True},
        rows=[{"instruction": "q", "generations": ["g1", "g2"], "reference": "ref"}],
        answer="Feedback: x [RESULT] A",
        paper=True,
        id="PrometheusEval-relative",
    ),
    StepSpec(
        ArgillaLabeller,
        {
            "question": {
                "name": "sentiment",
                "settings": {
                    "type": "label_selection",
                    "options": [{"value": "positive"}, {"value": "negative"}],
                },
            },
            "fields": [{"name": "text", "settings": {"type": "text"}}],
        },
        rows=[{"record": {"fields": {"text": "I love it"}}}],
        answer='{"label": "positive"}',
    ),
    # -- embeddings
    StepSpec(EmbeddingGeneration, {"embeddings": LengthEmbeddings()}),
    # -- clustering (UMAP and DBSCAN need the clustering extra: tests/test_steps_clustering.py;
    # the export steps need a loopback server: tests/test_steps_hub.py, test_steps_argilla.py)
    StepSpec(
        TextClustering,
        rows=[
            {"text": "apple pie", "projection": [0.0, 0.0], "cluster_label": 0},
            {"text": "a red car", "projection": [5.0, 5.0], "cluster_label": 1},
            {"text": "lorem", "projection": [9.0, 0.0], "cluster_label": -1},
        ],
        answer='{"labels": "Topic"}',
    ),
    *EXTRA_STEPS,
    *EXTRA_TASKS,
    *LOCAL_MODELS,
]


@parametrize_with_checks(CATALOG)
def test_catalog_conforms(spec: StepSpec, check: Callable[[StepSpec], None]) -> None:
    check(spec)


# -- the checks catch what they claim to ------------------------------------------------------


class Undocumented(Step):
    @property
    def inputs(self) -> list[str]:
        return ["text"]

    @property
    def outputs(self) -> list[str]:
        return ["length"]

    def process(self, inputs: StepInput) -> Any:
        for row in inputs:
            row["length"] = len(row["text"])
        yield inputs


class AddsUndeclared(Step):
    """Reads ``text``; writes ``length``."""

    @property
    def inputs(self) -> list[str]:
        return ["text"]

    @property
    def outputs(self) -> list[str]:
        return ["length"]

    def process(self, inputs: StepInput) -> Any:
        for row in inputs:
            row["length"] = len(row["text"])
            row["words"] = len(row["text"].split())
        yield inputs


class HoldsAFunction(Step):
    """Reads ``text``; writes ``length``, measured by ``measure``."""

    measure: Callable[[str], int] = len

    @property
    def inputs(self) -> list[str]:
        return ["text"]

    @property
    def outputs(self) -> list[str]:
        return ["length"]

    def process(self, inputs: StepInput) -> Any:
        for row in inputs:
            row["length"] = self.measure(row["text"])
        yield inputs


class CountsInAField(Step):
    """Reads ``text``; writes ``length``; counts rows in ``seen`` (which it shouldn't)."""

    seen: int = 0

    @property
    def inputs(self) -> list[str]:
        return ["text"]

    @property
    def outputs(self) -> list[str]:
        return ["length"]

    def process(self, inputs: StepInput) -> Any:
        for row in inputs:
            self.seen += 1
            row["length"] = len(row["text"])
        yield inputs


class BrittleTask(Task):
    """Reads ``instruction``; writes ``score`` (an int) and ``model_name``."""

    @property
    def inputs(self) -> list[str]:
        return ["instruction"]

    @property
    def outputs(self) -> list[str]:
        return ["score", "model_name"]

    def format_input(self, row: Row) -> ChatType:
        return [{"role": "user", "content": row["instruction"]}]

    def format_output(self, output: str | None, row: Row) -> dict[str, Any]:
        return {"score": int(output or "")}  # ValueError on anything but digits


class CarefulTask(BrittleTask):
    """Reads ``instruction``; writes ``score`` (an int) and ``model_name``."""

    def format_output(self, output: str | None, row: Row) -> dict[str, Any]:
        digits = "".join(ch for ch in output or "" if ch.isdigit())
        if not digits:
            raise OutputParseError("the answer holds no number; expected a score like '7'")
        return {"score": int(digits)}


class PaperTask(CarefulTask):
    """Reads ``instruction``; writes ``score`` and ``model_name``. (From a paper it never cites.)"""


def test_an_undocumented_step_fails_the_docstring_check() -> None:
    with pytest.raises(CheckFailed, match="has no docstring"):
        check_docstring(StepSpec(Undocumented))


def test_a_step_that_adds_an_undeclared_column_fails() -> None:
    with pytest.raises(CheckFailed, match=r"undeclared columns \['words'\]"):
        check_in_pipeline(StepSpec(AddsUndeclared))


def test_a_step_that_cant_be_saved_fails_the_round_trip() -> None:
    with pytest.raises(CheckFailed, match="yaml round trip failed: SerializationError"):
        check_yaml_round_trip(StepSpec(HoldsAFunction))


def test_a_step_that_changes_its_configuration_while_running_fails() -> None:
    with pytest.raises(CheckFailed, match="changed its configuration"):
        check_standalone(StepSpec(CountsInAField))


def test_a_parser_that_raises_anything_but_output_parse_error_fails() -> None:
    with pytest.raises(CheckFailed, match=r"raised ValueError.*raise OutputParseError"):
        check_malformed_answers(StepSpec(BrittleTask))


class MeasuresWithAModel(Step):
    """Reads ``text``; writes ``length`` and ``model_name``, from ``llm`` without asking it
    anything (as a step that reads a local model's hidden states does): only the offline LLM
    can do it."""

    llm: LLM

    @property
    def inputs(self) -> list[str]:
        return ["text"]

    @property
    def outputs(self) -> list[str]:
        return ["length", "model_name"]

    def process(self, inputs: StepInput) -> Any:
        if not isinstance(self.llm, OfflineLLM):
            raise TypeError(f"{type(self.llm).__name__} can't measure texts")
        for row in inputs:
            row["length"] = len(row["text"])
            row["model_name"] = self.llm.model_name
        yield inputs


def test_a_step_with_an_llm_but_no_answer_to_parse_skips_the_malformed_answer_check() -> None:
    check_step(MeasuresWithAModel)  # a scripted LLM would fail it; no check gives it one


def test_a_paper_task_must_cite_its_paper() -> None:
    with pytest.raises(CheckFailed, match="doesn't cite its paper"):
        check_docstring(StepSpec(PaperTask, paper=True))


def test_check_step_runs_every_check_on_a_user_task() -> None:
    check_step(CarefulTask, answer="Score: 7")
    assert len(CHECKS) == 7


NOT_IN_CATALOG = frozenset(
    {
        # base classes (their subclasses are in the catalog) and helpers that aren't steps
        "ChatItem",
        "ChatType",
        "ERROR_COLUMN",
        "GeneratorStep",
        "GeneratorStepOutput",
        "GeneratorTask",
        "GlobalStep",
        "ImageTask",
        "METADATA_COLUMN",
        "ROW_ID",
        "RuntimeParameter",
        "Step",
        "StepInput",
        "StepOutput",
        "StepResources",
        "Task",
        "make_generator_step",
        "step",
        "task",
    }
)
"""Names exported from synthflow.steps and synthflow.steps.tasks that are not catalog classes."""

CHECKED_ELSEWHERE = {
    # Catalog classes whose checks need an optional extra or a loopback server: their own test
    # modules run check_step on them.
    "DBSCAN": "tests/test_steps_clustering.py",
    "UMAP": "tests/test_steps_clustering.py",
    "PushToHub": "tests/test_steps_hub.py",
    "TextGenerationToArgilla": "tests/test_steps_argilla.py",
    "PreferenceToArgilla": "tests/test_steps_argilla.py",
}


def test_every_exported_step_and_task_has_a_spec() -> None:
    exported = {
        name: getattr(module, name)
        for module in (synthflow.steps, synthflow.steps.tasks)
        for name in module.__all__
    }
    specced = {spec.cls for spec in CATALOG}
    missing = sorted(
        name
        for name, value in exported.items()
        if name not in NOT_IN_CATALOG and name not in CHECKED_ELSEWHERE and value not in specced
    )
    assert not missing, f"add a StepSpec to CATALOG for {missing}"
    for name in NOT_IN_CATALOG:
        assert name in exported, f"{name} is no longer exported: take it out of NOT_IN_CATALOG"
