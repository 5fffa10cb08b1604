"""distilabel's LLM base names that synthflow needs no separate class for.

- ``AsyncLLM``: distilabel's base of async clients. Every synthflow LLM is async (one abstract
  ``agenerate``), so it is ``LLM``.
- ``CudaDevicePlacementMixin``: distilabel assigns GPUs to local models with it. synthflow runs
  local models in worker processes that place themselves (``TransformersLLM(device=...)``,
  ``CUDA_VISIBLE_DEVICES``), so the mixin adds nothing: a class that lists it still works, and
  its ``cuda_devices`` setting is refused with what to do instead.
"""

from __future__ import annotations

from pydantic import BaseModel

from synthflow.models.llms.base import LLM

AsyncLLM = LLM


class CudaDevicePlacementMixin(BaseModel):
    """Kept for distilabel's import path; places nothing (see the module docstring)."""


__all__ = ["AsyncLLM", "CudaDevicePlacementMixin"]
