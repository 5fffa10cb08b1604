"""OpenAI's Batch API on the wire (also Groq's, which speaks it).

- The requests go in a JSON Lines file, one ``{"custom_id", "method": "POST", "url":
  "/v1/chat/completions", "body": <the chat request>}`` per line, uploaded with ``POST /files``
  (multipart, ``purpose=batch``).
- ``POST /batches`` with ``input_file_id``, ``endpoint`` and ``completion_window: "24h"``
  creates the batch; ``GET /batches/{id}`` reports its ``status`` (``validating``,
  ``in_progress``, ``finalizing``, ``completed``, ``failed``, ``expired``, ``cancelling``,
  ``cancelled``), its ``request_counts`` and, once it has them, ``output_file_id`` and
  ``error_file_id``; ``POST /batches/{id}/cancel`` cancels it.
- Results are JSON Lines at ``GET /files/{id}/content``: ``{"custom_id", "response":
  {"status_code", "body"}, "error"}``. The output file holds the answered requests; the error
  file those that failed, and those a batch that expired or was cancelled never ran
  (``error.code`` ``batch_expired`` / ``batch_cancelled``).

Limits per batch: 50,000 requests and a 200 MB input file. Batch calls cost half the price.
"""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING, Any

import orjson

from synthflow.models.callpath.batch_wire import BatchStatus, LineResult, json_lines

if TYPE_CHECKING:
    from synthflow.models.llms.openai import OpenAILLM

_ENDED = frozenset({"completed", "failed", "expired", "cancelled"})


class OpenAIBatchWire:
    max_requests = 50_000
    max_bytes = 200 * 1024 * 1024
    price_factor = 0.5

    def __init__(self, llm: OpenAILLM) -> None:
        self.llm = llm

    def _headers(self) -> dict[str, str]:
        llm = self.llm
        return {**llm.default_headers, **llm.auth_headers(llm.resolved_api_key())}

    def line(self, custom_id: str, path: str, payload: dict[str, Any]) -> bytes:
        return orjson.dumps(
            {"custom_id": custom_id, "method": "POST", "url": _endpoint(path), "body": payload}
        )

    async def submit(self, lines: list[bytes], metadata: dict[str, str]) -> tuple[str, BatchStatus]:
        http = self.llm._client()
        boundary = f"synthflow-{uuid.uuid4().hex}"
        body = b"".join(
            [
                f'--{boundary}\r\nContent-Disposition: form-data; name="purpose"\r\n\r\n'
                "batch\r\n".encode(),
                f'--{boundary}\r\nContent-Disposition: form-data; name="file"; '
                f'filename="synthflow-{metadata.get("synthflow_batch", "batch")}.jsonl"\r\n'
                "Content-Type: application/jsonl\r\n\r\n".encode(),
                b"\n".join(lines),
                f"\n\r\n--{boundary}--\r\n".encode(),
            ]
        )
        headers = {**self._headers(), "content-type": f"multipart/form-data; boundary={boundary}"}
        uploaded = orjson.loads(await http.request_bytes("POST", "/files", body, headers))
        file_id = str(uploaded["id"])
        created = await http.post_json(
            "/batches",
            {
                "input_file_id": file_id,
                "endpoint": _endpoint(self.llm.chat_path()),
                "completion_window": "24h",
                "metadata": metadata,
            },
            self._headers(),
        )
        return str(created.data["id"]), _status(created.data)

    async def find(self, local_id: str, since: float, size: int) -> list[tuple[str, BatchStatus]]:
        """The batch whose metadata names ``local_id`` (an exact match), looking back through
        the list no further than ``since``."""
        http = self.llm._client()
        after = ""
        while True:
            page = await http.get_json(f"/batches?limit=100{after}", self._headers())
            batches = page.data.get("data") or []
            for batch in batches:
                if (batch.get("metadata") or {}).get("synthflow_batch") == local_id:
                    return [(str(batch["id"]), _status(batch))]
            older = any(float(b.get("created_at") or since) < since for b in batches)
            if not batches or older or not page.data.get("has_more"):
                return []
            after = f"&after={batches[-1]['id']}"

    async def retrieve(self, batch_id: str) -> BatchStatus:
        response = await self.llm._client().get_json(f"/batches/{batch_id}", self._headers())
        return _status(response.data)

    async def cancel(self, batch_id: str) -> BatchStatus:
        response = await self.llm._client().post_json(
            f"/batches/{batch_id}/cancel", {}, self._headers()
        )
        return _status(response.data)

    async def results(self, status: BatchStatus) -> list[LineResult]:
        http = self.llm._client()
        found: list[LineResult] = []
        for name in ("output_file_id", "error_file_id"):
            file_id = status.files.get(name)
            if not file_id:
                continue
            content = await http.request_bytes(
                "GET", f"/files/{file_id}/content", None, self._headers()
            )
            found.extend(_line_result(item) for item in json_lines(content))
        return found


def _endpoint(chat_path: str) -> str:
    """The path under the API root, as a batch names it (base URLs end in /v1)."""
    return chat_path if chat_path.startswith("/v1/") else f"/v1{chat_path}"


def _status(data: dict[str, Any]) -> BatchStatus:
    status = str(data.get("status") or "unknown")
    counts = {k: int(v or 0) for k, v in (data.get("request_counts") or {}).items()}
    files = {
        name: str(data[name])
        for name in ("input_file_id", "output_file_id", "error_file_id")
        if data.get(name)
    }
    errors = data.get("errors") or {}
    problems = [str(e.get("message", e)) for e in (errors.get("data") or [])]
    return BatchStatus(status, status in _ENDED, counts, files, "; ".join(problems))


def _line_result(item: dict[str, Any]) -> LineResult:
    custom_id = str(item.get("custom_id"))
    error = item.get("error")
    response = item.get("response") or {}
    if error:
        code = error.get("code") or "error"
        return LineResult(custom_id, None, f"{code}: {error.get('message') or code}")
    status_code = int(response.get("status_code") or 0)
    body = response.get("body")
    if status_code != 200:
        detail = body.get("error", body) if isinstance(body, dict) else body
        if isinstance(detail, dict):
            detail = detail.get("message", detail)
        return LineResult(custom_id, None, f"status {status_code}: {detail}")
    return LineResult(custom_id, body, None)
