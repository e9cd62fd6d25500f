"""A real HTTP receiver on loopback that records every request and answers as a test tells it to."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web


@dataclass(frozen=True)
class Received:
    """One request as the receiver saw it."""

    path: str
    headers: dict[str, str]
    body: bytes
    at: float


@dataclass(frozen=True)
class Reply:
    """How to answer: status, headers, and how long to wait first (or until when: `held`, once set)."""

    status: int = 202
    headers: dict[str, str] = field(default_factory=dict)
    delay_s: float = 0.0
    held: asyncio.Event | None = None


Behaviour = Callable[[Received, int], Reply]


def always(status: int = 202, delay_s: float = 0.0, held: asyncio.Event | None = None) -> Behaviour:
    """Answer every request the same way."""
    return lambda _request, _count: Reply(status=status, delay_s=delay_s, held=held)


def in_turn(*replies: Reply) -> Behaviour:
    """Answer the n-th request on a path with the n-th reply, and repeat the last one after that."""
    return lambda _request, count: replies[min(count, len(replies) - 1)]


class Receiver:
    """Records requests per path; each path can behave differently (`/slow`, `/ok`, ...)."""

    def __init__(self) -> None:
        self.requests: list[Received] = []
        self._behaviours: dict[str, Behaviour] = {}
        self._counts: dict[str, int] = {}
        self._arrived = asyncio.Condition()
        self._runner: web.AppRunner | None = None
        self.port = 0

    def on(self, path: str, behaviour: Behaviour) -> str:
        """Make `path` answer with `behaviour`; returns the full URL to subscribe."""
        self._behaviours[path] = behaviour
        return self.url(path)

    def url(self, path: str) -> str:
        """The URL of a path on this receiver."""
        return f"http://127.0.0.1:{self.port}{path}"

    def arrived(self, path: str) -> int:
        """How many requests reached `path`, answered or still waiting for their reply."""
        return self._counts.get(path, 0)

    def on_path(self, path: str) -> list[Received]:
        """The requests that reached `path`, in arrival order."""
        return [request for request in self.requests if request.path == path]

    async def wait_for(self, count: int, path: str | None = None, timeout_s: float = 30) -> list[Received]:
        """Wait until at least `count` requests arrived (on `path`, if given)."""

        def enough() -> bool:
            return len(self.on_path(path) if path else self.requests) >= count

        async with self._arrived:
            await asyncio.wait_for(self._arrived.wait_for(enough), timeout_s)
        return self.on_path(path) if path else list(self.requests)

    async def _handle(self, request: web.Request) -> web.Response:
        received = Received(request.path, dict(request.headers), await request.read(), time.monotonic())
        count = self._counts.get(request.path, 0)
        self._counts[request.path] = count + 1
        reply = self._behaviours.get(request.path, always())(received, count)
        if reply.delay_s:
            await asyncio.sleep(reply.delay_s)
        if reply.held is not None:
            await reply.held.wait()
        self.requests.append(received)
        async with self._arrived:
            self._arrived.notify_all()
        return web.Response(status=reply.status, headers=reply.headers, text="ok")

    async def start(self) -> None:
        """Listen on a free loopback port."""
        self._runner = await serve_posts_on_loopback(self._handle)
        self.port = self._runner.addresses[0][1]

    async def aclose(self) -> None:
        """Stop listening."""
        if self._runner is not None:
            await self._runner.cleanup()


async def serve_posts_on_loopback(
    handler: Callable[[web.Request], Awaitable[web.StreamResponse]], **runner_options: Any
) -> web.AppRunner:
    """An aiohttp server on a free loopback port that hands every POST, whatever its path, to `handler`."""
    app = web.Application()
    app.router.add_route("POST", "/{tail:.*}", handler)
    runner = web.AppRunner(app, access_log=None, **runner_options)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    return runner
