"""Moved to ``synthflow.models.callpath.retry``; this module is that one under its old name."""

import sys

from synthflow.models.callpath import retry

sys.modules[__name__] = retry
