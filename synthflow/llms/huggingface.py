"""Moved to ``synthflow.models.llms.huggingface``; this module is that one under its old name."""

import sys

from synthflow.models.llms import huggingface

sys.modules[__name__] = huggingface
