"""An OpenAI-compatible mock LLM server that costs almost no CPU.

It shares a small machine with the client being measured, so it speaks HTTP/1.1 (keep-alive,
``Content-Length`` bodies) straight from an ``asyncio.Protocol``: no framework, no task per
request. A delayed response is a ``loop.call_later`` timer, which is what ``asyncio.sleep`` would
cost without the task around it.

Run it as a process::

    python benchmarks/mock_llm_server.py --port 0 --latency 0.2 --max-inflight 64

It prints exactly one line, ``LISTENING <port>``, once it accepts connections, and stops cleanly
on SIGTERM or SIGINT. From Python, ``running_server(latency=0.2)`` starts it and yields the base
URL (``http://127.0.0.1:PORT/v1``).

Endpoints:

- ``POST /v1/chat/completions``: a ``chat.completion`` with ``n`` choices whose content is derived
  from the prompt alone, so equal prompts give equal answers. ``max_tokens`` (or
  ``max_completion_tokens``) cuts the answer to that many words, with ``finish_reason`` "length";
  otherwise it is "stop".
- ``GET /v1/models``, ``GET /health``.
- ``GET /stats``: counters; ``POST /stats/reset`` zeroes them.

Fault injection draws one number per admitted request from ``random.Random(seed)``, so a given
arrival order always meets the same faults. Requests arriving while ``max_inflight`` are already in
flight get 429 at once; a 500 or a malformed body comes after the configured latency, as from a
real server.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import hashlib
import random
import selectors
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import orjson

_MAX_HEAD_BYTES = 64 * 1024
_MAX_BODY_BYTES = 16 * 1024 * 1024
_MAX_CHOICES = 128
_ANSWER_WORDS = 12

_REASONS = {
    200: "OK",
    400: "Bad Request",
    404: "Not Found",
    405: "Method Not Allowed",
    411: "Length Required",
    413: "Content Too Large",
    429: "Too Many Requests",
    431: "Request Header Fields Too Large",
    500: "Internal Server Error",
}
_MALFORMED_BODY = b'{"id": "chatcmpl-mock-malformed", "object": "chat.completion", "choices": [{'


@dataclasses.dataclass(frozen=True, slots=True)
class ServerOptions:
    """How the mock server behaves; every field is also a command-line option."""

    host: str = "127.0.0.1"
    port: int = 0
    latency: float = 0.0
    max_inflight: int | None = None
    retry_after: float | None = None
    error_rate: float = 0.0
    malformed_rate: float = 0.0
    seed: int = 0
    rate_limit_headers: bool = False

    def __post_init__(self) -> None:
        if self.latency < 0:
            raise ValueError("latency must be >= 0")
        if self.max_inflight is not None and self.max_inflight < 1:
            raise ValueError("max_inflight must be >= 1")
        if not 0.0 <= self.error_rate <= 1.0 or not 0.0 <= self.malformed_rate <= 1.0:
            raise ValueError("error_rate and malformed_rate must be within [0, 1]")
        if self.error_rate + self.malformed_rate > 1.0:
            raise ValueError("error_rate + malformed_rate must be <= 1")

    def to_argv(self) -> list[str]:
        argv = [
            f"--host={self.host}",
            f"--port={self.port}",
            f"--latency={self.latency!r}",
            f"--error-rate={self.error_rate!r}",
            f"--malformed-rate={self.malformed_rate!r}",
            f"--seed={self.seed}",
        ]
        if self.max_inflight is not None:
            argv.append(f"--max-inflight={self.max_inflight}")
        if self.retry_after is not None:
            argv.append(f"--retry-after={self.retry_after!r}")
        if self.rate_limit_headers:
            argv.append("--rate-limit-headers")
        return argv


@dataclasses.dataclass(slots=True)
class _Request:
    method: str
    path: str
    keep_alive: bool
    body: bytes = b""


@dataclasses.dataclass(slots=True)
class _Response:
    status: int
    body: bytes
    headers: list[tuple[str, str]] = dataclasses.field(default_factory=list)
    content_type: str = "application/json"
    delay: float = 0.0
    close: bool = False
    # Called exactly once: when the response is written, or when its connection is lost first.
    on_done: Callable[[], None] | None = None


@dataclasses.dataclass(slots=True)
class _Stats:
    requests: int = 0
    status_200: int = 0
    status_400: int = 0
    status_429: int = 0
    status_500: int = 0
    malformed: int = 0
    inflight: int = 0
    max_inflight: int = 0
    connections_opened: int = 0


def _error_body(message: str, kind: str, code: str | None = None) -> bytes:
    return orjson.dumps({"error": {"message": message, "type": kind, "param": None, "code": code}})


def _message_text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):  # content parts: [{"type": "text", "text": ...}, ...]
        return " ".join(
            part.get("text", "") for part in content if isinstance(part, dict) and "text" in part
        )
    return ""


def completion_text(messages: list[dict[str, Any]], index: int = 0) -> str:
    """The answer the server gives for ``messages`` in choice ``index`` (before ``max_tokens``)."""
    texts = [_message_text(m.get("content")) for m in messages if isinstance(m, dict)]
    digest = hashlib.blake2b("\n".join(texts).encode(), digest_size=6).hexdigest()
    echo = " ".join((texts[-1] if texts else "").split()[:_ANSWER_WORDS])
    return f"mock-{digest}-{index}: {echo}".rstrip()


class _MockLLM:
    """Routing, counters and fault injection; knows nothing about sockets."""

    def __init__(self, options: ServerOptions) -> None:
        self.options = options
        self.stats = _Stats()
        self._rng = random.Random(options.seed)
        self._ids = 0

    def handle(self, request: _Request) -> _Response:
        path = request.path.partition("?")[0]
        if path in ("/v1/chat/completions", "/chat/completions"):
            if request.method != "POST":
                return self._method_not_allowed()
            return self._chat_completion(request.body)
        if path == "/health":
            return _Response(200, b'{"status":"ok"}')
        if path == "/stats":
            return _Response(200, orjson.dumps(self.stats_dict()))
        if path == "/stats/reset":
            if request.method != "POST":
                return self._method_not_allowed()
            inflight = self.stats.inflight
            self.stats = _Stats(inflight=inflight, max_inflight=inflight)
            return _Response(200, orjson.dumps(self.stats_dict()))
        if path in ("/v1/models", "/models"):
            return _Response(200, b'{"object":"list","data":[{"id":"mock","object":"model"}]}')
        return _Response(404, _error_body(f"no route for {path}", "invalid_request_error"))

    def stats_dict(self) -> dict[str, Any]:
        # cpu_seconds lets a benchmark charge the server's own CPU separately from the client's.
        return {**dataclasses.asdict(self.stats), "cpu_seconds": time.process_time()}

    def _method_not_allowed(self) -> _Response:
        return _Response(405, _error_body("method not allowed", "invalid_request_error"))

    def _chat_completion(self, body: bytes) -> _Response:
        stats, options = self.stats, self.options
        stats.requests += 1
        if options.max_inflight is not None and stats.inflight >= options.max_inflight:
            stats.status_429 += 1
            headers = self._rate_limit_headers()
            if options.retry_after is not None:
                headers.append(("retry-after", f"{options.retry_after:g}"))
            message = f"Rate limit reached: {options.max_inflight} requests in flight"
            body = _error_body(message, "requests", "rate_limit_exceeded")
            return _Response(429, body, headers)

        try:
            payload = orjson.loads(body)
            if not isinstance(payload, dict) or not isinstance(payload.get("messages"), list):
                raise ValueError("'messages' must be a list")
            completion = self._completion(payload)
        except (ValueError, TypeError) as exc:
            stats.status_400 += 1
            return _Response(400, _error_body(str(exc), "invalid_request_error"))

        draw = self._rng.random()
        stats.inflight += 1
        stats.max_inflight = max(stats.max_inflight, stats.inflight)
        headers = self._rate_limit_headers()
        if draw < options.error_rate:
            stats.status_500 += 1
            response = _Response(500, _error_body("mock server error", "server_error"), headers)
        elif draw < options.error_rate + options.malformed_rate:
            stats.malformed += 1
            response = _Response(200, _MALFORMED_BODY, headers)
        else:
            stats.status_200 += 1
            response = _Response(200, orjson.dumps(completion), headers)
        response.delay = options.latency
        response.on_done = self._request_done
        return response

    def _request_done(self) -> None:
        self.stats.inflight -= 1

    def _completion(self, payload: dict[str, Any]) -> dict[str, Any]:
        messages: list[dict[str, Any]] = payload["messages"]
        n = payload.get("n") or 1
        if not isinstance(n, int) or not 1 <= n <= _MAX_CHOICES:
            raise ValueError(f"'n' must be an integer in [1, {_MAX_CHOICES}]")
        max_tokens = payload.get("max_completion_tokens") or payload.get("max_tokens")
        if max_tokens is not None and (not isinstance(max_tokens, int) or max_tokens < 1):
            raise ValueError("'max_tokens' must be a positive integer")

        choices = []
        completion_tokens = 0
        for index in range(n):
            words = completion_text(messages, index).split()
            finish_reason = "stop"
            if max_tokens is not None and len(words) > max_tokens:
                words, finish_reason = words[:max_tokens], "length"
            completion_tokens += len(words)
            choices.append(
                {
                    "index": index,
                    "message": {"role": "assistant", "content": " ".join(words)},
                    "logprobs": None,
                    "finish_reason": finish_reason,
                }
            )
        prompt_tokens = sum(
            len(_message_text(m.get("content")).split()) for m in messages if isinstance(m, dict)
        )
        self._ids += 1
        return {
            "id": f"chatcmpl-mock-{self._ids}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": str(payload.get("model") or "mock"),
            "choices": choices,
            "usage": {
                "prompt_tokens": prompt_tokens,
                "completion_tokens": completion_tokens,
                "total_tokens": prompt_tokens + completion_tokens,
            },
        }

    def _rate_limit_headers(self) -> list[tuple[str, str]]:
        if not self.options.rate_limit_headers:
            return []
        limit = self.options.max_inflight or 10_000
        reset_ms = max(1, round(self.options.latency * 1000))
        return [
            ("x-ratelimit-limit-requests", str(limit)),
            ("x-ratelimit-remaining-requests", str(max(0, limit - self.stats.inflight))),
            ("x-ratelimit-reset-requests", f"{reset_ms}ms"),
        ]


class _HTTPConnection(asyncio.Protocol):
    """One keep-alive connection; at most one request is answered at a time, in order."""

    def __init__(self, app: _MockLLM, connections: set[_HTTPConnection]) -> None:
        self._app = app
        self._connections = connections
        self._transport: asyncio.Transport | None = None
        self._buffer = bytearray()
        self._head: tuple[str, str, bool, int] | None = None  # parsed head awaiting its body
        self._pending: _Response | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._closing = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self._transport = transport
        self._connections.add(self)
        self._app.stats.connections_opened += 1

    def connection_lost(self, exc: Exception | None) -> None:
        self._closing = True
        self._connections.discard(self)
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._pending is not None and self._pending.on_done is not None:
            self._pending.on_done()
        self._pending = None

    def data_received(self, data: bytes) -> None:
        self._buffer += data
        self._serve_buffered()

    def close(self) -> None:
        if self._transport is not None:
            self._transport.close()

    def _serve_buffered(self) -> None:
        while self._pending is None and not self._closing:
            request = self._next_request()
            if request is None:
                return
            response = self._app.handle(request)
            keep_alive = request.keep_alive and not response.close
            if response.delay > 0:
                self._pending = response
                loop = asyncio.get_running_loop()
                self._timer = loop.call_later(response.delay, self._send_pending, keep_alive)
            else:
                self._send(response, keep_alive)

    def _send_pending(self, keep_alive: bool) -> None:
        response, self._pending, self._timer = self._pending, None, None
        assert response is not None
        self._send(response, keep_alive)
        self._serve_buffered()

    def _next_request(self) -> _Request | None:
        if self._head is None:
            end = self._buffer.find(b"\r\n\r\n")
            if end < 0:
                if len(self._buffer) > _MAX_HEAD_BYTES:
                    self._reject(431, "request head too large")
                return None
            head = bytes(self._buffer[:end]).decode("latin-1")
            del self._buffer[: end + 4]
            self._head = self._parse_head(head)
            if self._head is None:
                return None
        method, path, keep_alive, length = self._head
        if len(self._buffer) < length:
            return None
        body = bytes(self._buffer[:length])
        del self._buffer[:length]
        self._head = None
        return _Request(method, path, keep_alive, body)

    def _parse_head(self, head: str) -> tuple[str, str, bool, int] | None:
        request_line, *header_lines = head.split("\r\n")
        parts = request_line.split(" ")
        if len(parts) != 3 or not parts[2].startswith("HTTP/1."):
            self._reject(400, "malformed request line")
            return None
        method, path, version = parts
        headers: dict[str, str] = {}
        for line in header_lines:
            name, sep, value = line.partition(":")
            if not sep:
                self._reject(400, "malformed header line")
                return None
            headers[name.strip().lower()] = value.strip()
        if "transfer-encoding" in headers:
            self._reject(411, "send a Content-Length body; chunked bodies are not supported")
            return None
        try:
            length = int(headers.get("content-length", "0"))
        except ValueError:
            length = -1
        if length < 0:
            self._reject(400, "invalid Content-Length")
            return None
        if length > _MAX_BODY_BYTES:
            self._reject(413, "request body too large")
            return None
        if length and headers.get("expect", "").lower() == "100-continue":  # curl, large bodies
            assert self._transport is not None
            self._transport.write(b"HTTP/1.1 100 Continue\r\n\r\n")
        connection = headers.get("connection", "").lower()
        if version == "HTTP/1.0":
            keep_alive = "keep-alive" in connection
        else:
            keep_alive = "close" not in connection
        return method, path, keep_alive, length

    def _reject(self, status: int, message: str) -> None:
        """Answer a request that cannot be framed, then close: the byte stream is unusable."""
        self._send(_Response(status, _error_body(message, "invalid_request_error")), False)

    def _send(self, response: _Response, keep_alive: bool) -> None:
        if response.on_done is not None:
            response.on_done()
        transport = self._transport
        if transport is None or self._closing:
            return
        lines = [
            f"HTTP/1.1 {response.status} {_REASONS[response.status]}",
            f"content-type: {response.content_type}",
            f"content-length: {len(response.body)}",
        ]
        lines.extend(f"{name}: {value}" for name, value in response.headers)
        if not keep_alive:
            lines.append("connection: close")
        head = "\r\n".join(lines).encode("latin-1") + b"\r\n\r\n"
        transport.write(head + response.body)
        if not keep_alive:
            self._closing = True
            transport.close()


async def serve(options: ServerOptions, on_ready: Callable[[int], None] | None = None) -> None:
    """Serve until SIGTERM or SIGINT; ``on_ready`` gets the bound port once it is accepting."""
    loop = asyncio.get_running_loop()
    app = _MockLLM(options)
    connections: set[_HTTPConnection] = set()
    server = await loop.create_server(
        lambda: _HTTPConnection(app, connections),
        options.host,
        options.port,
        reuse_address=True,
        backlog=1024,
    )
    stop = asyncio.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    try:
        port: int = server.sockets[0].getsockname()[1]
        if on_ready is not None:
            on_ready(port)
        await stop.wait()
    finally:
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(signum)
        server.close()
        for connection in list(connections):
            connection.close()
        await server.wait_closed()


def _announce(port: int) -> None:
    sys.stdout.write(f"LISTENING {port}\n")
    sys.stdout.flush()


def _probability(text: str) -> float:
    value = float(text)
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError("must be within [0, 1]")
    return value


def parse_args(argv: list[str] | None = None) -> ServerOptions:
    parser = argparse.ArgumentParser(description=(__doc__ or "").partition("\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port")
    parser.add_argument("--latency", type=float, default=0.0, help="seconds before answering")
    parser.add_argument("--max-inflight", type=int, default=None, help="429 beyond this many")
    parser.add_argument("--retry-after", type=float, default=None, help="retry-after on 429s")
    parser.add_argument("--error-rate", type=_probability, default=0.0, help="fraction of 500s")
    parser.add_argument("--malformed-rate", type=_probability, default=0.0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--rate-limit-headers", action="store_true")
    args = parser.parse_args(argv)
    try:
        return ServerOptions(**vars(args))
    except ValueError as exc:
        parser.error(str(exc))


def main(argv: list[str] | None = None) -> None:
    asyncio.run(serve(parse_args(argv), on_ready=_announce))


def start_server_process(
    *, startup_timeout: float = 10.0, **opts: Any
) -> tuple[subprocess.Popen[bytes], int]:
    """Start the server in a child process and return it with its port.

    ``opts`` are the fields of ``ServerOptions``. The caller owns the process: terminate it, or
    use ``running_server``.
    """
    options = ServerOptions(**opts)
    script = str(Path(__file__).resolve())
    process = subprocess.Popen(
        [sys.executable, script, *options.to_argv()],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
    )
    assert process.stdout is not None
    try:
        with selectors.DefaultSelector() as selector:
            selector.register(process.stdout, selectors.EVENT_READ)
            if not selector.select(startup_timeout):
                raise TimeoutError(f"mock server did not start within {startup_timeout}s")
        line = process.stdout.readline().decode()
        if not line.startswith("LISTENING "):
            raise RuntimeError(f"mock server exited with {process.wait()} before listening")
        return process, int(line.split()[1])
    except BaseException:
        stop_server_process(process)
        raise


def stop_server_process(process: subprocess.Popen[bytes], timeout: float = 5.0) -> None:
    """SIGTERM, then SIGKILL if it has not exited within ``timeout`` seconds."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    if process.stdout is not None:
        process.stdout.close()


