"""Moved to ``synthflow.models.llms.local.llama_cpp``: this is that module, under its old name."""

import sys

from synthflow.models.llms.local import llama_cpp

sys.modules[__name__] = llama_cpp
