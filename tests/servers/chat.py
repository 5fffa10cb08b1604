"""OpenAI chat completions on the test server, odd answers included.

``completion(request, kinds)`` answers a chat-completions request with one choice per entry of
``kinds``: ``"text"`` (an answer), ``"null"`` (null content, ``finish_reason: stop``),
``"filter"`` (null content, ``finish_reason: content_filter``), ``"refusal"`` (``message.refusal``
set, null content). Fewer kinds than the request's ``n`` is an answer with fewer choices; none is
an empty ``choices`` list. ``scripted(decide)`` is a handler that asks ``decide(prompt, nth)`` for
the kinds of the ``nth`` request (from 0) carrying ``prompt``, so a test scripts faults per
prompt and per attempt; ``decide`` may also return a ``Reply`` or ``RESET`` (a connection fault).
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable
from typing import Any

from tests.servers import RESET, Handler, Reply, Request, prompt_of

__all__ = ["RESET", "answer_text", "completion", "scripted"]


def answer_text(prompt: str, index: int, nth: int = 0) -> str:
    """The text the server answers for choice ``index`` of the ``nth`` request of ``prompt``."""
    return f"answer {nth}.{index} to {prompt}"


def _choice(kind: str, index: int, text: str) -> dict[str, Any]:
    message: dict[str, Any] = {"role": "assistant", "content": None, "refusal": None}
    finish = "stop"
    if kind == "text":
        message["content"] = text
    elif kind == "filter":
        finish = "content_filter"
    elif kind == "refusal":
        message["refusal"] = "I can't help with that request."
    elif kind != "null":
        raise ValueError(f"unknown choice kind {kind!r}")
    return {"index": index, "message": message, "finish_reason": finish, "logprobs": None}


def completion(
    request: Request, kinds: list[str] | None = None, nth: int = 0, *, delay: float = 0.0
) -> Reply:
    body = request.json
    n = body.get("n", 1)
    prompt = prompt_of(request)
    kinds = ["text"] * n if kinds is None else kinds
    choices = [_choice(k, i, answer_text(prompt, i, nth)) for i, k in enumerate(kinds)]
    produced = sum(5 for k in kinds if k == "text")
    return Reply(
        delay=delay,
        body={
            "id": "chatcmpl-test",
            "object": "chat.completion",
            "model": body.get("model", "m"),
            "choices": choices,
            "usage": {
                "prompt_tokens": 10,
                "completion_tokens": produced,
                "total_tokens": 10 + produced,
            },
        },
    )


Decide = Callable[[str, int], "list[str] | Reply | object | None"]


def scripted(decide: Decide) -> Handler:
    """A handler that answers the ``nth`` request of each prompt as ``decide(prompt, nth)``
    says: a list of choice kinds, a ``Reply``, ``RESET``, a handler to answer with, or None
    for a plain answer."""
    lock = threading.Lock()
    seen: Counter[str] = Counter()

    def handler(request: Request) -> Reply | object:
        prompt = prompt_of(request)
        with lock:
            nth = seen[prompt]
            seen[prompt] += 1
        decision = decide(prompt, nth)
        if decision is RESET or isinstance(decision, Reply):
            return decision
        if callable(decision):
            return decision(request)
        assert decision is None or isinstance(decision, list)
        return completion(request, decision, nth)

    return handler
