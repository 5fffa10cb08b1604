"""Client CPU per request of async HTTP stacks, against the mock LLM server.

Each (stack, concurrency) cell runs in a fresh child process: ``concurrency`` workers each keep
one chat-completion request in flight until ``requests`` have been sent (no batch barrier), after a
warm-up round that opens every connection. The child measures its own ``time.process_time()``
(the server is another process, see ``mock_llm_server.py``) and wall time; the server's ``/stats``
tell how many requests really were in flight at once.

    python benchmarks/http_stack.py            # full grid, JSON list on stdout
    python benchmarks/http_stack.py --quick    # 64 and 256 in flight, 2 samples

Progress and a readable table go to stderr.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import importlib
import itertools
import json
import statistics
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from mock_llm_server import fetch_stats, reset_stats, running_server

# "-x8": 8 clients, each worker bound to one; "-rr16": clients of 16 connections, one per request
# in turn (synthflow.models.callpath._http's scheme).
STACKS = ("httpx", "httpx2", "aiohttp", "httpx-x8", "httpx2-x8", "httpx2-rr16")
PAYLOAD = {
    "model": "mock",
    "messages": [
        {"role": "system", "content": "You are a concise assistant."},
        {"role": "user", "content": "Write a haiku about load testing an HTTP client."},
    ],
    "max_tokens": 64,
    "temperature": 0.7,
}

# post(slot, payload) -> parsed JSON body; ``slot`` is the worker's index.
Post = Callable[[int, dict[str, Any]], Awaitable[Any]]


@contextlib.asynccontextmanager
async def _httpx_like(
    module_name: str, url: str, concurrency: int, clients: int, per_request: bool
) -> AsyncIterator[Post]:
    """httpx or httpx2 (same API) with the connections split evenly over ``clients`` clients.

    Worker ``slot`` always uses client ``slot % clients``; with ``per_request`` the clients are
    instead taken in turn for each request, as ``synthflow.models.callpath._http`` does.
    """
    module = importlib.import_module(module_name)
    per_client = -(-concurrency // clients)
    limits = module.Limits(max_connections=per_client, max_keepalive_connections=per_client)
    turns = itertools.count()
    async with contextlib.AsyncExitStack() as stack:
        pool = [
            await stack.enter_async_context(
                module.AsyncClient(base_url=url, limits=limits, timeout=30.0)
            )
            for _ in range(clients)
        ]

        async def post(slot: int, payload: dict[str, Any]) -> Any:
            index = next(turns) if per_request else slot
            response = await pool[index % clients].post("/chat/completions", json=payload)
            response.raise_for_status()
            return response.json()

        yield post


@contextlib.asynccontextmanager
async def _aiohttp(url: str, concurrency: int) -> AsyncIterator[Post]:
    import aiohttp

    endpoint = f"{url}/chat/completions"
    connector = aiohttp.TCPConnector(limit=concurrency, limit_per_host=concurrency)
    timeout = aiohttp.ClientTimeout(total=30.0)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:

        async def post(slot: int, payload: dict[str, Any]) -> Any:
            async with session.post(endpoint, json=payload) as response:
                response.raise_for_status()
                return await response.json()

        yield post


def _open_stack(
    name: str, url: str, concurrency: int
) -> contextlib.AbstractAsyncContextManager[Post]:
    if name == "aiohttp":
        return _aiohttp(url, concurrency)
    module_name, _, split = name.partition("-")
    if split.startswith("rr"):  # clients of at most N connections, taken in turn per request
        clients = -(-concurrency // int(split.removeprefix("rr")))
        return _httpx_like(module_name, url, concurrency, clients, per_request=True)
    clients = int(split.removeprefix("x")) if split else 1
    return _httpx_like(module_name, url, concurrency, clients, per_request=False)


async def _drive(post: Post, concurrency: int, requests: int) -> None:
    remaining = requests

    async def worker(slot: int) -> None:
        nonlocal remaining
        while remaining > 0:
            remaining -= 1
            body = await post(slot, PAYLOAD)
            if not body["choices"]:
                raise RuntimeError("empty completion")

    async with asyncio.TaskGroup() as group:
        for slot in range(min(concurrency, requests)):
            group.create_task(worker(slot))


async def _measure(
    stack: str, url: str, concurrency: int, requests: int, repeat: int
) -> list[dict[str, float]]:
    samples = []
    async with _open_stack(stack, url, concurrency) as post:
        await _drive(post, concurrency, concurrency)  # opens every connection
        for _ in range(repeat):
            await asyncio.to_thread(reset_stats, url)
            gc.collect()
            cpu, wall = time.process_time(), time.perf_counter()
            await _drive(post, concurrency, requests)
            cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
            server = await asyncio.to_thread(fetch_stats, url)
            if server["requests"] != requests:
                raise RuntimeError(f"server saw {server['requests']} requests, not {requests}")
            samples.append(
                {
                    "cpu_s": cpu,
                    "wall_s": wall,
                    "server_max_inflight": server["max_inflight"],
                    "server_requests": server["requests"],
                    "server_connections_opened": server["connections_opened"],
                }
            )
    return samples


def _run_cell(
    stack: str, url: str, concurrency: int, requests: int, repeat: int, latency: float
) -> dict[str, Any]:
    command = [
        sys.executable,
        str(Path(__file__).resolve()),
        "--child",
        stack,
        f"--url={url}",
        f"--concurrency={concurrency}",
        f"--requests={requests}",
        f"--repeat={repeat}",
    ]
    server_cpu = fetch_stats(url)["cpu_seconds"]
    child = subprocess.run(command, check=True, stdout=subprocess.PIPE, text=True)
    server_cpu = fetch_stats(url)["cpu_seconds"] - server_cpu
    samples: list[dict[str, float]] = json.loads(child.stdout)

    cpu_ms = [1000 * s["cpu_s"] / requests for s in samples]
    rps = [requests / s["wall_s"] for s in samples]
    ideal = concurrency / latency
    total_requests = (repeat * requests) + concurrency
    return {
        "stack": stack,
        "concurrency": concurrency,
        "requests": requests,
        "repeat": repeat,
        "cpu_ms_per_request": round(statistics.median(cpu_ms), 3),
        "cpu_ms_per_request_min": round(min(cpu_ms), 3),
        "cpu_ms_per_request_max": round(max(cpu_ms), 3),
        "requests_per_s": round(statistics.median(rps), 1),
        "ideal_requests_per_s": round(ideal, 1),
        "achieved_over_ideal": round(statistics.median(rps) / ideal, 3),
        "server_max_inflight": min(int(s["server_max_inflight"]) for s in samples),
        # Opened after the warm-up, less the /stats request's own: a pool that keeps reconnecting.
        "new_connections": max(int(s["server_connections_opened"]) - 1 for s in samples),
        "server_cpu_ms_per_request": round(1000 * server_cpu / total_requests, 3),
    }


def _table(results: list[dict[str, Any]]) -> str:
    lines = [
        "| stack | in flight | CPU ms/req | req/s | achieved/ideal | max in flight seen "
        "| new connections |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    lines += [
        f"| {r['stack']} | {r['concurrency']} | {r['cpu_ms_per_request']:.3f} "
        f"| {r['requests_per_s']:.0f} | {r['achieved_over_ideal']:.2f} "
        f"| {r['server_max_inflight']} | {r['new_connections']} |"
        for r in results
    ]
    return "\n".join(lines)


def _parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").partition("\n")[0])
    parser.add_argument("--stacks", default=",".join(STACKS), help="comma-separated")
    parser.add_argument("--concurrency", default="64,128,256", help="comma-separated")
    parser.add_argument("--requests", type=int, default=None, help="default: max(512, 4 x c)")
    parser.add_argument("--latency", type=float, default=0.2)
    parser.add_argument("--repeat", type=int, default=5, help="samples per cell (median shown)")
    parser.add_argument("--quick", action="store_true", help="64 and 256 in flight, 2 samples")
    parser.add_argument("--child", choices=STACKS, help=argparse.SUPPRESS)
    parser.add_argument("--url", help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = _parse_args(argv)
    if args.child:
        samples = asyncio.run(
            _measure(args.child, args.url, int(args.concurrency), args.requests, args.repeat)
        )
        print(json.dumps(samples))
        return

    stacks = args.stacks.split(",")
    unknown = set(stacks) - set(STACKS)
    if unknown:
        raise SystemExit(f"unknown stacks: {sorted(unknown)}; choose from {STACKS}")
    grid = [int(c) for c in args.concurrency.split(",")]
    repeat = args.repeat
    if args.quick:
        grid, repeat = [64, 256], 2

    results = []
    with running_server(latency=args.latency) as url:
        for concurrency in grid:
            requests = args.requests or max(512, 4 * concurrency)
            for stack in stacks:
                result = _run_cell(stack, url, concurrency, requests, repeat, args.latency)
                print(_table([result]).splitlines()[-1], file=sys.stderr, flush=True)
                results.append(result)
    print(_table(results), file=sys.stderr)
    print(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
