"""Tiny, randomly initialised transformers models built and saved in a test: no download.

Callers skip first when torch or transformers is missing (``pytest.importorskip``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

WORDS = ["hello", "world", "the", "a", "cat", "dog", "say", "hi", "yes", "no", "ok", "red"]
SPECIAL = ["<pad>", "<unk>", "<s>", "</s>"]
ROLES = ["System:", "User:", "Assistant:"]


def save_word_tokenizer(path: Path) -> int:
    """A word-level tokenizer over ``SPECIAL + ROLES + WORDS``, saved at ``path``; returns the
    vocabulary size."""
    import tokenizers
    import transformers

    vocab = {token: i for i, token in enumerate(SPECIAL + ROLES + WORDS)}
    word_level = tokenizers.Tokenizer(tokenizers.models.WordLevel(vocab, unk_token="<unk>"))
    word_level.pre_tokenizer = tokenizers.pre_tokenizers.WhitespaceSplit()
    tokenizer = transformers.PreTrainedTokenizerFast(
        tokenizer_object=word_level,
        pad_token="<pad>",
        unk_token="<unk>",
        bos_token="<s>",
        eos_token="</s>",
    )
    tokenizer.save_pretrained(path)
    return len(vocab)


def tiny_llama_config(vocab_size: int, **kwargs: Any) -> Any:
    import transformers

    return transformers.LlamaConfig(
        vocab_size=vocab_size,
        hidden_size=16,
        intermediate_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        num_key_value_heads=2,
        max_position_embeddings=256,
        pad_token_id=0,
        bos_token_id=2,
        eos_token_id=3,
        **kwargs,
    )


def save_tiny_reward_model(path: Path) -> str:
    """A 2-layer Llama sequence classifier with one output (a reward model), saved with its
    tokenizer at ``path``."""
    import torch
    import transformers

    config = tiny_llama_config(save_word_tokenizer(path), num_labels=1)
    torch.manual_seed(0)
    transformers.LlamaForSequenceClassification(config).save_pretrained(path)
    return str(path)


def save_tiny_causal_lm(path: Path) -> str:
    """A 2-layer Llama causal LM saved with its tokenizer at ``path``."""
    import torch
    import transformers

    config = tiny_llama_config(save_word_tokenizer(path))
    torch.manual_seed(0)
    transformers.LlamaForCausalLM(config).save_pretrained(path)
    return str(path)
