"""distilabel 1.5.3's own module paths for its steps and models, which scripts import from as
well as from the packages (``from distilabel.steps.formatting.dpo import
FormatTextGenerationDPO``): under synthflow each names the very class the package exports.

Not served yet: the paths under a synthflow module that is not a package
(``models.llms.huggingface.inference_endpoints``, ``steps.tasks.magpie.base``,
``steps.tasks.math_shepherd.*``, ``steps.argilla.*``, ``steps.clustering.*``,
``steps.embeddings.*``, ``steps.globals.huggingface``, ``models.image_generation.huggingface.*``,
``pipeline.templates.instruction``) and those of classes synthflow doesn't have
(``models.base_clients``, ``models.mixins``, ``pipeline.base``)."""

from __future__ import annotations

import importlib

import pytest

from synthflow.pipeline import Pipeline

# distilabel's module -> the public classes it defines there, and the synthflow package that
# exports them (the names users import from it).
MODULE_PATHS: dict[str, tuple[list[str], str]] = {
    "steps.generators.data": (["LoadDataFromDicts"], "steps"),
    "steps.generators.huggingface": (
        ["LoadDataFromHub", "LoadDataFromFileSystem", "LoadDataFromDisk"],
        "steps",
    ),
    "steps.generators.data_sampler": (["DataSampler"], "steps"),
    "steps.generators.utils": (["make_generator_step"], "steps"),
    "steps.formatting.dpo": (["FormatTextGenerationDPO", "FormatChatGenerationDPO"], "steps"),
    "steps.formatting.sft": (["FormatTextGenerationSFT", "FormatChatGenerationSFT"], "steps"),
    "steps.formatting.conversation": (["ConversationTemplate"], "steps"),
    "steps.columns.expand": (["ExpandColumns"], "steps"),
    "steps.columns.keep": (["KeepColumns"], "steps"),
    "steps.columns.group": (["GroupColumns"], "steps"),
    "steps.columns.merge": (["MergeColumns"], "steps"),
    "steps.columns.combine": (["CombineOutputs"], "steps"),
    "steps.deita": (["DeitaFiltering"], "steps"),
    "steps.truncate": (["TruncateTextColumn"], "steps"),
    "steps.filtering.embedding": (["EmbeddingDedup"], "steps"),
    "steps.filtering.minhash": (["MinHashDedup"], "steps"),
    "steps.tasks.apigen.execution_checker": (["APIGenExecutionChecker"], "steps.tasks"),
    "steps.tasks.apigen.generator": (["APIGenGenerator"], "steps.tasks"),
    "steps.tasks.apigen.semantic_checker": (["APIGenSemanticChecker"], "steps.tasks"),
    "steps.tasks.complexity_scorer": (["ComplexityScorer"], "steps.tasks"),
    "steps.tasks.quality_scorer": (["QualityScorer"], "steps.tasks"),
    "steps.tasks.instruction_backtranslation": (["InstructionBacktranslation"], "steps.tasks"),
    "steps.tasks.sentence_transformers": (["GenerateSentencePair"], "steps.tasks"),
    "steps.tasks.improving_text_embeddings": (
        [
            "EmbeddingTaskGenerator",
            "GenerateTextRetrievalData",
            "GenerateShortTextMatchingData",
            "GenerateLongTextMatchingData",
            "GenerateTextClassificationData",
            "MonolingualTripletGenerator",
            "BitextRetrievalGenerator",
        ],
        "steps.tasks",
    ),
    "steps.tasks.evol_instruct.base": (["EvolInstruct"], "steps.tasks"),
    "steps.tasks.evol_instruct.generator": (["EvolInstructGenerator"], "steps.tasks"),
    "steps.tasks.evol_instruct.evol_complexity.base": (["EvolComplexity"], "steps.tasks"),
    "steps.tasks.evol_instruct.evol_complexity.generator": (
        ["EvolComplexityGenerator"],
        "steps.tasks",
    ),
    "steps.tasks.evol_quality.base": (["EvolQuality"], "steps.tasks"),
    "models.embeddings.llamacpp": (["LlamaCppEmbeddings"], "models"),
    "models.llms.anyscale": (["AnyscaleLLM"], "models.llms"),
    "models.llms.azure": (["AzureOpenAILLM"], "models.llms"),
    "models.llms.groq": (["GroqLLM"], "models.llms"),
    "models.llms.litellm": (["LiteLLM"], "models.llms"),
    "models.llms.llamacpp": (["LlamaCppLLM"], "models.llms"),
    "models.llms.mistral": (["MistralLLM"], "models.llms"),
    "models.llms.mlx": (["MlxLLM"], "models.llms"),
    "models.llms.together": (["TogetherLLM"], "models.llms"),
    "models.llms.vertexai": (["VertexAILLM"], "models.llms"),
    "models.llms.vllm": (["vLLM", "ClientvLLM"], "models.llms"),
    "pipeline.local": (["Pipeline"], "pipeline"),
    "pipeline.ray": (["RayPipeline"], "pipeline"),
    "pipeline.routing_batch_function": (
        ["RoutingBatchFunction", "routing_batch_function", "sample_n_steps"],
        "pipeline.routing",
    ),
}


@pytest.mark.parametrize("path", sorted(MODULE_PATHS))
def test_a_distilabel_module_path_names_the_packages_class(path: str) -> None:
    names, package = MODULE_PATHS[path]
    module = importlib.import_module(f"synthflow.{path}")
    exported = importlib.import_module(f"synthflow.{package}")
    for name in names:
        assert getattr(module, name) is getattr(exported, name), f"{path}.{name}"
    assert sorted(module.__all__) == sorted(names)


def test_a_pipeline_imported_from_module_paths_runs() -> None:
    from synthflow.steps.columns.expand import ExpandColumns
    from synthflow.steps.columns.keep import KeepColumns
    from synthflow.steps.formatting.sft import FormatTextGenerationSFT
    from synthflow.steps.generators.data import LoadDataFromDicts

    rows = [{"instruction": "hi", "generations": ["hello", "hey"]}]
    with Pipeline(name="module-paths") as pipeline:
        load = LoadDataFromDicts(name="load", data=rows)
        expand = ExpandColumns(name="expand", columns={"generations": "generation"})
        sft = FormatTextGenerationSFT(name="sft")
        keep = KeepColumns(name="keep", columns=["instruction", "generation", "messages"])
        load >> expand >> sft >> keep
    out = pipeline.run(progress=False)["default"]["train"].to_list()
    assert [r["generation"] for r in out] == ["hello", "hey"]
    assert out[0]["messages"] == [
        {"role": "user", "content": "hi"},
        {"role": "assistant", "content": "hello"},
    ]
    assert LoadDataFromDicts.__module__ == "synthflow.steps.generators"  # what files record


def test_the_routing_module_path_leaves_the_packages_function_in_place() -> None:
    importlib.import_module("synthflow.pipeline.routing_batch_function")
    from synthflow.pipeline import routing_batch_function

    assert callable(routing_batch_function) and routing_batch_function.__name__ == (
        "routing_batch_function"
    )
