"""Moved to ``synthflow.models.embeddings.sentence_transformers``:
this is that module, under its old name."""

import sys

from synthflow.models.embeddings import sentence_transformers

sys.modules[__name__] = sentence_transformers
