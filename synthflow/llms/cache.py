"""Moved to ``synthflow.models.callpath.cache``; this module is that one under its old name."""

import sys

from synthflow.models.callpath import cache

sys.modules[__name__] = cache
