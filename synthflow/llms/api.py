"""Moved to ``synthflow.models.llms.api``; this module is that one under its old name."""

import sys

from synthflow.models.llms import api

sys.modules[__name__] = api
