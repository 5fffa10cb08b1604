"""The type names distilabel 1.5 gathers in ``distilabel.typing``, for annotations in custom
steps, tasks and LLMs: ``from synthflow.typing import StepOutput, ChatType, FormattedInput``.

Where synthflow has the thing itself (a step's output, a chat, an LLM's answer), the name is that
type; the rest describe the same values as distilabel's do. Only types live here: importing this
module imports no step, model or HTTP client.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal, TypedDict, TypeVar

from synthflow.models.llms.base import GenerateOutput
from synthflow.steps.base import GeneratorStepOutput, StepInput, StepOutput
from synthflow.steps.tasks.typing import ChatItem, ChatType

if TYPE_CHECKING:
    from synthflow.steps.base import Step


class TextContent(TypedDict, total=False):
    type: Literal["text"]
    text: str


class ImageUrl(TypedDict):
    url: str
    """An http(s) URL or a ``data:image/...;base64,`` URL."""


class ImageContent(TypedDict, total=False):
    type: Literal["image_url"]
    image_url: ImageUrl


StepColumns = list[str] | dict[str, bool]
"""A step's inputs or outputs: names, or names mapped to whether each is required."""

LLMOutput = list[str | None]
"""The texts of one input's generations (None where the model gave none)."""


class Logprob(TypedDict):
    token: str
    logprob: float


LLMLogprobs = list[list[list[Logprob]]]
"""Per generation, per token, the top candidates with their log probabilities."""


class TokenCount(TypedDict):
    input_tokens: list[int]
    output_tokens: list[int]


LLMStatistics = TokenCount | dict[str, Any]


class OutlinesStructuredOutputType(TypedDict, total=False):
    format: Literal["json", "regex"]
    schema: Any
    """A pydantic model class, a JSON schema (dict or string), or a regex."""
    whitespace_pattern: str | None


class InstructorStructuredOutputType(TypedDict, total=False):
    format: Literal["json"] | None
    schema: Any
    """A pydantic model class or a JSON schema."""
    mode: str
    max_retries: int


StructuredOutputType = OutlinesStructuredOutputType | InstructorStructuredOutputType
StandardInput = ChatType
StructuredInput = tuple[StandardInput, StructuredOutputType | None]
"""A chat with the schema its answer must follow (what structured tasks format)."""
FormattedInput = StandardInput | StructuredInput | str
"""What a task's ``format_input`` returns for the LLM."""
HiddenState = Any
"""A model's last hidden state for one input (a numpy array)."""

DownstreamConnectable = Any
"""A step that can receive batches (anything but a generator)."""
UpstreamConnectableSteps = TypeVar("UpstreamConnectableSteps", bound="Step")
DownstreamConnectableSteps = TypeVar("DownstreamConnectableSteps", bound="Step", covariant=True)


class StepLoadStatus(TypedDict):
    name: str
    status: Literal["loaded", "unloaded", "load_failed"]


PipelineRuntimeParametersInfo = dict[str, list[dict[str, Any]] | dict[str, Any]]
"""Each step's run-time parameters, as ``pipeline.get_runtime_parameters_info()`` lists them."""
InputDataset = Any
"""A ``datasets.Dataset``, a ``pandas.DataFrame`` or a list of dicts, given to ``run``."""
LoadGroups = list[list[Any]] | Literal["sequential_step_execution"]
"""Groups of steps (or their names) loaded together, or one step at a time."""

__all__ = [
    "ChatItem",
    "ChatType",
    "DownstreamConnectable",
    "DownstreamConnectableSteps",
    "FormattedInput",
    "GenerateOutput",
    "GeneratorStepOutput",
    "HiddenState",
    "ImageContent",
    "ImageUrl",
    "InputDataset",
    "InstructorStructuredOutputType",
    "LLMLogprobs",
    "LLMOutput",
    "LLMStatistics",
    "LoadGroups",
    "Logprob",
    "OutlinesStructuredOutputType",
    "PipelineRuntimeParametersInfo",
    "StandardInput",
    "StepColumns",
    "StepInput",
    "StepLoadStatus",
    "StepOutput",
    "StructuredInput",
    "StructuredOutputType",
    "TextContent",
    "TokenCount",
    "UpstreamConnectableSteps",
]
