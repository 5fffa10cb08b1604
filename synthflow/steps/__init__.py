"""Steps: ``from synthflow.steps import Step, GeneratorStep, GlobalStep, StepInput, step``."""

from synthflow.runtime_parameters import RuntimeParameter
from synthflow.steps.argilla import PreferenceToArgilla, TextGenerationToArgilla
from synthflow.steps.base import (
    ROW_ID,
    GeneratorStep,
    GeneratorStepOutput,
    GlobalStep,
    Step,
    StepInput,
    StepOutput,
)
from synthflow.steps.clustering import DBSCAN, UMAP
from synthflow.steps.columns import (
    CombineColumns,
    CombineOutputs,
    ExpandColumns,
    GroupColumns,
    KeepColumns,
    MergeColumns,
)
from synthflow.steps.decorator import step
from synthflow.steps.deduplication import EmbeddingDedup, MinHashDedup
from synthflow.steps.embeddings import EmbeddingGeneration, FaissNearestNeighbour
from synthflow.steps.formatting import (
    ConversationTemplate,
    FormatChatGenerationDPO,
    FormatChatGenerationSFT,
    FormatTextGenerationDPO,
    FormatTextGenerationSFT,
    TruncateTextColumn,
)
from synthflow.steps.generators import (
    LoadDataFromDicts,
    LoadDataFromFileSystem,
    LoadDataFromHub,
    make_generator_step,
)
from synthflow.steps.globals import DropDuplicates
from synthflow.steps.hub import PushToHub
from synthflow.steps.resources import StepResources
from synthflow.steps.reward_model import RewardModelScore
from synthflow.steps.selection import DeitaFiltering
from synthflow.steps.sources import DataSampler, LoadDataFromDisk


def __getattr__(name: str) -> object:
    # distilabel exports TextClustering (a task) from its steps package: load it on first use,
    # so importing the steps doesn't import the task modules.
    if name == "TextClustering":
        from synthflow.steps.tasks.text_clustering import TextClustering

        return TextClustering
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "DBSCAN",
    "ROW_ID",
    "UMAP",
    "CombineColumns",
    "CombineOutputs",
    "ConversationTemplate",
    "DataSampler",
    "DeitaFiltering",
    "DropDuplicates",
    "EmbeddingDedup",
    "EmbeddingGeneration",
    "ExpandColumns",
    "FaissNearestNeighbour",
    "FormatChatGenerationDPO",
    "FormatChatGenerationSFT",
    "FormatTextGenerationDPO",
    "FormatTextGenerationSFT",
    "GeneratorStep",
    "GeneratorStepOutput",
    "GlobalStep",
    "GroupColumns",
    "KeepColumns",
    "LoadDataFromDicts",
    "LoadDataFromDisk",
    "LoadDataFromFileSystem",
    "LoadDataFromHub",
    "MergeColumns",
    "MinHashDedup",
    "PreferenceToArgilla",
    "PushToHub",
    "RewardModelScore",
    "RuntimeParameter",
    "Step",
    "StepInput",
    "StepOutput",
    "StepResources",
    "TextClustering",
    "TextGenerationToArgilla",
    "TruncateTextColumn",
    "make_generator_step",
    "step",
]
