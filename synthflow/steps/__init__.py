"""Steps: ``from synthflow.steps import Step, GeneratorStep, GlobalStep, StepInput, step``."""

from synthflow.runtime_parameters import RuntimeParameter
from synthflow.steps.base import (
    ROW_ID,
    GeneratorStep,
    GlobalStep,
    Step,
    StepInput,
    StepOutput,
)
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
from synthflow.steps.embeddings import FaissNearestNeighbour
from synthflow.steps.formatting import (
    ConversationTemplate,
    FormatChatGenerationDPO,
    FormatChatGenerationSFT,
    FormatTextGenerationDPO,
    FormatTextGenerationSFT,
    TruncateTextColumn,
)
from synthflow.steps.generators import LoadDataFromDicts, LoadDataFromFileSystem, LoadDataFromHub
from synthflow.steps.globals import DropDuplicates
from synthflow.steps.selection import DeitaFiltering
from synthflow.steps.sources import DataSampler, LoadDataFromDisk

__all__ = [
    "ROW_ID",
    "CombineColumns",
    "CombineOutputs",
    "ConversationTemplate",
    "DataSampler",
    "DeitaFiltering",
    "DropDuplicates",
    "EmbeddingDedup",
    "ExpandColumns",
    "FaissNearestNeighbour",
    "FormatChatGenerationDPO",
    "FormatChatGenerationSFT",
    "FormatTextGenerationDPO",
    "FormatTextGenerationSFT",
    "GeneratorStep",
    "GlobalStep",
    "GroupColumns",
    "KeepColumns",
    "LoadDataFromDicts",
    "LoadDataFromDisk",
    "LoadDataFromFileSystem",
    "LoadDataFromHub",
    "MergeColumns",
    "MinHashDedup",
    "RuntimeParameter",
    "Step",
    "StepInput",
    "StepOutput",
    "TruncateTextColumn",
    "step",
]
