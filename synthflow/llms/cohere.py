"""Moved to ``synthflow.models.llms.cohere``; this module is that one under its old name."""

import sys

from synthflow.models.llms import cohere

sys.modules[__name__] = cohere
