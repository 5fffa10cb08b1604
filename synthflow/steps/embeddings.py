"""Steps that embed text."""

from __future__ import annotations

from collections.abc import AsyncIterator

from pydantic import Field

from synthflow.embeddings.base import Embeddings
from synthflow.steps.base import Row, Step, StepInput


class EmbeddingGeneration(Step):
    """Embeds the ``text`` column with an ``Embeddings`` model, a batch per call.

    A null text gets a null embedding (it is not sent to the model).

    Input columns:
        - text (str | None): the text to embed.

    Output columns:
        - embedding (list[float] | None): its vector.
        - model_name (str): the embedding model.

    Runtime parameters: ``input_batch_size`` (texts per call) and the embedding model's.
    """

    embeddings: Embeddings = Field(description="The embedding model.")

    @property
    def inputs(self) -> list[str]:
        return ["text"]

    @property
    def outputs(self) -> list[str]:
        return ["embedding", "model_name"]

    def load(self) -> None:
        self.embeddings.load()

    def unload(self) -> None:
        self.embeddings.unload()

    async def process(self, inputs: StepInput) -> AsyncIterator[list[Row]]:
        texts = [row["text"] for row in inputs]
        for text in texts:
            if text is not None and not isinstance(text, str):
                raise TypeError(f"'text' must be a string, got {type(text).__name__}")
        positions = [i for i, text in enumerate(texts) if text is not None]
        vectors = await self.embeddings.aencode([texts[i] for i in positions]) if positions else []
        if len(vectors) != len(positions):
            raise ValueError(
                f"{type(self.embeddings).__name__} returned {len(vectors)} embeddings for "
                f"{len(positions)} texts"
            )
        by_position = dict(zip(positions, vectors, strict=True))
        model_name = self.embeddings.model_name
        for i, row in enumerate(inputs):
            row["embedding"] = by_position.get(i)
            row["model_name"] = model_name
        yield list(inputs)
