"""distilabel's module path ``distilabel.steps.formatting.dpo``: the same classes as
``synthflow.steps.formatting``."""

from synthflow.steps.formatting import FormatChatGenerationDPO, FormatTextGenerationDPO

__all__ = ["FormatChatGenerationDPO", "FormatTextGenerationDPO"]
