"""CPU per request of the HTTP ingress alone: uvicorn, the middlewares, FastAPI and the publish route, nothing stored.

Serves the app (built on a runtime on a fresh SQLite file) with uvicorn on loopback, in this process, with the
publisher replaced by one that makes ids and stores nothing, so what is left is the per-request cost of the
ingress path: protocol, middlewares, dependency solving, body reading, response. A client in its own process
sends one ~1 KB `POST /api/v1/events` at a time over one keep-alive connection; the server process's CPU time
over the requests, divided by them, is the figure. Measurement only: tests never stub the publisher.

`--code DIR` imports chargewire from another checkout, to compare commits. `--store` keeps the real publisher
(a SQLite write per request, no subscription, so no deliveries): the ingress with its write, as `serve` runs it.
`--deliver` adds one webhook subscription to `bench.receiver` (its own process) and the runtime's worker, as `serve`
runs them: each request is then a publish, its hand-off and the attempt to its record, and a round ends when the
receiver has every delivery; the tasks created per request are counted besides.
With `--profile` the requests run under cProfile, which slows them several times; the figure to read then is
the Python function calls per request, which the machine's load does not move.
Usage: python -m bench.http_ingress [--requests 5000] [--rounds 3] [--code DIR] [--profile out.prof] [--store]
       [--deliver]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import cProfile
import json
import os
import pstats
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import orjson

EVENT_NAME = "SessionMeterValuesNotification"
WARM_UP = 300


class _NoStore:
    """A publisher that answers ids and stores nothing: the ingress path without the publish behind it."""

    def __init__(self) -> None:
        self._next = 0

    async def publish(self, payloads: list[Any]) -> list[str]:
        """One made-up id per payload."""
        self._next += len(payloads)
        return [f"evt_{self._next - i}" for i in range(len(payloads))]


def _uvicorn_config(app: Any, port: int) -> Any:
    """The checkout's own server settings where it has them in one place, else uvicorn's with serve's options."""
    from chargewire.cli import api_server, serving

    make = getattr(api_server, "server_config", None) or getattr(serving, "server_config", None)
    if make is not None:
        return make(app, "127.0.0.1", port)
    import uvicorn

    return uvicorn.Config(app, host="127.0.0.1", port=port, log_level="info", access_log=False, lifespan="off")


def _client(port: int, requests: int, token: str) -> None:
    """Send `requests` publishes over one connection, one at a time, after a warm-up; report on stdout."""
    from chargewire.catalog import load_event_types

    body = orjson.dumps(load_event_types()[EVENT_NAME].example)
    request = (
        f"POST /api/v1/events HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nAuthorization: Bearer {token}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
    ).encode() + body
    with _connected(port) as connection:

        def one() -> None:
            connection.sendall(request)
            answer = b""
            while b"\r\n\r\n" not in answer:
                answer += connection.recv(65536)
            head, _, rest = answer.partition(b"\r\n\r\n")
            if not head.startswith(b"HTTP/1.1 202"):
                raise RuntimeError(f"publish answered {head[:200]!r}")
            length = next(int(line[15:]) for line in head.split(b"\r\n") if line.lower().startswith(b"content-length:"))
            while len(rest) < length:
                rest += connection.recv(65536)

        for _ in range(WARM_UP):
            one()
        print("warm", flush=True)
        sys.stdin.readline()
        for _ in range(requests):
            one()
        print("done", flush=True)


def _connected(port: int) -> socket.socket:
    """A connection to the server, once it listens."""
    for _ in range(200):
        try:
            return socket.create_connection(("127.0.0.1", port))
        except ConnectionRefusedError:
            time.sleep(0.05)
    raise RuntimeError(f"nothing listens on port {port}")


class _Delivering:
    """The runtime's worker delivering to a receiver process, and the tasks the event loop made."""

    def __init__(self, runtime: Any, receiver: Any) -> None:
        self.receiver = receiver
        self.tasks = 0
        self.sent = 0
        self._stop = asyncio.Event()
        dispatcher = runtime.dispatcher()
        self._worker = asyncio.ensure_future(runtime.deliver(dispatcher, self._stop))
        loop = asyncio.get_running_loop()
        factory = loop.get_task_factory()

        def counting(loop: asyncio.AbstractEventLoop, coro: Any, **kwargs: Any) -> asyncio.Future[Any]:
            self.tasks += 1
            return factory(loop, coro, **kwargs) if factory is not None else asyncio.Task(coro, loop=loop, **kwargs)

        loop.set_task_factory(counting)

    async def received(self, count: int) -> None:
        """Once `count` more deliveries than before have reached the receiver."""
        self.sent += count
        deadline = time.monotonic() + 60
        while int((await asyncio.to_thread(self.receiver.stats))["requests"]) < self.sent:
            if time.monotonic() > deadline:
                raise RuntimeError(f"the receiver has fewer than {self.sent} deliveries")
            await asyncio.sleep(0.01)

    async def stop(self) -> None:
        """Stop the worker."""
        self._stop.set()
        await self._worker


