"""GenerateEmbeddings: embeddings from a local LLM's last hidden layer."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Literal

from pydantic import Field

from synthflow.models.llms.base import LLM, ChatType
from synthflow.steps.base import Row, Step, StepInput


class GenerateEmbeddings(Step):
    """Embeds a text or a conversation with the last hidden layer of a local LLM.

    The method of Liu, Zeng, He, Jiang and He, "What Makes Good Data for Alignment? A
    Comprehensive Study of Automatic Data Selection in Instruction Tuning" (DEITA),
    arXiv:2312.15685: the LLM reads the text (as the prompt it would answer, through its chat
    template) and the states of its last layer are pooled into one vector, the mean over the
    text's tokens by default. DEITA uses these vectors to keep a diverse subset of the data.

    The LLM must expose its hidden states: ``TransformersLLM`` does (API models don't). Run the
    step with ``executor="process"`` so that each worker loads the model once. A null text
    gets a null embedding and is not sent to the model.

    Input columns:
        - text (str | list of {"role", "content"} messages): the text or conversation to embed.

    Output columns:
        - embedding (list[float] | None): its vector (the LLM's hidden size).
        - model_name (str): the LLM's model.
    """

    llm: LLM = Field(description="The local LLM whose hidden states become the embeddings.")
    pooling: Literal["mean", "last"] = Field(
        default="mean",
        description="'mean' averages the last layer's states over the text's tokens; 'last' "
        "takes the final token's state (what distilabel 1.5 returns).",
    )

    @property
    def inputs(self) -> list[str]:
        return ["text"]

    @property
    def outputs(self) -> list[str]:
        return ["embedding", "model_name"]

    def load(self) -> None:
        self.llm.load()

    def unload(self) -> None:
        self.llm.unload()

    def format_input(self, row: Row) -> ChatType:
        """The conversation the LLM reads for a row: a text becomes one user message."""
        text = row["text"]
        if isinstance(text, str):
            return [{"role": "user", "content": text}]
        if (
            isinstance(text, list)
            and text
            and all(isinstance(m, dict) and "role" in m and "content" in m for m in text)
        ):
            return text
        raise TypeError(
            "'text' must be a string or a list of {'role', 'content'} messages, got "
            f"{type(text).__name__}"
        )

    def process(self, inputs: StepInput) -> Iterator[list[Row]]:
        from synthflow.models.embeddings.hidden_states import last_hidden_states

        todo = [
            (i, self.format_input(row)) for i, row in enumerate(inputs) if row["text"] is not None
        ]
        states = last_hidden_states(self.llm, [c for _, c in todo]) if todo else []
        vectors: dict[int, list[float]] = {}
        for (i, _), state in zip(todo, states, strict=True):
            pooled = state.mean(axis=0) if self.pooling == "mean" else state[-1]
            vectors[i] = pooled.tolist()
        model_name = self.llm.model_name
        for i, row in enumerate(inputs):
            row["embedding"] = vectors.get(i)
            row["model_name"] = model_name
        yield inputs
