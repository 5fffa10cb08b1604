"""A stand-in for vLLM's OpenAI-compatible server, run as its own process.

``python -m tests.servers.openai_server --model M --host H --port P [--record FILE]
[--delay S] [vLLM's flags...]`` serves ``GET /v1/models`` (the one model ``M``) and
``POST /v1/chat/completions`` (``tests.servers.chat.completion``'s answers, after ``delay``
seconds) and ``POST /v1/completions`` (raw prompts, as Magpie sends: a text that says how long
the prompt was); a request for another model gets vLLM's 404. Flags it doesn't know (``--dtype``...)
are taken and ignored, as a model server started by ``synthflow.distributed.model_servers``
is given them. With ``--record``, it appends one JSON line per event to ``FILE``: ``start``
(its pid, its parent's and its argv) and ``request`` (the path, the body, and the requests in
flight at its arrival, this one included).

With ``--die-at N --die-once FILE``, the process kills itself (SIGKILL) on its N-th request,
unless ``FILE`` exists, which it creates first: a server that dies mid-run once, and then,
started again, serves on. With ``--kill-parent`` too, it kills the process that started it
instead (a model server's actor), and dies with it.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import threading
import time
from typing import Any

import orjson

from tests.servers import FakeAPI, Reply, Request
from tests.servers.chat import completion


class _Recorder:
    def __init__(self, path: str | None) -> None:
        self.path = path
        self.lock = threading.Lock()
        self.in_flight = 0

    def write(self, event: dict[str, Any]) -> None:
        if self.path is None:
            return
        with open(self.path, "ab") as out:  # one write per line: readers never see half of one
            out.write(orjson.dumps(event) + b"\n")


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", required=True)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--record")
    parser.add_argument("--delay", type=float, default=0.0)
    parser.add_argument("--die-at", type=int)
    parser.add_argument("--die-once")
    parser.add_argument("--kill-parent", action="store_true")
    args, _ = parser.parse_known_args(argv)
    recorder = _Recorder(args.record)
    received = 0

    def handler(request: Request) -> Reply:
        if request.method == "GET" and request.path.rstrip("/") == "/v1/models":
            return Reply(body={"object": "list", "data": [{"id": args.model, "object": "model"}]})
        body = request.json if isinstance(request.json, dict) else {}
        if body.get("model") != args.model:
            message = f"The model `{body.get('model')}` does not exist."
            return Reply(404, {"error": {"message": message, "code": 404}})
        nonlocal received
        with recorder.lock:
            received += 1
            if received == args.die_at and not os.path.exists(args.die_once):
                open(args.die_once, "x").close()
                # As the OOM killer would: no goodbye.
                os.kill(os.getppid() if args.kill_parent else os.getpid(), signal.SIGKILL)
            recorder.in_flight += 1
            recorder.write(
                {
                    "event": "request",
                    "path": request.path,
                    "body": body,
                    "in_flight": recorder.in_flight,
                    "port": args.port,
                }
            )
        try:
            time.sleep(args.delay)
            if request.path.rstrip("/") == "/v1/completions":
                return _raw_completion(body)
            return completion(request)
        finally:
            with recorder.lock:
                recorder.in_flight -= 1

    FakeAPI(handler, address=(args.host, args.port)).start()
    recorder.write({"event": "start", "pid": os.getpid(), "ppid": os.getppid(), "argv": argv})
    threading.Event().wait()  # serves until it is signalled


def _raw_completion(body: dict[str, Any]) -> Reply:
    text = f"a question after a prompt of {len(str(body.get('prompt')))} characters"
    choices = [
        {"index": i, "text": f"{text} ({i})", "finish_reason": "stop"}
        for i in range(body.get("n", 1))
    ]
    usage = {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15}
    return Reply(body={"object": "text_completion", "choices": choices, "usage": usage})


if __name__ == "__main__":
    main(sys.argv[1:])
