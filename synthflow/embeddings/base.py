"""Moved to ``synthflow.models.embeddings.base``; this module is that one under its old name."""

import sys

from synthflow.models.embeddings import base

sys.modules[__name__] = base