async def _measure(
    requests: int, rounds: int, code: Path, profile: Path | None, store: bool, deliver: bool
) -> tuple[list[float], list[float]]:
    from bench.common import server_env
    from bench.receiver import running_receiver
    from chargewire.config import Settings
    from chargewire.devtools.postgres import free_port
    from chargewire.runtime import Runtime
    from chargewire.store import migrate
    from chargewire.store.database import create_database
    from chargewire.web import create_app

    with tempfile.TemporaryDirectory() as workdir, contextlib.ExitStack() as stack:
        receiver = stack.enter_context(running_receiver()) if deliver else None
        url = f"sqlite+aiosqlite:///{Path(workdir) / 'bench.db'}"
        os.environ.update(server_env(url, Path(workdir)))
        database = create_database(url)
        await migrate.upgrade(database)
        await database.aclose()
        runtime = await Runtime.open(Settings())
        figures: list[float] = []
        tasks: list[float] = []
        delivering: _Delivering | None = None
        try:
            if not (store or deliver):
                runtime.publisher = _NoStore()  # type: ignore[assignment]
            owner = await runtime.tokens.create("bench", ["admin"])
            token = owner.text
            if receiver is not None:
                hook = {"via": "webhook", "notifications": [EVENT_NAME], "webhook": {"callbackUrl": receiver.url()}}
                await runtime.subscriptions.create(owner.token, hook)
                delivering = _Delivering(runtime, receiver)
            import uvicorn

            port = free_port()
            server = uvicorn.Server(_uvicorn_config(create_app(runtime), port))
            serving = asyncio.create_task(server.serve())
            profiler = cProfile.Profile(time.thread_time) if profile else None
            for _ in range(rounds):
                made = delivering.tasks if delivering is not None else 0
                figures.append(await _round(port, requests, token, code, profiler, delivering))
                if delivering is not None:
                    tasks.append(round((delivering.tasks - made) / requests, 3))
            if profiler and profile:
                profiler.dump_stats(profile)
            server.should_exit = True
            await serving
            if delivering is not None:
                await delivering.stop()
        finally:
            await runtime.aclose()
    return figures, tasks


async def _round(
    port: int, requests: int, token: str, code: Path, profiler: cProfile.Profile | None, delivering: _Delivering | None
) -> float:
    """One client's run (and, delivering, until the receiver has its requests); the server's CPU µs per request."""
    client = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bench.http_ingress",
        "--client",
        str(port),
        "--requests",
        str(requests),
        "--token",
        token,
        "--code",
        str(code),
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        cwd=Path(__file__).parent.parent,
    )
    assert client.stdin is not None
    assert client.stdout is not None
    await client.stdout.readline()
    if delivering is not None:
        await delivering.received(WARM_UP)
    before = time.process_time()
    if profiler:
        profiler.enable()
    client.stdin.write(b"go\n")
    await client.stdin.drain()
    await client.stdout.readline()
    if delivering is not None:
        await delivering.received(requests)
    if profiler:
        profiler.disable()
    cpu = time.process_time() - before
    await client.wait()
    return round(cpu / requests * 1e6, 1)


def _commit(checkout: Path) -> str:
    return subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], cwd=checkout, capture_output=True, text=True, check=True
    ).stdout.strip()


def _calls_per_request(profile: Path, requests: int) -> float:
    stats = pstats.Stats(str(profile))
    return round(stats.total_calls / requests, 1)  # type: ignore[attr-defined]


def main() -> None:
    """Measure and print the figures as JSON (or, with --client, be the client)."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--requests", type=int, default=5000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--profile", type=Path, help="write a cProfile of the measured requests here")
    parser.add_argument("--code", type=Path, default=Path.cwd(), help="the checkout whose chargewire is measured")
    parser.add_argument("--store", action="store_true", help="keep the real publisher: a SQLite write per request")
    parser.add_argument("--deliver", action="store_true", help="and deliver each event to a receiver process")
    parser.add_argument("--client", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--token", help=argparse.SUPPRESS)
    args = parser.parse_args()
    # Before anything imports chargewire: the checkout measured comes first.
    sys.path.insert(0, str(args.code.resolve()))
    if args.client:
        _client(args.client, args.requests, args.token)
        return
    import uvloop

    measured = _measure(args.requests, args.rounds, args.code, args.profile, args.store, args.deliver)
    figures, tasks = uvloop.run(measured)
    result: dict[str, Any] = {
        "commit": _commit(args.code),
        "store": args.store,
        "deliver": args.deliver,
        "load_average": os.getloadavg(),
    }
    if args.deliver:
        result["tasks_per_request"] = tasks
    if args.profile:
        result["python_calls_per_request"] = _calls_per_request(args.profile, args.requests * args.rounds)
    else:
        result["cpu_us_per_request"] = figures
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
