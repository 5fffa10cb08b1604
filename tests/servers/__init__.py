"""Real HTTP servers on 127.0.0.1 for client tests, scripted by a plain handler function.

``FakeAPI(handler)`` runs a threaded HTTP/1.1 server in the background. The handler receives a
``Request`` and returns a ``Reply`` (status, JSON body or raw bytes, headers, an optional delay),
or ``RESET`` to drop the connection without answering. Every request is recorded in
``api.requests``, and ``api.prompt_counts()`` counts them by the prompt they carry. Each
provider's test module writes the handler that speaks its wire format; ``tests.servers.chat``
speaks OpenAI's chat completions, odd answers included (null content, empty or fewer choices,
refusals, content filters).
"""

from __future__ import annotations

import contextlib
import socket
import ssl
import struct
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import orjson


@dataclass
class Request:
    method: str
    path: str
    headers: dict[str, str]
    body: Any

    @property
    def json(self) -> Any:
        return self.body


@dataclass
class Reply:
    status: int = 200
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0
    raw: bytes | None = None


RESET = object()
Handler = Callable[[Request], "Reply | object"]


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    # The listen backlog: socketserver's default of 5 overflows when a task opens 64 connections
    # at once, and a connection the kernel then drops waits out TCP's retransmission backoff.
    request_queue_size = 256
    connections = 0  # accepted so far, counting TLS handshakes that fail

    def get_request(self) -> tuple[socket.socket, Any]:
        self.connections += 1
        return super().get_request()


class FakeAPI:
    def __init__(
        self,
        handler: Handler,
        tls: ssl.SSLContext | None = None,
        address: tuple[str, int] = ("127.0.0.1", 0),
    ) -> None:
        self.handler = handler
        self.requests: list[Request] = []
        self._lock = threading.Lock()
        api = self

        class _RequestHandler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def _handle(self) -> None:
                length = int(self.headers.get("content-length") or 0)
                raw = self.rfile.read(length) if length else b""
                try:
                    body = orjson.loads(raw) if raw else None
                except orjson.JSONDecodeError:
                    body = raw
                request = Request(
                    self.command, self.path, {k.lower(): v for k, v in self.headers.items()}, body
                )
                with api._lock:
                    api.requests.append(request)
                reply = api.handler(request)
                if reply is RESET:
                    # SO_LINGER 0: close with a TCP RST, as a crashing proxy would.
                    self.connection.setsockopt(
                        socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0)
                    )
                    self.close_connection = True
                    self.connection.close()
                    return
                assert isinstance(reply, Reply)
                if reply.delay:
                    time.sleep(reply.delay)
                payload = reply.raw if reply.raw is not None else orjson.dumps(reply.body)
                self.send_response(reply.status)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(payload)))
                for key, value in reply.headers.items():
                    self.send_header(key, value)
                self.end_headers()
                if self.command == "HEAD":
                    return
                with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                    self.wfile.write(payload)  # fails when the client gave up (a timeout)

            do_POST = _handle
            do_GET = _handle
            do_PUT = _handle  # the Hub's uploads and Argilla's publish and record upserts
            do_PATCH = _handle
            do_DELETE = _handle
            do_HEAD = _handle  # answered with the headers of the GET, and no body

        self._server = _Server(address, _RequestHandler)
        self.port = self._server.server_address[1]
        self.url = f"http://{address[0]}:{self.port}"
        if tls is not None:  # HTTPS with ``tls``'s certificate
            self._server.socket = tls.wrap_socket(self._server.socket, server_side=True)
            self.url = f"https://{address[0]}:{self.port}"
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )

    def start(self) -> FakeAPI:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    @property
    def connections(self) -> int:
        return self._server.connections

    def paths(self) -> list[str]:
        return [r.path for r in self.requests]

    def prompt_counts(self) -> Counter[str]:
        """Requests received per prompt (the text of the last message)."""
        with self._lock:
            return Counter(prompt_of(r) for r in self.requests)


def prompt_of(request: Request) -> str:
    """The text of a chat request's last message: ``messages`` (OpenAI, Anthropic, Cohere,
    Ollama) or ``contents`` (Gemini); "" when there is none."""
    body = request.json if isinstance(request.json, dict) else {}
    turns = body.get("messages") or body.get("contents") or []
    if not turns:
        return ""
    last = turns[-1]
    content = last.get("content", last.get("parts"))
    if isinstance(content, list):
        return "".join(str(p.get("text", "")) for p in content if isinstance(p, dict))
    return str(content or "")


@contextmanager
def fake_api(handler: Handler, tls: ssl.SSLContext | None = None) -> Iterator[FakeAPI]:
    api = FakeAPI(handler, tls).start()
    try:
        yield api
    finally:
        api.stop()


def sequence(*replies: Reply | object) -> Handler:
    """A handler that answers with ``replies`` in turn, repeating the last one."""
    lock = threading.Lock()
    state = {"i": 0}

    def handler(request: Request) -> Reply | object:
        with lock:
            i = min(state["i"], len(replies) - 1)
            state["i"] += 1
        reply = replies[i]
        return reply(request) if callable(reply) else reply

    return handler
