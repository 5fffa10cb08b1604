"""distilabel's module path ``distilabel.steps.tasks.sentence_transformers``: the classes of
``synthflow.steps.tasks.text_embeddings``."""

from synthflow.steps.tasks.text_embeddings import GenerateSentencePair

__all__ = ["GenerateSentencePair"]
