"""Moved to ``synthflow.models.llms.local.litellm``; this module is that one under its old name."""

import sys

from synthflow.models.llms.local import litellm

sys.modules[__name__] = litellm
