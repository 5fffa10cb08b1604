"""Moved to ``synthflow.models.llms.offline``; this module is that one under its old name."""

import sys

from synthflow.models.llms import offline

sys.modules[__name__] = offline
