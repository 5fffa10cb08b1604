"""Anthropic's Message Batches API on the wire.

- ``POST /v1/messages/batches`` with ``{"requests": [{"custom_id", "params": <a Messages
  request>}, ...]}`` creates the batch (no file upload).
- ``GET /v1/messages/batches/{id}`` reports its ``processing_status`` (``in_progress``,
  ``canceling``, ``ended``), its ``request_counts`` (``processing``, ``succeeded``,
  ``errored``, ``canceled``, ``expired``) and, once ended, ``results_url``;
  ``POST /v1/messages/batches/{id}/cancel`` cancels it. ``GET /v1/messages/batches?limit=100
  &after_id={id}`` lists batches, newest first (``data``, ``has_more``, ``last_id``), each with
  its ``created_at`` (RFC 3339) and ``request_counts``, but no metadata.
- ``GET results_url`` is JSON Lines: ``{"custom_id", "result": {"type": "succeeded",
  "message": <a Messages response>}}``, or ``type`` ``errored`` (with ``error``), ``canceled``
  or ``expired``.

Limits per batch: 100,000 requests and 256 MB. Batch calls cost half the price.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any

import orjson

from synthflow.models.callpath.batch_wire import BatchStatus, LineResult, json_lines

if TYPE_CHECKING:
    from synthflow.models.llms.anthropic import AnthropicLLM

_PATH = "/v1/messages/batches"


class AnthropicBatchWire:
    max_requests = 100_000
    max_bytes = 256 * 1000 * 1000
    price_factor = 0.5

    def __init__(self, llm: AnthropicLLM) -> None:
        self.llm = llm

    def _headers(self) -> dict[str, str]:
        llm = self.llm
        return {**llm.default_headers, **llm.auth_headers(llm.resolved_api_key())}

    def line(self, custom_id: str, path: str, payload: dict[str, Any]) -> bytes:
        return orjson.dumps({"custom_id": custom_id, "params": payload})

    async def submit(self, lines: list[bytes], metadata: dict[str, str]) -> tuple[str, BatchStatus]:
        body = b'{"requests":[' + b",".join(lines) + b"]}"
        headers = {**self._headers(), "content-type": "application/json"}
        raw = await self.llm._client().request_bytes("POST", _PATH, body, headers)
        data = orjson.loads(raw)
        return str(data["id"]), _status(data)

    async def find(self, local_id: str, since: float, size: int) -> list[tuple[str, BatchStatus]]:
        """Batches created since ``since`` that hold ``size`` requests, oldest first.

        Anthropic's batches carry no metadata, and their request ids are our cache keys (up to
        the 64 characters a ``custom_id`` may have), so there is no room to name ``local_id``:
        a batch is recognised by when it was made and how many requests it holds. The caller
        submits one batch at a time and skips the batches its run already knows."""
        http = self.llm._client()
        found: list[tuple[str, BatchStatus]] = []
        after = ""
        while True:
            page = await http.get_json(f"{_PATH}?limit=100{after}", self._headers())
            batches = page.data.get("data") or []
            older = False
            for batch in batches:
                created = _timestamp(batch.get("created_at"))
                if created is not None and created < since:
                    older = True
                    continue
                counts = batch.get("request_counts") or {}
                if sum(int(v or 0) for v in counts.values()) == size:
                    found.append((str(batch["id"]), _status(batch)))
            if not batches or older or not page.data.get("has_more"):
                return found[::-1]
            after = f"&after_id={page.data.get('last_id') or batches[-1]['id']}"

    async def retrieve(self, batch_id: str) -> BatchStatus:
        response = await self.llm._client().get_json(f"{_PATH}/{batch_id}", self._headers())
        return _status(response.data)

    async def cancel(self, batch_id: str) -> BatchStatus:
        response = await self.llm._client().post_json(
            f"{_PATH}/{batch_id}/cancel", {}, self._headers()
        )
        return _status(response.data)

    async def results(self, status: BatchStatus) -> list[LineResult]:
        url = status.files.get("results_url")
        if not url:
            return []
        content = await self.llm._client().request_bytes("GET", url, None, self._headers())
        return [_line_result(item) for item in json_lines(content)]


def _status(data: dict[str, Any]) -> BatchStatus:
    status = str(data.get("processing_status") or "unknown")
    counts = {k: int(v or 0) for k, v in (data.get("request_counts") or {}).items()}
    files = {"results_url": str(data["results_url"])} if data.get("results_url") else {}
    return BatchStatus(status, status == "ended", counts, files)


def _timestamp(value: Any) -> float | None:
    try:
        return datetime.fromisoformat(str(value).replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


def _line_result(item: dict[str, Any]) -> LineResult:
    custom_id = str(item.get("custom_id"))
    result = item.get("result") or {}
    kind = result.get("type")
    if kind == "succeeded":
        return LineResult(custom_id, result.get("message"), None)
    if kind == "errored":
        error = result.get("error") or {}
        inner = error.get("error", error) if isinstance(error, dict) else error
        detail = inner.get("message", inner) if isinstance(inner, dict) else inner
        return LineResult(custom_id, None, f"errored: {detail}")
    return LineResult(custom_id, None, f"{kind or 'unknown result'}")
