"""Offline batch APIs on the test server: OpenAI's Files + Batches and Anthropic's Message Batches.

Each server keeps its batches in memory and moves them on as clients look: a batch stays in
progress for its first ``polls`` retrievals (every retrieval while ``hold`` is set: a batch that
outlives a run), then ends. Its results answer every request as the synchronous API would,
except requests whose prompt is in ``fail`` (an error result) or ``expire`` (not run before
the batch expired). Both list their batches newest first, a page at a time (``GET ...?limit=&
after=``, ``after_id=`` for Anthropic). ``created`` counts batches created, ``listed`` list
pages, ``requests_by_prompt`` the batched requests per prompt, and ``chat`` the synchronous chat
requests (which both servers also answer).
"""

from __future__ import annotations

import itertools
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import orjson

from tests.servers import Reply, Request, prompt_of
from tests.servers.chat import answer_text, completion


def _prompt(body: dict[str, Any]) -> str:
    return prompt_of(Request("POST", "", {}, body))


def _params(line: dict[str, Any]) -> dict[str, Any]:
    """The chat request in a batch input line (OpenAI's ``body``, Anthropic's ``params``)."""
    params: dict[str, Any] = line.get("body") or line.get("params") or {}
    return params


@dataclass
class _Batch:
    id: str
    lines: list[dict[str, Any]]
    retrieved: int = 0
    status: str = "in_progress"
    cancelled: bool = False
    metadata: dict[str, str] = field(default_factory=dict)
    created_at: float = field(default_factory=time.time)


@dataclass
class _BatchServer:
    polls: int = 2
    hold: bool = False
    held: set[str] = field(default_factory=set)
    """Prompts whose batches are held (while ``held`` names them)."""
    fail: set[str] = field(default_factory=set)
    expire: set[str] = field(default_factory=set)
    url: str = ""
    created: int = 0
    listed: int = 0
    chat: Counter[str] = field(default_factory=Counter)
    requests_by_prompt: Counter[str] = field(default_factory=Counter)
    batches: dict[str, _Batch] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self._lock = threading.Lock()
        self._ids = itertools.count(1)

    def _new_id(self, prefix: str) -> str:
        return f"{prefix}_{next(self._ids)}"

    def add_others(self, n: int, line: dict[str, Any]) -> None:
        """``n`` batches of one request ``line`` that someone else sent: a long list to page."""
        for _ in range(n):
            batch = _Batch(self._new_id("other"), [line], metadata={"owner": "someone else"})
            self.batches[batch.id] = batch

    def _page(self, path: str, cursor: str) -> tuple[list[_Batch], bool]:
        """The page of batches, newest first, that ``path``'s query asks for."""
        self.listed += 1
        query = dict(p.split("=", 1) for p in path.partition("?")[2].split("&") if "=" in p)
        newest_first = list(self.batches.values())[::-1]
        ids = [b.id for b in newest_first]
        start = ids.index(query[cursor]) + 1 if query.get(cursor) in ids else 0
        limit = int(query.get("limit", 20))
        return newest_first[start : start + limit], start + limit < len(ids)

    def _advance(self, batch: _Batch) -> bool:
        """One more look at ``batch``; whether it has ended."""
        batch.retrieved += 1
        if batch.cancelled:
            return True
        held = self.hold or any(_prompt(_params(line)) in self.held for line in batch.lines)
        return not held and batch.retrieved > self.polls


