"""Moved to ``synthflow.models.callpath.structured``; this module is that one under its old name."""

import sys

from synthflow.models.callpath import structured

sys.modules[__name__] = structured
