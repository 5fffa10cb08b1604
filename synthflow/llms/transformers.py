"""Moved to ``synthflow.models.llms.local.transformers``:
this is that module, under its old name."""

import sys

from synthflow.models.llms.local import transformers

sys.modules[__name__] = transformers
