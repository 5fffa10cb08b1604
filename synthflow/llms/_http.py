"""The HTTP layer under every API client: JSON over HTTP/1.1, errors mapped at the boundary.

Transport choice (measured; see benchmarks/HTTP_STACK.md): httpx2, the maintained successor of
httpx with the same API, already installed with ``datasets``. Its connection pool scans every
connection per request, so CPU per request grows with the pool's size; we therefore split the
connections over several small clients and pick one per request, round-robin. That keeps the
cost per request flat as concurrency grows. If httpx2 is missing, httpx is used the same way.

Every transport error becomes one of synthflow's ``LLMError`` types here, and nowhere else.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import orjson

from synthflow.errors import (
    LLMConnectionError,
    LLMResponseError,
    LLMStatusError,
    LLMTimeoutError,
)

CONNECTIONS_PER_CLIENT = 16


def _httpx() -> Any:
    try:
        import httpx2

        return httpx2
    except ImportError:  # pragma: no cover - httpx2 comes with datasets
        import httpx

        return httpx


@dataclass(frozen=True, slots=True)
class JSONResponse:
    status: int
    headers: Mapping[str, str]
    data: Any


class HTTPClient:
    """Posts JSON to one endpoint with up to ``max_connections`` connections."""

    def __init__(self, base_url: str, *, timeout: float, max_connections: int = 256) -> None:
        self.base_url = base_url.rstrip("/")
        self._timeout = timeout
        self._max_connections = max_connections
        self._clients: list[Any] = []
        self._next: itertools.cycle[Any] | None = None
        self._closed = False

    def _client(self) -> Any:
        if self._closed:
            raise RuntimeError("HTTPClient is closed")
        if self._next is None:
            httpx = _httpx()
            count = max(1, -(-self._max_connections // CONNECTIONS_PER_CLIENT))
            per_client = -(-self._max_connections // count)
            limits = httpx.Limits(max_connections=per_client, max_keepalive_connections=per_client)
            self._clients = [
                httpx.AsyncClient(timeout=httpx.Timeout(self._timeout), limits=limits)
                for _ in range(count)
            ]
            self._next = itertools.cycle(self._clients)
        return next(self._next)

    async def post_json(
        self, path: str, payload: Any, headers: Mapping[str, str] | None = None
    ) -> JSONResponse:
        """POST ``payload`` as JSON; return the decoded JSON body of a 2xx answer.

        Raises LLMStatusError (>= 400), LLMTimeoutError, LLMConnectionError, or
        LLMResponseError (2xx with a body that is not JSON).
        """
        url = path if path.startswith("http") else f"{self.base_url}{path}"
        body = orjson.dumps(payload)
        send_headers = {"content-type": "application/json", **(headers or {})}
        return await self._send("POST", url, body, send_headers)

    async def get_json(self, path: str, headers: Mapping[str, str] | None = None) -> JSONResponse:
        url = path if path.startswith("http") else f"{self.base_url}{path}"
        return await self._send("GET", url, None, dict(headers or {}))

    async def _send(
        self, method: str, url: str, body: bytes | None, headers: dict[str, str]
    ) -> JSONResponse:
        httpx = _httpx()
        client = self._client()
        try:
            response = await client.request(method, url, content=body, headers=headers)
        except httpx.TimeoutException as exc:
            raise LLMTimeoutError(f"{method} {url} timed out after {self._timeout}s") from exc
        except httpx.TransportError as exc:
            raise LLMConnectionError(
                f"{method} {url} failed: {type(exc).__name__}: {exc or 'connection error'}"
            ) from exc
        content = response.content
        response_headers = {k.lower(): v for k, v in response.headers.items()}
        if response.status_code >= 400:
            text = content.decode("utf-8", "replace")
            raise LLMStatusError(
                f"{method} {url} answered {response.status_code}: {_excerpt(text)}",
                status_code=response.status_code,
                body=text,
                headers=response_headers,
            )
        try:
            data = orjson.loads(content) if content else None
        except orjson.JSONDecodeError as exc:
            raise LLMResponseError(
                f"{method} {url} answered {response.status_code} with a body that is not JSON: "
                f"{_excerpt(content.decode('utf-8', 'replace'))}"
            ) from exc
        return JSONResponse(response.status_code, response_headers, data)

    async def aclose(self) -> None:
        self._closed = True
        clients, self._clients, self._next = self._clients, [], None
        for client in clients:
            await client.aclose()

    def reopen(self) -> None:
        """Allow use again after ``aclose`` (a new run, possibly on a new event loop)."""
        self._closed = False


def _excerpt(text: str, limit: int = 300) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 3] + "..."
