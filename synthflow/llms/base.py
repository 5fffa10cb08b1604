"""Moved to ``synthflow.models.llms.base``; this module is that one under its old name."""

import sys

from synthflow.models.llms import base

sys.modules[__name__] = base
