"""Moved to ``synthflow.models.callpath._clock``; this module is that one under its old name."""

import sys

from synthflow.models.callpath import _clock

sys.modules[__name__] = _clock
