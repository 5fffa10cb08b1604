"""Raw completion routes on the test server, for Magpie: an OpenAI-compatible server (vLLM,
llama.cpp) with ``/v1/models``, ``/v1/completions`` and ``/v1/chat/completions``, and TGI with its
raw ``/generate`` route beside its messages API.

``openai_server(write)`` and ``tgi_server(write)`` are handlers; ``write(prompt)`` returns the
text of a raw completion of ``prompt`` (default: ``user_text``). Chat requests are answered as
``tests.servers.chat.completion`` does.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from tests.servers import Handler, Reply, Request
from tests.servers.chat import completion

SERVED_MODEL = "meta-llama/Meta-Llama-3-8B-Instruct"


def user_text(prompt: str) -> str:
    """A user turn that says which raw prompt it completes (by its length), with the end-of-turn
    token a server may leave in the text."""
    return f"Question number {len(prompt)}?<|eot_id|>"


Write = Callable[[str], "str | None"]


def openai_server(write: Write = user_text, *, finish_reason: str = "stop") -> Handler:
    def handler(request: Request) -> Reply:
        if request.path.endswith("/models"):
            return Reply(body={"object": "list", "data": [{"id": SERVED_MODEL}]})
        if request.path.endswith("/chat/completions"):
            return completion(request)
        if request.path.endswith("/completions"):
            body: dict[str, Any] = request.json
            n = int(body.get("n", 1))
            text = write(str(body["prompt"]))
            choices = [
                {"index": i, "text": text, "finish_reason": finish_reason, "logprobs": None}
                for i in range(n)
            ]
            usage = {"prompt_tokens": 7, "completion_tokens": 3 * n, "total_tokens": 7 + 3 * n}
            return Reply(body={"object": "text_completion", "choices": choices, "usage": usage})
        return Reply(status=404, body={"error": f"no route {request.path}"})

    return handler


def tgi_server(write: Write = user_text) -> Handler:
    def handler(request: Request) -> Reply:
        if request.path.endswith("/chat/completions"):
            return completion(request)
        if request.path.endswith("/generate"):
            body: dict[str, Any] = request.json
            text = write(str(body["inputs"]))
            details = {"finish_reason": "eos_token", "generated_tokens": 4, "seed": None}
            return Reply(body={"generated_text": text, "details": details})
        return Reply(status=404, body={"error": f"no route {request.path}"})

    return handler
