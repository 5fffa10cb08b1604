"""One loopback server that answers every LLM provider's wire format a documented pipeline may
call, with plausible content: OpenAI-shaped chat (OpenAI, Azure, Groq, Together, Anyscale, vLLM,
Mistral, Hugging Face serverless and TGI's Messages API), OpenAI completions, embeddings and
images, OpenAI's offline batches (Files and Batches), Anthropic messages, Cohere chat (v1 and
v2), Ollama chat/generate, TGI's raw ``/generate`` and the serverless API's model status.

Answers are sentences that echo the prompt, except where the request asks for structure: a JSON
schema (``response_format``, a forced tool call, ``guided_json``) gets a JSON instance valid for
that schema, and ``json_object`` gets a small JSON object. Used by ``distilabel_pipelines.py``.
"""

from __future__ import annotations

import base64
from typing import Any

import orjson

from tests.servers import Reply, Request, prompt_of
from tests.servers.batches import OpenAIBatchServer
from tests.servers.images import png


def instance_of(schema: dict[str, Any], defs: dict[str, Any] | None = None, depth: int = 0) -> Any:
    """A small JSON value valid for ``schema`` (objects, arrays, enums, refs, unions)."""
    defs = {**(defs or {}), **schema.get("$defs", {}), **schema.get("definitions", {})}
    if "$ref" in schema:
        return instance_of(defs.get(schema["$ref"].rsplit("/", 1)[-1], {}), defs, depth + 1)
    if "const" in schema:
        return schema["const"]
    if schema.get("enum"):
        return schema["enum"][0]
    for union in ("anyOf", "oneOf", "allOf"):
        if schema.get(union):
            options = [s for s in schema[union] if s.get("type") != "null"] or schema[union]
            return instance_of(options[0], defs, depth + 1)
    kind = schema.get("type", "object" if "properties" in schema else "string")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), "string")
    if kind == "object":
        properties = schema.get("properties", {})
        return {k: instance_of(v, defs, depth + 1) for k, v in properties.items() if depth < 8}
    if kind == "array":
        count = max(int(schema.get("minItems", 2)), 1) if depth < 8 else 0
        return [instance_of(schema.get("items", {}), defs, depth + 1) for _ in range(count)]
    if kind == "integer":
        return int(schema.get("minimum", 3))
    if kind == "number":
        return float(schema.get("minimum", 3))
    if kind == "boolean":
        return True
    return "a plausible answer"


def _text(prompt: str) -> str:
    head = " ".join(prompt.split()[:12])
    return f"Here is a considered answer about: {head}. It covers the main points clearly."


def _schema_of(body: dict[str, Any]) -> dict[str, Any] | None:
    """The JSON schema a request asks its answer to follow, if any ({} for free JSON)."""
    form = body.get("response_format") or body.get("format")
    if isinstance(form, dict):
        if form.get("type") == "json_schema":
            spec = form.get("json_schema", {})
            return dict(spec.get("schema", spec))
        if form.get("type") == "json" and isinstance(form.get("value"), dict):  # TGI's grammar
            return dict(form["value"])
        if form.get("type") == "json_object":
            return dict(form.get("schema") or {})
        if "properties" in form or "type" in form:
            return dict(form)
    if form == "json":
        return {}
    if isinstance(body.get("guided_json"), dict):
        return dict(body["guided_json"])
    return None


def _json_answer(schema: dict[str, Any]) -> str:
    value = instance_of(schema) if schema else {"answer": "a plausible answer"}
    return orjson.dumps(value).decode()


def _openai_chat(body: dict[str, Any], prompt: str) -> dict[str, Any]:
    tools = body.get("tools") or []
    choice = body.get("tool_choice")
    forced = isinstance(choice, dict) and tools
    choices = []
    for i in range(int(body.get("n") or 1)):
        message: dict[str, Any] = {"role": "assistant", "content": None}
        if forced:
            name = choice.get("function", {}).get("name") or tools[0]["function"]["name"]
            tool = next(t for t in tools if t["function"]["name"] == name)
            arguments = _json_answer(tool["function"].get("parameters", {}))
            message["tool_calls"] = [
                {
                    "id": f"call_{i}",
                    "type": "function",
                    "function": {"name": name, "arguments": arguments},
                }
            ]
        else:
            schema = _schema_of(body)
            message["content"] = _text(prompt) if schema is None else _json_answer(schema)
        choices.append({"index": i, "message": message, "finish_reason": "stop", "logprobs": None})
    return {
        "id": "chatcmpl-loopback",
        "object": "chat.completion",
        "created": 1,
        "model": body.get("model") or "loopback",
        "choices": choices,
        "usage": {"prompt_tokens": 10, "completion_tokens": 12, "total_tokens": 22},
    }


def _anthropic(body: dict[str, Any], prompt: str) -> dict[str, Any]:
    tools = body.get("tools") or []
    content: list[dict[str, Any]]
    if tools and isinstance(body.get("tool_choice"), dict):
        tool = tools[0]
        arguments = orjson.loads(_json_answer(tool.get("input_schema", {})))
        content = [{"type": "tool_use", "id": "tu_1", "name": tool["name"], "input": arguments}]
    else:
        content = [{"type": "text", "text": _text(prompt)}]
    return {
        "id": "msg_loopback",
        "type": "message",
        "role": "assistant",
        "model": body.get("model", "loopback"),
        "content": content,
        "stop_reason": "end_turn",
        "stop_sequence": None,
        "usage": {"input_tokens": 10, "output_tokens": 12},
    }


