"""Moved to ``synthflow.models.callpath.limiter``; this module is that one under its old name."""

import sys

from synthflow.models.callpath import limiter

sys.modules[__name__] = limiter
