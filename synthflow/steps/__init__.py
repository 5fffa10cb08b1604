"""Steps: ``from synthflow.steps import Step, GeneratorStep, GlobalStep, StepInput, step``.

Each name is imported on first use (``synthflow._lazy``): importing a step module, as loading
a saved pipeline does, doesn't import the whole catalog and the model clients it uses.
"""

from typing import TYPE_CHECKING

from synthflow._lazy import lazy_exports

if TYPE_CHECKING:
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
    from synthflow.steps.tasks.text_clustering import TextClustering

_HOMES = {
    "CombineColumns": "synthflow.steps.columns",
    "CombineOutputs": "synthflow.steps.columns",
    "ConversationTemplate": "synthflow.steps.formatting",
    "DataSampler": "synthflow.steps.sources",
    "DBSCAN": "synthflow.steps.clustering",
    "DeitaFiltering": "synthflow.steps.selection",
    "DropDuplicates": "synthflow.steps.globals",
    "EmbeddingDedup": "synthflow.steps.deduplication",
    "EmbeddingGeneration": "synthflow.steps.embeddings",
    "ExpandColumns": "synthflow.steps.columns",
    "FaissNearestNeighbour": "synthflow.steps.embeddings",
    "FormatChatGenerationDPO": "synthflow.steps.formatting",
    "FormatChatGenerationSFT": "synthflow.steps.formatting",
    "FormatTextGenerationDPO": "synthflow.steps.formatting",
    "FormatTextGenerationSFT": "synthflow.steps.formatting",
    "GeneratorStep": "synthflow.steps.base",
    "GeneratorStepOutput": "synthflow.steps.base",
    "GlobalStep": "synthflow.steps.base",
    "GroupColumns": "synthflow.steps.columns",
    "KeepColumns": "synthflow.steps.columns",
    "LoadDataFromDicts": "synthflow.steps.generators",
    "LoadDataFromDisk": "synthflow.steps.sources",
    "LoadDataFromFileSystem": "synthflow.steps.generators",
    "LoadDataFromHub": "synthflow.steps.generators",
    "make_generator_step": "synthflow.steps.generators",
    "MergeColumns": "synthflow.steps.columns",
    "MinHashDedup": "synthflow.steps.deduplication",
    "PreferenceToArgilla": "synthflow.steps.argilla",
    "PushToHub": "synthflow.steps.hub",
    "RewardModelScore": "synthflow.steps.reward_model",
    "ROW_ID": "synthflow.steps.base",
    "RuntimeParameter": "synthflow.runtime_parameters",
    "Step": "synthflow.steps.base",
    "step": "synthflow.steps.decorator",
    "StepInput": "synthflow.steps.base",
    "StepOutput": "synthflow.steps.base",
    "StepResources": "synthflow.steps.resources",
    "TextClustering": "synthflow.steps.tasks.text_clustering",
    "TextGenerationToArgilla": "synthflow.steps.argilla",
    "TruncateTextColumn": "synthflow.steps.formatting",
    "UMAP": "synthflow.steps.clustering",
}

__getattr__, __dir__ = lazy_exports(__name__, _HOMES)

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
