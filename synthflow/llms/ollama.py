"""Moved to ``synthflow.models.llms.ollama``; this module is that one under its old name."""

import sys

from synthflow.models.llms import ollama

sys.modules[__name__] = ollama
