"""Embeddings: the interface of every embedding model, local or over HTTP.

A subclass implements ``model_name`` and one of ``encode`` (a local model: blocking) or
``aencode`` (an HTTP client: async); the other comes for free. ``encode`` from async code would
block the event loop, so there the async form is the one to call.

A run's calls go through ``aencode_counted``, which also says what they cost (``EncodeOutput``):
the ``EmbeddingGeneration`` step hands them to the run's call path (response cache, budget,
accounting), as tasks do with their LLM calls. Models over HTTP say what they cost and are
``cacheable``; a local model's calls count as one free request each.
"""

from __future__ import annotations

import asyncio
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, NamedTuple

import anyio
import anyio.to_thread
from pydantic import BaseModel, ConfigDict

Vector = list[float]


@dataclass(slots=True)
class EncodeOutput:
    """Vectors, in input order, and what computing them took."""

    vectors: list[Vector]
    input_tokens: int = 0
    requests: int = 1
    retries: int = 0
    rate_limited: int = 0


class EmbeddingsIdentity(NamedTuple):
    """What, besides the text, decides a vector; the response cache keys on it."""

    provider: str
    model: str
    settings: dict[str, Any]
    endpoint: str | None = None


class Embeddings(BaseModel, ABC):
    """Base class of embedding models: ``load()``, then ``encode(texts)`` or
    ``await aencode(texts)``, each giving one vector per text, in order."""

    model_config = ConfigDict(
        arbitrary_types_allowed=True, validate_assignment=True, extra="forbid"
    )

    cacheable: ClassVar[bool] = False
    """The run's response cache keeps this model's vectors (models over HTTP)."""
    billed: ClassVar[bool] = False
    """Calls cost money: a cost budget needs the model's price."""

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

    async def aencode_counted(self, inputs: Sequence[str]) -> EncodeOutput:
        """``aencode``, with the usage, requests and retries it took (one free request for a
        model that doesn't say)."""
        return EncodeOutput(await self.aencode(inputs))

    def cache_identity(self) -> EmbeddingsIdentity:
        """The response cache's key for this model's vectors (``cacheable`` models)."""
        return EmbeddingsIdentity(type(self).__name__, self.model_name, {})
