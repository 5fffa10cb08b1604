"""Moved to ``synthflow.models.llms.local.base``; this module is that one under its old name."""

import sys

from synthflow.models.llms.local import base

sys.modules[__name__] = base
