"""Every catalog task and step through synthflow.checks, one pytest case per class and check.

Adding a class to the catalog is one line in CATALOG: the class, the constructor arguments its
example needs, its example rows when its inputs aren't plain text, and a well-formed answer when
the built-in OfflineLLM's answer isn't one for it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pytest

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
from synthflow.models.llms.base import ChatType
from synthflow.steps import (
    CombineColumns,
    DropDuplicates,
    KeepColumns,
    LoadDataFromDicts,
    Step,
    StepInput,
)
from synthflow.steps.base import Row
from synthflow.steps.embeddings import EmbeddingGeneration
from synthflow.steps.tasks import (
    APIGenExecutionChecker,
    APIGenGenerator,
    APIGenSemanticChecker,
    ChatGeneration,
    ComplexityScorer,
    EvolComplexity,
    EvolComplexityGenerator,
    EvolInstruct,
    EvolInstructGenerator,
    EvolQuality,
    GenerateLongTextMatchingData,
    GenerateSentencePair,
    GenerateShortTextMatchingData,
    GenerateTextClassificationData,
    GenerateTextRetrievalData,
    InstructionBacktranslation,
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


def test_a_paper_task_must_cite_its_paper() -> None:
    with pytest.raises(CheckFailed, match="doesn't cite its paper"):
        check_docstring(StepSpec(PaperTask, paper=True))


def test_check_step_runs_every_check_on_a_user_task() -> None:
    check_step(CarefulTask, answer="Score: 7")
    assert len(CHECKS) == 7


def test_every_catalog_name_imports_from_synthflow_steps_tasks() -> None:
    import synthflow.steps.tasks as tasks

    for name in tasks.__all__:
        assert getattr(tasks, name) is not None
    assert {spec.cls.__name__ for spec in CATALOG if spec.takes_llm} <= set(tasks.__all__)
