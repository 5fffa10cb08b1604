"""Moved to ``synthflow.models.llms.anthropic``; this module is that one under its old name."""

import sys

from synthflow.models.llms import anthropic

sys.modules[__name__] = anthropic
