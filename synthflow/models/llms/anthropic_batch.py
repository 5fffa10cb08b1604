"""Anthropic's Message Batches API on the wire.

- ``POST /v1/messages/batches`` with ``{"requests": [{"custom_id", "params": <a Messages
  request>}, ...]}`` creates the batch (no file upload).
- ``GET /v1/messages/batches/{id}`` reports its ``processing_status`` (``in_progress``,
  ``canceling``, ``ended``), its ``request_counts`` (``processing``, ``succeeded``,
  ``errored``, ``canceled``, ``expired``) and, once ended, ``results_url``;
  ``POST /v1/messages/batches/{id}/cancel`` cancels it.
- ``GET results_url`` is JSON Lines: ``{"custom_id", "result": {"type": "succeeded",
  "message": <a Messages response>}}``, or ``type`` ``errored`` (with ``error``), ``canceled``
  or ``expired``.

Limits per batch: 100,000 requests and 256 MB. Batch calls cost half the price.
"""

from __future__ import annotations

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