class OpenAIBatchServer(_BatchServer):
    """``POST /files`` (multipart, purpose=batch), ``GET /files/{id}/content``, ``POST
    /batches``, ``GET /batches/{id}``, ``POST /batches/{id}/cancel``, and chat completions."""

    def __post_init__(self) -> None:
        super().__post_init__()
        self.files: dict[str, bytes] = {}

    def __call__(self, request: Request) -> Reply:
        if request.headers.get("authorization") != "Bearer k":
            return Reply(401, {"error": {"message": "bad key"}})
        path = request.path
        with self._lock:
            if path == "/chat/completions":
                self.chat[prompt_of(request)] += 1
                return completion(request)
            if path == "/files" and request.method == "POST":
                return self._upload(request)
            if path.startswith("/files/") and path.endswith("/content"):
                return Reply(raw=self.files[path.split("/")[2]])
            if path == "/batches" and request.method == "POST":
                return self._create(request.json)
            if path.partition("?")[0] == "/batches" and self.list_down:
                return Reply(503, {"error": {"message": "listing is down"}})
            if path.partition("?")[0] == "/batches":
                page, more = self._page(path, "after")
                listed = [self._describe(b, b.status) for b in page]
                return Reply(body={"object": "list", "data": listed, "has_more": more})
            if path.startswith("/batches/") and path.endswith("/cancel"):
                batch = self.batches[path.split("/")[2]]
                batch.cancelled = True
                return Reply(body=self._describe(batch, "cancelling"))
            if path.startswith("/batches/"):
                batch = self.batches[path.split("/")[2]]
                if self.reject is not None:
                    error = {"code": "invalid_request", "message": self.reject, "line": 1}
                    failed = self._describe(batch, "failed", errors={"data": [error]})
                    return Reply(body=failed)
                ended = self._advance(batch)
                if not ended:
                    status = "validating" if batch.retrieved == 1 else "in_progress"
                    return Reply(body=self._describe(batch, status))
                return Reply(body=self._finish(batch))
        return Reply(404, {"error": {"message": f"no route {path}"}})

    def _upload(self, request: Request) -> Reply:
        boundary = request.headers["content-type"].split("boundary=")[1].encode()
        parts = request.body.split(b"--" + boundary)
        fields: dict[str, bytes] = {}
        for part in parts:
            head, _, content = part.partition(b"\r\n\r\n")
            if b'name="' not in head:
                continue
            name = head.split(b'name="')[1].split(b'"')[0].decode()
            fields[name] = content[: -len(b"\r\n")] if content.endswith(b"\r\n") else content
        if fields.get("purpose") != b"batch" or "file" not in fields:
            return Reply(400, {"error": {"message": "purpose=batch and a file are required"}})
        file_id = self._new_id("file")
        self.files[file_id] = fields["file"]
        return Reply(body={"id": file_id, "object": "file", "purpose": "batch"})

    list_down: bool = False
    """Answer the batch list with 503."""
    reject: str | None = None
    """Fail every batch's validation with this message (status ``failed``, no results)."""

    def _create(self, body: dict[str, Any]) -> Reply:
        if body.get("completion_window") != "24h" or body.get("endpoint") != "/v1/chat/completions":
            return Reply(400, {"error": {"message": "bad endpoint or completion_window"}})
        lines = [orjson.loads(line) for line in self.files[body["input_file_id"]].splitlines()]
        for line in lines:
            assert line["method"] == "POST" and line["url"] == "/v1/chat/completions", line
            self.requests_by_prompt[_prompt(line["body"])] += 1
        batch = _Batch(self._new_id("batch"), lines, metadata=body.get("metadata") or {})
        self.batches[batch.id] = batch
        self.created += 1
        return Reply(body=self._describe(batch, "validating"))

    def _describe(self, batch: _Batch, status: str, **extra: Any) -> dict[str, Any]:
        batch.status = status
        return {
            "id": batch.id,
            "object": "batch",
            "endpoint": "/v1/chat/completions",
            "completion_window": "24h",
            "status": status,
            "created_at": int(batch.created_at),
            "metadata": batch.metadata,
            "request_counts": {"total": len(batch.lines), "completed": 0, "failed": 0},
            **extra,
        }

    def _finish(self, batch: _Batch) -> dict[str, Any]:
        output: list[bytes] = []
        errors: list[bytes] = []
        for line in batch.lines:
            prompt = _prompt(line["body"])
            custom_id = line["custom_id"]
            if batch.cancelled or prompt in self.expire:
                code = "batch_cancelled" if batch.cancelled else "batch_expired"
                error = {"code": code, "message": "This request could not be executed."}
                errors.append(
                    orjson.dumps({"custom_id": custom_id, "response": None, "error": error})
                )
            elif prompt in self.fail:
                body = {"error": {"message": "invalid request", "type": "invalid_request_error"}}
                response = {"status_code": 400, "body": body}
                errors.append(
                    orjson.dumps({"custom_id": custom_id, "response": response, "error": None})
                )
            else:
                reply = completion(Request("POST", "/chat/completions", {}, line["body"]))
                response = {"status_code": 200, "request_id": "req", "body": reply.body}
                output.append(
                    orjson.dumps({"custom_id": custom_id, "response": response, "error": None})
                )
        extra: dict[str, Any] = {}
        for name, content in (("output_file_id", output), ("error_file_id", errors)):
            if content:
                file_id = self._new_id("file")
                self.files[file_id] = b"\n".join(content) + b"\n"
                extra[name] = file_id
        status = "cancelled" if batch.cancelled else ("expired" if self.expire else "completed")
        described = self._describe(batch, status, **extra)
        described["request_counts"] = {
            "total": len(batch.lines),
            "completed": len(output),
            "failed": len(errors),
        }
        return described


