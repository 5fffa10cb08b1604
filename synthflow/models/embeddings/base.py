"""Embeddings: the interface of every embedding model, local or over HTTP.

A subclass implements ``model_name`` and one of ``encode`` (a local model: blocking) or
``aencode`` (an HTTP client: async); the other comes for free. ``encode`` from async code would
block the event loop, so there the async form is the one to call.
"""

from __future__ import annotations

import asyncio
from abc import ABC, abstractmethod
from collections.abc import Sequence

import anyio
import anyio.to_thread
from pydantic import BaseModel, ConfigDict

Vector = list[float]


class Embeddings(BaseModel, ABC):
    """Base class of embedding models: ``load()``, then ``encode(texts)`` or
    ``await aencode(texts)``, each giving one vector per text, in order."""

    model_config = ConfigDict(
        arbitrary_types_allowed=True, validate_assignment=True, extra="forbid"
    )

    def load(self) -> None:
        """Acquire what encoding needs (a local model's weights). Runs once before use."""

    def unload(self) -> None:
        """Release what ``load`` acquired."""

    @property
    @abstractmethod
    def model_name(self) -> str:
        """The name of the model, as written in the ``model_name`` column."""

    def encode(self, inputs: Sequence[str]) -> list[Vector]:
        """One vector per text in ``inputs``, in order (blocking)."""
        if type(self).aencode is Embeddings.aencode:
            raise TypeError(f"{type(self).__name__} must implement encode() or aencode()")
        try:
            asyncio.get_running_loop()
        except RuntimeError:  # no event loop in this thread: run one for the call
            return anyio.run(self.aencode, list(inputs))
        raise RuntimeError(
            f"{type(self).__name__}.encode() was called inside async code, where it would "
            "block the event loop: use 'await aencode(...)' there"
        )

    async def aencode(self, inputs: Sequence[str]) -> list[Vector]:
        """One vector per text in ``inputs``, in order (async; a blocking ``encode`` runs in a
        worker thread)."""
        if type(self).encode is Embeddings.encode:
            raise TypeError(f"{type(self).__name__} must implement encode() or aencode()")
        return await anyio.to_thread.run_sync(self.encode, list(inputs))
