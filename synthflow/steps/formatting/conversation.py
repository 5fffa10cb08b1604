"""distilabel's module path ``distilabel.steps.formatting.conversation``: the same classes as
``synthflow.steps.formatting``."""

from synthflow.steps.formatting import ConversationTemplate

__all__ = ["ConversationTemplate"]