class AnthropicBatchServer(_BatchServer):
    """``POST /v1/messages/batches``, ``GET /v1/messages/batches/{id}``, ``.../cancel``,
    ``GET results_url``, and ``POST /v1/messages``."""

    def __call__(self, request: Request) -> Reply:
        if "x-api-key" not in request.headers or "anthropic-version" not in request.headers:
            return Reply(401, {"type": "error", "error": {"type": "authentication_error"}})
        path = request.path
        root = "/v1/messages/batches"
        with self._lock:
            if path == "/v1/messages":
                self.chat[prompt_of(request)] += 1
                return Reply(body=_message(request.json))
            if path == root and request.method == "POST":
                return self._create(request.json)
            if path.partition("?")[0] == root:
                page, more = self._page(path, "after_id")
                listed = [self._describe(b, b.status) for b in page]
                last = page[-1].id if page else None
                return Reply(body={"data": listed, "has_more": more, "last_id": last})
            if path.endswith("/results"):
                return Reply(raw=self._results(self.batches[path.split("/")[4]]))
            if path.endswith("/cancel"):
                batch = self.batches[path.split("/")[4]]
                batch.cancelled = True
                return Reply(body=self._describe(batch, "canceling"))
            if path.startswith(root + "/"):
                batch = self.batches[path.split("/")[4]]
                ended = self._advance(batch)
                return Reply(body=self._describe(batch, "ended" if ended else "in_progress"))
        return Reply(404, {"type": "error", "error": {"type": "not_found_error"}})

    def _create(self, body: dict[str, Any]) -> Reply:
        lines = body["requests"]
        for line in lines:
            params = line["params"]
            if not isinstance(params.get("max_tokens"), int) or "model" not in params:
                return Reply(400, {"type": "error", "error": {"message": "bad params"}})
            self.requests_by_prompt[_prompt(params)] += 1
        batch = _Batch(self._new_id("msgbatch"), lines)
        self.batches[batch.id] = batch
        self.created += 1
        return Reply(body=self._describe(batch, "in_progress"))

    def _kind(self, batch: _Batch, prompt: str) -> str:
        if batch.cancelled:
            return "canceled"
        if prompt in self.expire:
            return "expired"
        return "errored" if prompt in self.fail else "succeeded"

    def _describe(self, batch: _Batch, status: str) -> dict[str, Any]:
        batch.status = status
        counts = dict.fromkeys(("processing", "succeeded", "errored", "canceled", "expired"), 0)
        if status == "ended":
            for line in batch.lines:
                counts[self._kind(batch, _prompt(line["params"]))] += 1
        else:
            counts["processing"] = len(batch.lines)
        return {
            "id": batch.id,
            "type": "message_batch",
            "processing_status": status,
            "created_at": datetime.fromtimestamp(batch.created_at, UTC)
            .isoformat()
            .replace("+00:00", "Z"),
            "request_counts": counts,
            "results_url": f"{self.url}/v1/messages/batches/{batch.id}/results"
            if status == "ended"
            else None,
        }

    def _results(self, batch: _Batch) -> bytes:
        out = []
        for line in batch.lines:
            kind = self._kind(batch, _prompt(line["params"]))
            result: dict[str, Any] = {"type": kind}
            if kind == "succeeded":
                result["message"] = _message(line["params"])
            elif kind == "errored":
                result["error"] = {
                    "type": "error",
                    "error": {"type": "invalid_request_error", "message": "invalid request"},
                }
            out.append(orjson.dumps({"custom_id": line["custom_id"], "result": result}))
        return b"\n".join(out) + b"\n"


def _message(params: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": "msg_1",
        "type": "message",
        "role": "assistant",
        "model": params["model"],
        "content": [{"type": "text", "text": answer_text(_prompt(params), 0)}],
        "stop_reason": "end_turn",
        "usage": {"input_tokens": 10, "output_tokens": 5},
    }
