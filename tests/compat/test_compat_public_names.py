"""Every public name distilabel 1.5.3 documents, imported from the same path under synthflow.

The lists below are distilabel's documented public API (its API reference and the ``__all__``
of the modules it documents), written out here by hand. A name synthflow doesn't have yet must
be listed under the open issue that brings it; the test fails on any other missing name and
reports them all. Move a name out of its "belongs to" list when its issue lands.
"""

from __future__ import annotations

import importlib

DISTILABEL_PUBLIC_NAMES: dict[str, list[str]] = {
    "steps": [
        "DBSCAN", "UMAP", "CombineOutputs", "ConversationTemplate", "DataSampler",
        "DeitaFiltering", "EmbeddingDedup", "EmbeddingGeneration", "ExpandColumns",
        "FaissNearestNeighbour", "FormatChatGenerationDPO", "FormatChatGenerationSFT",
        "FormatTextGenerationDPO", "FormatTextGenerationSFT", "GeneratorStep",
        "GeneratorStepOutput", "GlobalStep", "GroupColumns", "KeepColumns", "LoadDataFromDicts",
        "LoadDataFromDisk", "LoadDataFromFileSystem", "LoadDataFromHub", "MergeColumns",
        "MinHashDedup", "PreferenceToArgilla", "PushToHub", "RewardModelScore", "Step",
        "StepInput", "StepOutput", "StepResources", "TextClustering", "TextGenerationToArgilla",
        "TruncateTextColumn", "make_generator_step", "step",
    ],
    "steps.tasks": [
        "APIGenExecutionChecker", "APIGenGenerator", "APIGenSemanticChecker", "ArgillaLabeller",
        "BitextRetrievalGenerator", "CLAIR", "ChatGeneration", "ChatItem", "ChatType",
        "ComplexityScorer", "EmbeddingTaskGenerator", "EvolComplexity",
        "EvolComplexityGenerator", "EvolInstruct", "EvolInstructGenerator", "EvolQuality",
        "FormatPRM", "GenerateEmbeddings", "GenerateLongTextMatchingData",
        "GenerateSentencePair", "GenerateShortTextMatchingData", "GenerateTextClassificationData",
        "GenerateTextRetrievalData", "GeneratorTask", "Genstruct", "ImageGeneration",
        "ImageTask", "InstructionBacktranslation", "Magpie", "MagpieGenerator",
        "MathShepherdCompleter", "MathShepherdGenerator", "MonolingualTripletGenerator",
        "PairRM", "PrometheusEval", "QualityScorer", "SelfInstruct", "StructuredGeneration",
        "Task", "TextClassification", "TextGeneration", "TextGenerationWithImage", "URIAL",
        "UltraFeedback", "task",
    ],
    "llms": [
        "AnthropicLLM", "AnyscaleLLM", "AsyncLLM", "AzureOpenAILLM", "ClientvLLM", "CohereLLM",
        "CudaDevicePlacementMixin", "GenerateOutput", "GroqLLM", "HiddenState",
        "InferenceEndpointsLLM", "LLM", "LiteLLM", "LlamaCppLLM", "MistralLLM",
        "MixtureOfAgentsLLM", "MlxLLM", "OllamaLLM", "OpenAILLM", "TogetherLLM",
        "TransformersLLM", "VertexAILLM", "vLLM",
    ],
    "models": [
        "AnthropicLLM", "AnyscaleLLM", "AsyncImageGenerationModel", "AsyncLLM",
        "AzureOpenAILLM", "ClientvLLM", "CohereLLM", "CudaDevicePlacementMixin", "Embeddings",
        "GenerateOutput", "GroqLLM", "HiddenState", "ImageGenerationModel",
        "InferenceEndpointsImageGeneration", "InferenceEndpointsLLM", "LLM", "LiteLLM",
        "LlamaCppEmbeddings", "LlamaCppLLM", "MistralLLM", "MixtureOfAgentsLLM", "MlxLLM",
        "OllamaLLM", "OpenAIImageGeneration", "OpenAILLM", "SentenceTransformerEmbeddings",
        "TogetherLLM", "TransformersLLM", "VertexAILLM", "vLLM", "vLLMEmbeddings",
    ],
    "models.llms": [
        "AnthropicLLM", "AnyscaleLLM", "AsyncLLM", "AzureOpenAILLM", "ClientvLLM", "CohereLLM",
        "CudaDevicePlacementMixin", "GenerateOutput", "GroqLLM", "HiddenState",
        "InferenceEndpointsLLM", "LLM", "LiteLLM", "LlamaCppLLM", "MistralLLM",
        "MixtureOfAgentsLLM", "MlxLLM", "OllamaLLM", "OpenAILLM", "TogetherLLM",
        "TransformersLLM", "VertexAILLM", "vLLM",
    ],
    "models.embeddings": [
        "Embeddings", "LlamaCppEmbeddings", "SentenceTransformerEmbeddings", "vLLMEmbeddings",
    ],
    "models.image_generation": [
        "AsyncImageGenerationModel", "ImageGenerationModel", "InferenceEndpointsImageGeneration",
        "OpenAIImageGeneration",
    ],
    "pipeline": [
        "InstructionResponsePipeline", "Pipeline", "RayPipeline", "routing_batch_function",
        "sample_n_steps",
    ],
    "distiset": ["Distiset", "create_distiset"],
    "typing": [
        "ChatItem", "ChatType", "DownstreamConnectable", "DownstreamConnectableSteps",
        "FormattedInput", "GenerateOutput", "GeneratorStepOutput", "HiddenState", "ImageContent",
        "ImageUrl", "InputDataset", "InstructorStructuredOutputType", "LLMLogprobs", "LLMOutput",
        "LLMStatistics", "LoadGroups", "Logprob", "OutlinesStructuredOutputType",
        "PipelineRuntimeParametersInfo", "StandardInput", "StepColumns", "StepLoadStatus",
        "StepOutput", "StructuredInput", "StructuredOutputType", "TextContent", "TokenCount",
        "UpstreamConnectableSteps",
    ],
}  # fmt: skip

