"""The API server behind `chargewire serve`: its idle ticks and its stop, on a real socket on loopback."""

from __future__ import annotations

import asyncio

import uvicorn
from starlette.types import Receive, Scope, Send

from chargewire.cli.api_server import ApiServer
from chargewire.devtools.postgres import free_port


async def _no_app(scope: Scope, receive: Receive, send: Send) -> None:
    raise AssertionError("no request is sent")


class _CountingServer(ApiServer):
    """The server, handing on the loop time of each of its ticks."""

    def __init__(self, config: uvicorn.Config) -> None:
        super().__init__(config)
        self.ticks: asyncio.Queue[float] = asyncio.Queue()

    async def on_tick(self, counter: int) -> bool:
        self.ticks.put_nowait(asyncio.get_running_loop().time())
        return await super().on_tick(counter)


def _server() -> _CountingServer:
    config = uvicorn.Config(_no_app, host="127.0.0.1", port=free_port(), lifespan="off", log_level="warning")
    return _CountingServer(config)


async def test_the_api_server_wakes_once_a_second_for_its_date_header_when_idle() -> None:
    server = _server()
    serving = asyncio.create_task(server.serve())
    first = await asyncio.wait_for(server.ticks.get(), timeout=30)
    second = await asyncio.wait_for(server.ticks.get(), timeout=30)
    server.should_exit = True
    await asyncio.wait_for(serving, timeout=30)
    assert second - first >= 0.9  # uvicorn's own loop ticks every 0.1 s
    assert dict(server.server_state.default_headers)[b"date"].endswith(b" GMT")


async def test_the_api_server_stops_at_once_when_told_between_ticks() -> None:
    server = _server()
    server.tick_s = 3600.0  # a stop that waited for the next tick would time out below
    serving = asyncio.create_task(server.serve())
    await asyncio.wait_for(server.ticks.get(), timeout=30)  # the first tick comes once it listens
    server.should_exit = True
    await asyncio.wait_for(serving, timeout=30)
    assert server.ticks.qsize() == 1  # the one the stop woke