@contextlib.contextmanager
def running_server(**opts: Any) -> Iterator[str]:
    """Run the server for the ``with`` block and yield its base URL, ``http://HOST:PORT/v1``.

    Takes the same keyword arguments as ``start_server_process``.
    """
    process, port = start_server_process(**opts)
    host = opts.get("host", "127.0.0.1")
    if host in ("0.0.0.0", "::", ""):
        host = "127.0.0.1"
    try:
        yield f"http://{host}:{port}/v1"
    finally:
        stop_server_process(process)


def _server_root(base_url: str) -> str:
    return base_url.rstrip("/").removesuffix("/v1")


def fetch_stats(base_url: str) -> dict[str, Any]:
    """The server's counters (blocking; call it outside the event loop or in a thread)."""
    with urllib.request.urlopen(f"{_server_root(base_url)}/stats", timeout=10) as response:
        stats: dict[str, Any] = orjson.loads(response.read())
    return stats


def reset_stats(base_url: str) -> dict[str, Any]:
    """Zero the server's counters (the in-flight count stays live) and return them."""
    request = urllib.request.Request(f"{_server_root(base_url)}/stats/reset", method="POST")
    with urllib.request.urlopen(request, timeout=10) as response:
        stats: dict[str, Any] = orjson.loads(response.read())
    return stats


if __name__ == "__main__":
    main()
