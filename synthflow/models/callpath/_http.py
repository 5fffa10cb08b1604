"""The HTTP layer under every API client: JSON over HTTP/1.1, errors mapped at the boundary.

Two transports sit behind one seam (``_Transport.request``), chosen by measurement (see
benchmarks/HTTP_STACK.md and benchmarks/README.md; 200 ms latency, 64-256 requests in flight):

- ``aiohttp`` (the default): about 0.15 ms of CPU per request, flat as concurrency grows. In the
  two-task pipeline benchmark the whole process spends 0.4-0.5 ms per request with it.
- ``httpx2`` (installed with ``datasets``): about 0.8 ms per request once its connections are
  split over several small clients, picked round-robin (one big pool scans every connection per
  request, so its cost would grow with concurrency). The whole pipeline then spends 0.8-1.1 ms
  per request, twice as much, which is why aiohttp is a dependency.
  (httpx 0.28: 10-20 ms per request on this workload.)

``SYNTHFLOW_HTTP=httpx2|aiohttp`` forces one. Every transport error becomes one of synthflow's
``LLMError`` types here, and nowhere else.

Both follow the environment, as curl, requests and httpx do: ``HTTPS_PROXY``/``HTTP_PROXY``/
``NO_PROXY`` route requests through a proxy, and ``SSL_CERT_FILE``/``SSL_CERT_DIR`` name the CA
certificates to trust instead of certifi's bundle (a company's TLS-inspecting proxy, a
self-hosted server with its own CA).
"""

from __future__ import annotations

import functools
import importlib.util
import itertools
import os
import ssl
import urllib.parse
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

import orjson

from synthflow.errors import (
    LLMCertificateError,
    LLMConnectionError,
    LLMError,
    LLMResponseError,
    LLMStatusError,
    LLMTimeoutError,
)
from synthflow.models.callpath.secrets import redact, redact_bytes
from synthflow.models.callpath.secrets import remember as remember_secret

CONNECTIONS_PER_CLIENT = 16

RawResponse = tuple[int, dict[str, str], bytes]


@dataclass(frozen=True, slots=True)
class JSONResponse:
    status: int
    headers: Mapping[str, str]
    data: Any


class _Transport(Protocol):
    async def request(
        self, method: str, url: str, body: bytes | None, headers: dict[str, str]
    ) -> RawResponse:
        """Send one request; raise LLMTimeoutError or LLMConnectionError on transport failure."""
        ...

    async def aclose(self) -> None: ...


def _tls_context() -> ssl.SSLContext:
    return _tls_context_for(os.environ.get("SSL_CERT_FILE"), os.environ.get("SSL_CERT_DIR"))


@functools.cache
def _tls_context_for(cafile: str | None, capath: str | None) -> ssl.SSLContext:
    # One context per CA setting: building one loads the CA bundle (about 25 ms and a few MB),
    # and each of the split clients would otherwise build its own.
    if cafile or capath:
        return ssl.create_default_context(cafile=cafile or None, capath=capath or None)
    try:
        import certifi

        return ssl.create_default_context(cafile=certifi.where())
    except ImportError:  # pragma: no cover - certifi comes with httpx2
        return ssl.create_default_context()


def _env_proxy(scheme: str, host: str) -> str | None:
    """The proxy the environment names for ``scheme://host`` (``HTTPS_PROXY``/``HTTP_PROXY``,
    unless ``NO_PROXY`` covers the host), or None. httpx2 reads the same variables itself."""
    import urllib.request

    if not host or urllib.request.proxy_bypass(host):
        return None
    return urllib.request.getproxies().get(scheme)


def _unverified_certificate(exc: BaseException) -> ssl.SSLCertVerificationError | None:
    """The certificate failure somewhere in ``exc``'s chain, if that is what it is."""
    seen: BaseException | None = exc
    while seen is not None:
        found = getattr(seen, "certificate_error", seen)  # aiohttp keeps it in an attribute
        if isinstance(found, ssl.SSLCertVerificationError):
            return found
        seen = seen.__cause__ or seen.__context__
    return None


