"""CPU per published event through the API, in process: the cost of the publish path without HTTP or a busy machine.

Opens a runtime on a fresh SQLite file or PostgreSQL database, with one webhook subscription that every event
matches (no worker runs, so nothing is sent), and calls the ASGI app directly with `POST /api/v1/events`:
single events and batches, one request at a time and several at once. This process's CPU time (all its
threads, the SQLite driver's too) over the requests, divided by the events, is the cost per event; it
hardly moves with the machine's load, unlike wall time. PostgreSQL's own CPU is not counted.

Only the app factory and `bench.common`'s database and runtime (`open_runtime`) are used, so the
script also measures older commits: `--code DIR` imports chargewire from another checkout (a worktree of it).
Usage: python -m bench.publish_path [--backend sqlite] [--requests 2000] [--shape 1x1] [--code DIR]
       [--profile out.prof]
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import json
import os
import pstats
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import orjson

EVENT_NAME = "SessionMeterValuesNotification"
# (events per request, requests at once)
SHAPES = ((1, 1), (10, 1), (1, 8), (1000, 1))


class _Client:
    """Calls an ASGI app directly: one HTTP request in, its status and body out."""

    def __init__(self, app: Any, token: str) -> None:
        self._app = app
        self._headers = [(b"authorization", f"Bearer {token}".encode()), (b"content-type", b"application/json")]

    async def post(self, path: str, body: bytes) -> tuple[int, bytes]:
        """POST `body` to `path`; the status and the response body."""
        headers = [*self._headers, (b"content-length", str(len(body)).encode())]
        scope = {
            "type": "http",
            "asgi": {"version": "3.0"},
            "http_version": "1.1",
            "method": "POST",
            "scheme": "http",
            "path": path,
            "raw_path": path.encode(),
            "root_path": "",
            "query_string": b"",
            "headers": headers,
            "client": ("127.0.0.1", 50000),
            "server": ("127.0.0.1", 8000),
        }
        sent = False
        status = 0
        chunks: list[bytes] = []

        async def receive() -> dict[str, Any]:
            nonlocal sent
            if sent:
                await asyncio.Event().wait()  # no disconnect while the request runs
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}

        async def send(message: dict[str, Any]) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            elif message["type"] == "http.response.body":
                chunks.append(message.get("body", b""))

        await self._app(scope, receive, send)
        return status, b"".join(chunks)


async def _drive(client: _Client, body: bytes, requests: int, concurrency: int) -> None:
    remaining = requests

    async def worker() -> None:
        nonlocal remaining
        while remaining > 0:
            remaining -= 1
            status, answer = await client.post("/api/v1/events", body)
            if status != 202:
                raise RuntimeError(f"publish answered {status}: {answer[:300]!r}")

    await asyncio.gather(*(worker() for _ in range(concurrency)))


def _app_factory() -> Any:
    """The checkout's app factory: chargewire.web assembles the app now, chargewire.api.app did before."""
    try:
        from chargewire.web import create_app
    except ModuleNotFoundError:
        from chargewire.api.app import create_app  # type: ignore[no-redef]
    return create_app


def _statement_counter(runtime: Any) -> list[int]:
    """A one-item list counting the statements the runtime's engine executes."""
    from sqlalchemy import event

    count = [0]

    def counted(*_args: Any) -> None:
        count[0] += 1

    event.listen(runtime.database.engine.sync_engine, "before_cursor_execute", counted)
    return count


async def _measure(
    backend: str, requests: int, shapes: list[tuple[int, int]], profile: Path | None
) -> dict[str, dict[str, float]]:
    from bench.common import backend_database, open_runtime
    from chargewire.catalog import load_event_types

    create_app = _app_factory()
    payload = load_event_types()[EVENT_NAME].example
    results: dict[str, dict[str, float]] = {}
    with tempfile.TemporaryDirectory() as workdir, backend_database(backend, Path(workdir)) as url:
        runtime = await open_runtime(url, Path(workdir))
        try:
            app = create_app(runtime)
            token = (await runtime.tokens.create("bench", ["admin"])).text
            client = _Client(app, token)
            subscription = {
                "via": "webhook",
                "notifications": [EVENT_NAME],
                "webhook": {"callbackUrl": "http://127.0.0.1:9/bench-publish-path"},
            }
            status, answer = await client.post("/public-api/notifications/v2.0", orjson.dumps(subscription))
            if status >= 300:
                raise RuntimeError(f"subscribing answered {status}: {answer[:300]!r}")
            statements = _statement_counter(runtime)
            # CPU time of the event loop's thread: waiting (epoll, a SQLite statement in its thread) costs nothing here.
            profiler = cProfile.Profile(time.thread_time) if profile else None
            for per_request, concurrency in shapes:
                body = orjson.dumps(payload if per_request == 1 else [payload] * per_request)
                count = max(20, requests // per_request)
                await _drive(client, body, max(10, count // 10), concurrency)  # warm-up
                statements[0] = 0
                if profiler:
                    profiler.enable()
                cpu_before, wall_before = time.process_time(), time.perf_counter()
                await _drive(client, body, count, concurrency)
                cpu, wall = time.process_time() - cpu_before, time.perf_counter() - wall_before
                if profiler:
                    profiler.disable()
                events = count * per_request
                results[f"batch{per_request}_x{concurrency}"] = {
                    "cpu_us_per_event": round(cpu / events * 1e6, 1),
                    "cpu_us_per_request": round(cpu / count * 1e6, 1),
                    "statements_per_event": round(statements[0] / events, 2),
                    "events_per_s": round(events / wall),
                }
            if profiler and profile:
                profiler.dump_stats(profile)
                pstats.Stats(str(profile)).sort_stats("tottime").print_stats(30)
        finally:
            await runtime.aclose()
    return results


def _commit(checkout: Path) -> str:
    return subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], cwd=checkout, capture_output=True, text=True, check=True
    ).stdout.strip()


def _shape(text: str) -> tuple[int, int]:
    events, _, concurrency = text.partition("x")
    return int(events), int(concurrency or 1)


def main() -> None:
    """Measure on each backend asked for and print the figures as JSON."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--backend", action="append", choices=("sqlite", "postgresql"))
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument(
        "--shape", action="append", help="EVENTSxCONCURRENCY, e.g. 1x1 or 10x1 (default: 1x1, 10x1, 1x8, 1000x1)"
    )
    parser.add_argument("--profile", type=Path, help="write a cProfile of the measured requests here")
    parser.add_argument("--code", type=Path, default=Path.cwd(), help="the checkout whose chargewire is measured")
    args = parser.parse_args()
    # Before anything imports chargewire (or bench.common, which imports it): the checkout measured comes first.
    sys.path.insert(0, str(args.code.resolve()))
    shapes = [_shape(text) for text in args.shape] if args.shape else list(SHAPES)
    figures = {
        backend: asyncio.run(_measure(backend, args.requests, shapes, args.profile))
        for backend in args.backend or ["sqlite"]
    }
    print(json.dumps({"commit": _commit(args.code), "load_average": os.getloadavg(), "results": figures}, indent=2))


if __name__ == "__main__":
    main()
