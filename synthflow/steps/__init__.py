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
from synthflow.steps.columns import CombineColumns, KeepColumns
from synthflow.steps.decorator import step
from synthflow.steps.embeddings import EmbeddingGeneration
from synthflow.steps.generators import LoadDataFromDicts, LoadDataFromFileSystem, LoadDataFromHub
from synthflow.steps.globals import DropDuplicates
from synthflow.steps.reward_model import RewardModelScore

__all__ = [
    "ROW_ID",
    "CombineColumns",
    "DropDuplicates",
    "EmbeddingGeneration",
    "GeneratorStep",
    "GlobalStep",
    "KeepColumns",
    "LoadDataFromDicts",
    "LoadDataFromFileSystem",
    "LoadDataFromHub",
    "RewardModelScore",
    "RuntimeParameter",
    "Step",
    "StepInput",
    "StepOutput",
    "step",
]