def _connection_error(method: str, url: str, exc: BaseException) -> LLMError:
    failure = _unverified_certificate(exc)
    if failure is not None:
        return LLMCertificateError(
            f"{method} {url}: the server's TLS certificate can't be verified "
            f"({failure.verify_message or failure}); if your own CA signs it (a company proxy, a "
            "self-hosted server), point SSL_CERT_FILE at that CA's certificates"
        )
    return LLMConnectionError(
        f"{method} {url} failed: {type(exc).__name__}: {exc or 'connection error'}"
    )


def transport_name() -> str:
    chosen = os.environ.get("SYNTHFLOW_HTTP", "auto")
    if chosen not in ("auto", "httpx2", "aiohttp"):
        raise ValueError(f"SYNTHFLOW_HTTP must be 'httpx2' or 'aiohttp', got {chosen!r}")
    if chosen == "auto":
        return "aiohttp" if importlib.util.find_spec("aiohttp") else "httpx2"
    return chosen


class _Httpx2Transport:
    def __init__(self, tls: ssl.SSLContext | bool, timeout: float, max_connections: int) -> None:
        import httpx2

        self._httpx = httpx2
        self._timeout = timeout
        count = max(1, -(-max_connections // CONNECTIONS_PER_CLIENT))
        per_client = -(-max_connections // count)
        limits = httpx2.Limits(max_connections=per_client, max_keepalive_connections=per_client)
        self._clients = [
            httpx2.AsyncClient(timeout=httpx2.Timeout(timeout), limits=limits, verify=tls)
            for _ in range(count)
        ]
        self._next = itertools.cycle(self._clients)

    async def request(
        self, method: str, url: str, body: bytes | None, headers: dict[str, str]
    ) -> RawResponse:
        try:
            response = await next(self._next).request(method, url, content=body, headers=headers)
        except self._httpx.TimeoutException as exc:
            raise LLMTimeoutError(f"{method} {url} timed out after {self._timeout}s") from exc
        except self._httpx.TransportError as exc:
            raise _connection_error(method, url, exc) from exc
        headers_out = {k.lower(): v for k, v in response.headers.items()}
        return response.status_code, headers_out, response.content

    async def aclose(self) -> None:
        for client in self._clients:
            await client.aclose()


class _AiohttpTransport:
    def __init__(self, tls: ssl.SSLContext | bool, timeout: float, max_connections: int) -> None:
        import aiohttp

        self._aiohttp = aiohttp
        self._timeout = timeout
        self._session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=max_connections, ssl=tls),
            timeout=aiohttp.ClientTimeout(total=timeout),
            auto_decompress=True,
        )
        # Not trust_env=True: with it aiohttp looks the proxy and ~/.netrc up in a worker thread
        # on every request. The environment is read once per URL instead.
        self._proxies: dict[str, str | None] = {}

    async def request(
        self, method: str, url: str, body: bytes | None, headers: dict[str, str]
    ) -> RawResponse:
        aiohttp = self._aiohttp
        if url not in self._proxies:  # a client sends to one or two URLs: parse each once
            parts = urllib.parse.urlsplit(url)
            self._proxies[url] = _env_proxy(parts.scheme, parts.netloc)
        proxy = self._proxies[url]
        try:
            async with self._session.request(
                method, url, data=body, headers=headers, proxy=proxy
            ) as response:
                content = await response.read()
                headers_out = {k.lower(): v for k, v in response.headers.items()}
                return response.status, headers_out, content
        except TimeoutError as exc:
            raise LLMTimeoutError(f"{method} {url} timed out after {self._timeout}s") from exc
        except aiohttp.ClientError as exc:
            raise _connection_error(method, url, exc) from exc

    async def aclose(self) -> None:
        await self._session.close()


class HTTPClient:
    """Sends JSON requests to one endpoint with up to ``max_connections`` connections.

    The transport is created on first use, inside the event loop that uses it. ``secret``: the
    API key the requests carry; an answer that echoes it is redacted (``secrets``).
    """

    def __init__(
        self,
        base_url: str,
        *,
        timeout: float,
        max_connections: int = 256,
        secret: str | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        remember_secret(secret)
        # A server can echo only what it was sent: a success is searched for this key alone.
        self._secret = secret.encode() if secret else None
        self._timeout = timeout
        self._max_connections = max_connections
        self._transport: _Transport | None = None

    def _connect(self) -> _Transport:
        if self._transport is None:
            tls: ssl.SSLContext | bool = (
                _tls_context() if self.base_url.startswith("https") else False
            )
            kind = _AiohttpTransport if transport_name() == "aiohttp" else _Httpx2Transport
            self._transport = kind(tls, self._timeout, self._max_connections)
        return self._transport

    async def post_json(
        self, path: str, payload: Any, headers: Mapping[str, str] | None = None
    ) -> JSONResponse:
        """POST ``payload`` as JSON; return the decoded JSON body of a 2xx answer.

        Raises LLMStatusError (>= 400), LLMTimeoutError, LLMConnectionError, or
        LLMResponseError (2xx with a body that is not JSON).
        """
        send_headers = {"content-type": "application/json", **(headers or {})}
        return await self._send("POST", path, orjson.dumps(payload), send_headers)

    async def get_json(self, path: str, headers: Mapping[str, str] | None = None) -> JSONResponse:
        """GET ``path``; the decoded JSON body of a 2xx answer (errors as ``post_json``)."""
        return await self._send("GET", path, None, dict(headers or {}))

    async def request_bytes(
        self, method: str, path: str, body: bytes | None, headers: Mapping[str, str]
    ) -> bytes:
        """Send ``body`` as it is (a multipart upload, a JSON document built in pieces) and
        return the raw body of a 2xx answer (a JSON Lines download): no JSON decoding."""
        _, (_, _, content) = await self._exchange(method, path, body, dict(headers))
        return content

    async def request_raw(
        self,
        method: str,
        path: str,
        payload: Any = None,
        headers: Mapping[str, str] | None = None,
    ) -> RawResponse:
        """Send ``payload`` (JSON, when given) and return a 2xx answer's status, headers and
        body as bytes, undecoded (an image). Raises as ``post_json`` does."""
        send_headers = dict(headers or {})
        body = None
        if payload is not None:
            send_headers.setdefault("content-type", "application/json")
            body = orjson.dumps(payload)
        _, response = await self._exchange(method, path, body, send_headers)
        return response

    async def _exchange(
        self, method: str, path: str, body: bytes | None, headers: dict[str, str]
    ) -> tuple[str, RawResponse]:
        url = path if path.startswith("http") else f"{self.base_url}{path}"
        try:
            status, response_headers, content = await self._connect().request(
                method, url, body, headers
            )
        except LLMError as exc:
            exc.args = (redact(str(exc)),)
            raise
        # Some servers echo the key they were sent: no secret gets past this line, into an
        # answer, an error, the cache or a row.
        if status >= 400 or (self._secret is not None and self._secret in content):
            content = redact_bytes(content)
        if status >= 400:
            response_headers = {k: redact(v) for k, v in response_headers.items()}
            text = content.decode("utf-8", "replace")
            raise LLMStatusError(
                f"{method} {url} answered {status}: {_excerpt(text)}",
                status_code=status,
                body=text,
                headers=response_headers,
            )
        return url, (status, response_headers, content)

    async def _send(
        self, method: str, path: str, body: bytes | None, headers: dict[str, str]
    ) -> JSONResponse:
        url, (status, response_headers, content) = await self._exchange(method, path, body, headers)
        try:
            data = orjson.loads(content) if content else None
        except orjson.JSONDecodeError as exc:
            raise LLMResponseError(
                f"{method} {url} answered {status} with a body that is not JSON: "
                f"{_excerpt(content.decode('utf-8', 'replace'))}"
            ) from exc
        return JSONResponse(status, response_headers, data)

    async def aclose(self) -> None:
        transport, self._transport = self._transport, None
        if transport is not None:
            await transport.aclose()


def _excerpt(text: str, limit: int = 300) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 3] + "..."
