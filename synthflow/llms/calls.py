"""Moved to ``synthflow.models.callpath.calls``; this module is that one under its old name."""

import sys

from synthflow.models.callpath import calls

sys.modules[__name__] = calls
