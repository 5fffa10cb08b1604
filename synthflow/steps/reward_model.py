"""RewardModelScore: a reward model from Hugging Face transformers scores each row's answer.

The model computes in this process: give the step ``executor="process"`` so that each worker
loads it once and scoring never blocks the pipeline's event loop. ``torch`` and ``transformers``
are imported in ``load()``.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from pydantic import Field, PrivateAttr, SecretStr

from synthflow.models.llms.base import ChatType
from synthflow.models.llms.local.base import missing_extra, release_gpu_memory, text_of
from synthflow.steps.base import Row, Step, StepInput


class _Loaded:
    """The model and tokenizer. They never travel: a pickled copy (sent to a worker process)
    arrives empty and loads its own."""

    def __init__(self) -> None:
        self.model: Any = None
        self.tokenizer: Any = None

    def __reduce__(self) -> tuple[type[_Loaded], tuple[()]]:
        return (_Loaded, ())


class RewardModelScore(Step):
    """Scores an instruction and its response, or a whole conversation, with a reward model.

    The model is a ``transformers`` sequence classifier (``AutoModelForSequenceClassification``)
    trained as a reward model: its output for the conversation is the score. The conversation
    is written with the tokenizer's chat template (a plain ``Role: content`` layout when it has
    none). Needs ``pip install 'synthflow[transformers]'``; run it with ``executor="process"``.

    Each row gives either ``instruction`` and ``response``, or ``conversation``. A row whose
    texts are null (say, its generation failed upstream) gets a null score and is not sent to
    the model. All three columns are optional, so none is required by the pipeline's column
    check; a row with neither form fails with a one-line error.

    Input columns:
        - instruction (str, optional): the instruction the response answers; with ``response``.
        - response (str, optional): the response to score; with ``instruction``.
        - conversation (list of {"role", "content"} messages, optional): a conversation to
          score, used when the row has no ``instruction``/``response``.

    Output columns:
        - score (float | None): the reward model's score (a list of floats for a model with
          several outputs).
    """

    model: str = Field(description="A Hugging Face Hub model id or a local directory.")
    revision: str = Field(default="main", description="A branch, tag or commit on the Hub.")
    torch_dtype: str = Field(
        default="auto",
        description="'auto' (as the checkpoint says), or a torch dtype name: 'bfloat16', "
        "'float16', 'float32'.",
    )
    trust_remote_code: bool = Field(
        default=False, description="Run the model repository's own code (only if you trust it)."
    )
    device_map: str | dict[str, Any] | None = Field(
        default=None,
        description="Where the model's layers go: 'auto', 'cuda', 'cpu', or a layer->device "
        "dict; None keeps it on the CPU.",
    )
    token: SecretStr | None = Field(
        default=None,
        exclude=True,
        description="Hugging Face token for a private model; HF_TOKEN or the saved login when "
        "unset. Never written to the pipeline's YAML.",
    )
    truncation: bool = Field(
        default=False, description="Cut conversations longer than max_length tokens."
    )
    max_length: int | None = Field(
        default=None, ge=1, description="Tokens kept per conversation when truncation is on."
    )

    _loaded: _Loaded = PrivateAttr(default_factory=_Loaded)

    @property
    def inputs(self) -> list[str]:
        # instruction + response, or conversation: both forms are optional (see the docstring).
        return []

    @property
    def optional_inputs(self) -> list[str]:
        return ["response", "instruction", "conversation"]

    @property
    def outputs(self) -> list[str]:
        return ["score"]

    def load(self) -> None:
        if self._loaded.model is not None:
            return
        from synthflow.models.llms.local.transformers import _dtype, _dtype_keyword

        try:
            import torch
            import transformers
        except ImportError as exc:
            raise missing_extra("RewardModelScore", "transformers", "transformers torch") from exc
        common: dict[str, Any] = {
            "revision": self.revision,
            "trust_remote_code": self.trust_remote_code,
            "token": self.token.get_secret_value() if self.token is not None else None,
        }
        tokenizer = transformers.AutoTokenizer.from_pretrained(self.model, **common)
        model = transformers.AutoModelForSequenceClassification.from_pretrained(
            self.model,
            device_map=self.device_map,
            **{_dtype_keyword(transformers): _dtype(torch, self.torch_dtype)},
            **common,
        )
        if tokenizer.pad_token_id is None and tokenizer.eos_token is not None:
            tokenizer.pad_token = tokenizer.eos_token  # batches need padding
        if getattr(model.config, "pad_token_id", None) is None:
            # A classifier over a decoder reads the last token that is not padding.
            model.config.pad_token_id = tokenizer.pad_token_id
        model.eval()
        self._loaded.model, self._loaded.tokenizer = model, tokenizer

    def unload(self) -> None:
        self._loaded.model = self._loaded.tokenizer = None
        release_gpu_memory()

    def process(self, inputs: StepInput) -> Iterator[list[Row]]:
        conversations = [_conversation(row) for row in inputs]
        todo = [(i, c) for i, c in enumerate(conversations) if c is not None]
        scores = self.score([c for _, c in todo]) if todo else []
        by_position = {i: score for (i, _), score in zip(todo, scores, strict=True)}
        for i, row in enumerate(inputs):
            row["score"] = by_position.get(i)
        yield inputs

    def score(self, conversations: list[ChatType]) -> list[Any]:
        """The reward model's score for each conversation, in one forward pass."""
        import torch

        model, tokenizer = self._loaded.model, self._loaded.tokenizer
        if model is None:
            raise RuntimeError("RewardModelScore is not loaded: call load() first")
        if getattr(tokenizer, "chat_template", None):
            texts = [
                tokenizer.apply_chat_template(c, tokenize=False, add_generation_prompt=False)
                for c in conversations
            ]
            special = False  # the template writes them
        else:
            texts = [_plain_conversation(c) for c in conversations]
            special = True
        encoded = tokenizer(
            texts,
            return_tensors="pt",
            padding=True,
            truncation=self.truncation,
            max_length=self.max_length,
            add_special_tokens=special,
            return_token_type_ids=False,
        ).to(model.device)
        with torch.inference_mode():
            output = model(**encoded)
        values = getattr(output, "score", None)  # models with their own head (ArmoRM) say so
        if values is None:
            values = output.logits
        values = values.float().cpu()
        if values.dim() == 2 and values.shape[-1] == 1:
            values = values.squeeze(-1)
        scores: list[Any] = values.tolist()
        return scores


def _conversation(row: Row) -> ChatType | None:
    """The conversation to score for a row; None when its texts are null."""
    if "instruction" in row and "response" in row:
        instruction, response = row["instruction"], row["response"]
        if instruction is None or response is None:
            return None
        for name, value in (("instruction", instruction), ("response", response)):
            if not isinstance(value, str):
                raise TypeError(f"'{name}' must be a string, got {type(value).__name__}")
        return [
            {"role": "user", "content": instruction},
            {"role": "assistant", "content": response},
        ]
    if "conversation" not in row:
        raise ValueError(
            "RewardModelScore needs 'instruction' and 'response', or 'conversation', in each "
            "row; name your columns so with input_mappings"
        )
    conversation = row["conversation"]
    if conversation is None:
        return None
    if not (
        isinstance(conversation, list)
        and conversation
        and all(isinstance(m, dict) and "role" in m and "content" in m for m in conversation)
    ):
        raise TypeError("'conversation' must be a non-empty list of {'role', 'content'} messages")
    return conversation


def _plain_conversation(conversation: ChatType) -> str:
    """A conversation as ``Role: content`` turns, for tokenizers without a chat template."""
    return "\n\n".join(f"{str(m['role']).capitalize()}: {text_of(m)}" for m in conversation)