def _cohere(body: dict[str, Any], prompt: str, v2: bool) -> dict[str, Any]:
    prompt = prompt or str(body.get("message", ""))
    schema = _schema_of(body)
    text = _text(prompt) if schema is None else _json_answer(schema)
    usage = {
        "billed_units": {"input_tokens": 10, "output_tokens": 12},
        "tokens": {"input_tokens": 10, "output_tokens": 12},
    }
    if v2:
        message = {"role": "assistant", "content": [{"type": "text", "text": text}]}
        return {
            "id": "co-loopback",
            "message": message,
            "finish_reason": "COMPLETE",
            "usage": usage,
        }
    return {
        "response_id": "co",
        "generation_id": "g",
        "text": text,
        "finish_reason": "COMPLETE",
        "meta": usage,
    }


def _ollama(body: dict[str, Any], prompt: str, chat: bool) -> dict[str, Any]:
    prompt = prompt or str(body.get("prompt", ""))
    schema = _schema_of(body)
    text = _text(prompt) if schema is None else _json_answer(schema)
    answer: dict[str, Any] = {
        "model": body.get("model", "loopback"),
        "created_at": "2024-01-01T00:00:00Z",
        "done": True,
        "done_reason": "stop",
        "prompt_eval_count": 10,
        "eval_count": 12,
    }
    if chat:
        answer["message"] = {"role": "assistant", "content": text}
    else:
        answer["response"] = text
    return answer


def _embeddings(body: dict[str, Any]) -> dict[str, Any]:
    inputs = body.get("input")
    texts = inputs if isinstance(inputs, list) else [inputs]
    data = [
        {
            "object": "embedding",
            "index": i,
            "embedding": [((len(str(t)) + k) % 7) / 7 for k in range(8)],
        }
        for i, t in enumerate(texts)
    ]
    return {
        "object": "list",
        "data": data,
        "model": body.get("model", "m"),
        "usage": {"prompt_tokens": 1, "total_tokens": 1},
    }


BATCHES = OpenAIBatchServer(polls=1)
"""OpenAI's Files and Batches routes (``use_offline_batch_generation=True``); each batch ends at
its second look."""


def handle(request: Request) -> Reply:
    path = request.path.split("?", 1)[0]
    if path.startswith(("/v1/files", "/v1/batches")):
        # The test server's routes are under the base URL, and it checks its own key.
        headers = {**request.headers, "authorization": "Bearer k"}
        return BATCHES(Request(request.method, request.path[3:], headers, request.body))
    body = request.json if isinstance(request.json, dict) else {}
    prompt = prompt_of(request)
    if path.endswith("/chat/completions"):
        return Reply(body=_openai_chat(body, prompt))
    if path.endswith("/completions"):
        text = _text(str(body.get("prompt", "")))
        choices = [
            {"index": i, "text": text, "finish_reason": "stop", "logprobs": None}
            for i in range(int(body.get("n") or 1))
        ]
        return Reply(
            body={
                "id": "cmpl",
                "object": "text_completion",
                "model": body.get("model", "m"),
                "choices": choices,
                "usage": {"prompt_tokens": 10, "completion_tokens": 12, "total_tokens": 22},
            }
        )
    if path.endswith("/embeddings"):
        return Reply(body=_embeddings(body))
    if path.endswith("/images/generations"):
        data = [
            {"b64_json": base64.b64encode(png(f"{i}")).decode()}
            for i in range(int(body.get("n") or 1))
        ]
        return Reply(body={"created": 1, "data": data})
    if path.endswith("/messages"):
        return Reply(body=_anthropic(body, prompt))
    if path.endswith(("/v1/chat", "/v2/chat")):
        return Reply(body=_cohere(body, prompt, v2=path.endswith("/v2/chat")))
    if path in ("/api/chat", "/api/generate"):
        return Reply(body=_ollama(body, prompt, chat=path == "/api/chat"))
    if path.endswith("/generate") or path.startswith("/models/"):
        wants_image = request.headers.get("accept", "").startswith("image/")  # text-to-image
        if wants_image or ("inputs" in body and not isinstance(body.get("inputs"), str)):
            return Reply(raw=png(str(body.get("inputs"))), headers={"content-type": "image/png"})
        return Reply(body=[{"generated_text": _text(str(body.get("inputs", "")))}])
    if path.startswith("/status/"):  # the serverless API's model status (huggingface_hub)
        status = {"loaded": True, "state": "Loaded", "compute_type": "gpu"}
        return Reply(body={**status, "framework": "text-generation-inference"})
    if path.endswith("/api/tags") or path.endswith("/models"):
        return Reply(body={"models": [], "data": [], "object": "list"})
    return Reply(
        status=404, body={"error": {"message": f"the loopback server has no route {path}"}}
    )
