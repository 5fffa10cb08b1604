"""Steps: ``from synthflow.steps import Step, GeneratorStep, GlobalStep, StepInput, step``."""

from synthflow.runtime_parameters import RuntimeParameter
from synthflow.steps.base import (
    ROW_ID,
    GeneratorStep,
    GeneratorStepOutput,
    GlobalStep,
    Step,
    StepInput,
    StepOutput,
)
from synthflow.steps.columns import CombineColumns, KeepColumns
from synthflow.steps.decorator import step
from synthflow.steps.embeddings import EmbeddingGeneration
from synthflow.steps.generators import (
    LoadDataFromDicts,
    LoadDataFromFileSystem,
    LoadDataFromHub,
    make_generator_step,
)
from synthflow.steps.globals import DropDuplicates
from synthflow.steps.resources import StepResources

__all__ = [
    "ROW_ID",
    "CombineColumns",
    "DropDuplicates",
    "EmbeddingGeneration",
    "GeneratorStep",
    "GeneratorStepOutput",
    "GlobalStep",
    "KeepColumns",
    "LoadDataFromDicts",
    "LoadDataFromFileSystem",
    "LoadDataFromHub",
    "RuntimeParameter",
    "Step",
    "StepInput",
    "StepOutput",
    "StepResources",
    "make_generator_step",
    "step",
]
