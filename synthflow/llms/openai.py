"""Moved to ``synthflow.models.llms.openai``; this module is that one under its old name."""

import sys

from synthflow.models.llms import openai

sys.modules[__name__] = openai
