"""Moved to ``synthflow.models.callpath.answers``; this module is that one under its old name."""

import sys

from synthflow.models.callpath import answers

sys.modules[__name__] = answers
