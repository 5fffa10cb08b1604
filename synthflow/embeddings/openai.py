"""Moved to ``synthflow.models.embeddings.openai``; this module is that one under its old name."""

import sys

from synthflow.models.embeddings import openai

sys.modules[__name__] = openai
