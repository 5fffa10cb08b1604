"""Hidden states of a local LLM: what ``GenerateEmbeddings`` pools into embeddings.

``HiddenState`` is one conversation's last-layer states, a NumPy array of shape
``[num_tokens, hidden_size]`` (distilabel's type of the same name). ``last_hidden_states`` gets
them from an LLM that defines ``get_last_hidden_states`` (distilabel's method name), or from a
loaded ``TransformersLLM``. NumPy and torch are imported only when states are computed.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, TypeAlias

if TYPE_CHECKING:
    # Types only: the LLM package re-exports HiddenState, so importing it here would be a cycle.
    import numpy as np
    from numpy.typing import NDArray

    from synthflow.models.llms.base import LLM, ChatType

    HiddenState: TypeAlias = NDArray[np.floating[Any]]
else:
    HiddenState = Any  # a NumPy float array; NumPy stays unimported until states are computed


def last_hidden_states(llm: LLM, conversations: list[ChatType]) -> list[HiddenState]:
    """The last hidden layer's states for each conversation, in order, without padding: one
    ``[num_tokens, hidden_size]`` array each."""
    own = getattr(llm, "get_last_hidden_states", None)
    if callable(own):
        states: list[HiddenState] = own(conversations)
        return states
    from synthflow.models.llms.local.transformers import TransformersLLM

    if isinstance(llm, TransformersLLM):
        return _transformers_states(llm, conversations)
    raise TypeError(
        f"{type(llm).__name__} does not expose its hidden states: use a local model such as "
        "TransformersLLM"
    )


def _transformers_states(llm: Any, conversations: list[ChatType]) -> list[HiddenState]:
    import torch

    runtime = llm._runtime  # what TransformersLLM.load() acquired
    model, tokenizer = runtime.model, runtime.tokenizer
    if model is None:
        raise RuntimeError(f"{type(llm).__name__} is not loaded: call load() first")
    encoded = tokenizer(
        [llm.prompt(messages)[0] for messages in conversations],  # the text it would answer
        return_tensors="pt",
        padding=True,
        add_special_tokens=False,  # the prompt has them
        return_token_type_ids=False,
    ).to(model.device)
    # The base model (no language-model head): its output is the last layer's states.
    with runtime.lock, torch.inference_mode():
        states = model.base_model(**encoded).last_hidden_state
    masks = encoded["attention_mask"].bool()
    return [s[m].float().cpu().numpy() for s, m in zip(states, masks, strict=True)]
