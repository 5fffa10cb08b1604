"""Moved to ``synthflow.models.callpath.pricing``; this module is that one under its old name."""

import sys

from synthflow.models.callpath import pricing

sys.modules[__name__] = pricing