# -- names that belong to other open issues -------------------------------------------------------

BELONGS_ELSEWHERE: set[str] = set()
"""Every name of distilabel's public surface listed above is importable from synthflow."""


def missing_names() -> dict[str, list[str]]:
    """``{module: [names synthflow doesn't have yet]}`` under ``synthflow.``."""
    missing: dict[str, list[str]] = {}
    for module_name, names in DISTILABEL_PUBLIC_NAMES.items():
        try:
            module = importlib.import_module(f"synthflow.{module_name}")
        except ModuleNotFoundError:
            missing[module_name] = list(names)
            continue
        absent = [name for name in names if not hasattr(module, name)]
        if absent:
            missing[module_name] = absent
    return missing


def test_every_documented_name_is_importable_or_belongs_to_an_open_issue() -> None:
    unaccounted = {
        module: [n for n in names if n not in BELONGS_ELSEWHERE]
        for module, names in missing_names().items()
    }
    unaccounted = {module: names for module, names in unaccounted.items() if names}
    report = "; ".join(f"synthflow.{m}: {', '.join(n)}" for m, n in unaccounted.items())
    assert not unaccounted, f"distilabel names missing from synthflow: {report}"


def test_names_listed_as_missing_are_missing() -> None:
    """A name whose issue landed leaves its list, so the lists say what is still to do."""
    missing = {n for names in missing_names().values() for n in names}
    landed = sorted(BELONGS_ELSEWHERE - missing)
    assert not landed, f"these names exist now: take them out of their lists: {landed}"


def test_the_names_this_surface_provides_are_there() -> None:
    from synthflow.pipeline import InstructionResponsePipeline, Pipeline
    from synthflow.steps import StepResources, make_generator_step, step
    from synthflow.steps.tasks import ChatItem, ChatType, TextGeneration, task

    assert all((InstructionResponsePipeline, Pipeline, StepResources, make_generator_step, step))
    assert all((ChatItem, ChatType, TextGeneration, task))
