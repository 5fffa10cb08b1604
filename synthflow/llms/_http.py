"""Moved to ``synthflow.models.callpath._http``; this module is that one under its old name."""

import sys

from synthflow.models.callpath import _http

sys.modules[__name__] = _http
