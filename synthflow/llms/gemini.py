"""Moved to ``synthflow.models.llms.gemini``; this module is that one under its old name."""

import sys

from synthflow.models.llms import gemini

sys.modules[__name__] = gemini
