"""distilabel's module path ``distilabel.steps.formatting.sft``: the same classes as
``synthflow.steps.formatting``."""

from synthflow.steps.formatting import FormatChatGenerationSFT, FormatTextGenerationSFT

__all__ = ["FormatChatGenerationSFT", "FormatTextGenerationSFT"]
