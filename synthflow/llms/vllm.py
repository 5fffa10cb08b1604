"""Moved to ``synthflow.models.llms.local.vllm``; this module is that one under its old name."""

import sys

from synthflow.models.llms.local import vllm

sys.modules[__name__] = vllm
