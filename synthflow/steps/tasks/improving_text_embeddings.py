"""distilabel's module path ``distilabel.steps.tasks.improving_text_embeddings``: the classes of
``synthflow.steps.tasks.text_embeddings`` and ``synthflow.steps.tasks.text_embeddings_sources``
(the paper's generators and the tasks they feed)."""

from synthflow.steps.tasks import (
    BitextRetrievalGenerator,
    EmbeddingTaskGenerator,
    GenerateLongTextMatchingData,
    GenerateShortTextMatchingData,
    GenerateTextClassificationData,
    GenerateTextRetrievalData,
    MonolingualTripletGenerator,
)

__all__ = [
    "BitextRetrievalGenerator",
    "EmbeddingTaskGenerator",
    "GenerateLongTextMatchingData",
    "GenerateShortTextMatchingData",
    "GenerateTextClassificationData",
    "GenerateTextRetrievalData",
    "MonolingualTripletGenerator",
]
