"""MlxLLM: a model run with Apple's MLX (``mlx-lm``) in this process (see ``LocalLLM``).

Nothing is imported here: ``mlx_lm`` loads in ``load()``, which says what to install when it is
missing. MLX runs on Apple silicon only.
"""

from __future__ import annotations

from typing import Any, ClassVar, TypedDict

from pydantic import Field

from synthflow.models.llms.base import ChatType, GenerateOutput, Usage
from synthflow.models.llms.local.base import (
    DEFAULT_MAX_NEW_TOKENS,
    LocalLLM,
    missing_extra,
    plain_prompt,
    raw_prompt,
)
from synthflow.models.llms.magpie import MagpieSettings, UserTurnWriter


class MlxGenerationKwargs(TypedDict, total=False):
    """What ``MlxLLM`` reads: mlx-lm's sampler settings and the answer's length."""

    max_new_tokens: int
    max_tokens: int
    temperature: float
    top_p: float
    min_p: float
    top_k: int


class MlxLLM(LocalLLM, MagpieSettings, UserTurnWriter):
    """A model run with MLX on Apple silicon (``pip install 'synthflow[mlx]'``).

    ``path_or_hf_repo`` is a local directory or a Hub repo of MLX weights
    (``mlx-community/...``). ``generation_kwargs``: ``max_new_tokens`` (or ``max_tokens``;
    default 512), ``temperature`` (0, the default, is greedy), ``top_p``, ``min_p``, ``top_k``.
    Generations run one after another (MLX has no batched sampling here). Magpie works as with
    ``TransformersLLM`` (``magpie_pre_query_template``, the tokenizer's chat template).
    """

    generation_kwargs_spec: ClassVar[type | None] = MlxGenerationKwargs

    path_or_hf_repo: str = Field(description="A local directory or Hub repo of MLX weights.")
    tokenizer_config: dict[str, Any] = Field(
        default_factory=dict, description="Keyword arguments for the tokenizer."
    )
    mlx_model_config: dict[str, Any] = Field(
        default_factory=dict, description="Keyword arguments for the model's configuration."
    )
    adapter_path: str | None = Field(default=None, description="A LoRA adapter to apply.")

    @property
    def model_name(self) -> str:
        return self.path_or_hf_repo

    def load(self) -> None:
        if self.loaded:
            return
        mlx_lm = _import_mlx_lm()
        model, tokenizer = mlx_lm.load(
            self.path_or_hf_repo,
            tokenizer_config=self.tokenizer_config,
            model_config=self.mlx_model_config,
            adapter_path=self.adapter_path,
        )
        self._runtime.tokenizer, self._runtime.model = tokenizer, model

    def prompt(self, messages: ChatType) -> str:
        raw = raw_prompt(messages)
        if raw is not None:
            return raw
        tokenizer = self._runtime.tokenizer
        if getattr(tokenizer, "chat_template", None):
            return str(
                tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
            )
        return plain_prompt(messages)

    async def agenerate_user_turn(
        self, messages: ChatType, *, num_generations: int = 1
    ) -> GenerateOutput:
        return await self._user_turn(messages, num_generations, self.pre_query_template())

    def generate_batch(
        self, conversations: list[ChatType], num_generations: int
    ) -> list[GenerateOutput]:
        mlx_lm = _import_mlx_lm()
        from mlx_lm.sample_utils import make_sampler

        kwargs = dict(self.generation_kwargs)
        max_tokens = kwargs.get("max_new_tokens") or kwargs.get("max_tokens")
        sampler = make_sampler(
            temp=float(kwargs.get("temperature") or 0.0),
            top_p=float(kwargs.get("top_p") or 0.0),
            min_p=float(kwargs.get("min_p") or 0.0),
            top_k=int(kwargs.get("top_k") or -1),
        )
        tokenizer, model = self._runtime.tokenizer, self._runtime.model
        outputs = []
        for messages in conversations:
            prompt = self.prompt(messages)
            texts: list[str | None] = [
                mlx_lm.generate(
                    model,
                    tokenizer,
                    prompt=prompt,
                    max_tokens=int(max_tokens or DEFAULT_MAX_NEW_TOKENS),
                    sampler=sampler,
                )
                for _ in range(num_generations)
            ]
            produced = sum(len(tokenizer.encode(t)) for t in texts if t)
            outputs.append(GenerateOutput(texts, Usage(len(tokenizer.encode(prompt)), produced)))
        return outputs


def _import_mlx_lm() -> Any:
    try:
        import mlx_lm
    except ImportError as exc:
        raise missing_extra("MlxLLM", "mlx", "mlx-lm") from exc
    return mlx_lm
