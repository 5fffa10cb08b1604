"""Moved to ``synthflow.models.embeddings.hidden_states``:
this is that module, under its old name."""

import sys

from synthflow.models.embeddings import hidden_states

sys.modules[__name__] = hidden_states
