"""What `api.ingress` relies on in uvicorn 0.54.0's httptools protocol, driven through a transport that records.

If uvicorn stops choosing the app from `self.app` in `on_headers_complete`, or its cycle stops writing through
`cycle.transport`, these fail: the shortcut would then be silently off, or write twice.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from typing import Any

import pytest
import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import Response
from fastapi.telemetry import TelemetryConfig
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
from uvicorn.server import ServerState

from chargewire.api.ingress import IngressProtocol, publish_chain
from chargewire.api.routes.events import PATH


class _Recording(asyncio.Transport):
    """A transport that keeps what is written."""

    def __init__(self) -> None:
        super().__init__()
        self.writes: list[bytes] = []
        self.closed = False

    def write(self, data: bytes | bytearray | memoryview) -> None:
        self.writes.append(bytes(data))

    def close(self) -> None:
        self.closed = True

    def is_closing(self) -> bool:
        return self.closed

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return {"sockname": ("127.0.0.1", 8000), "peername": ("127.0.0.1", 50000)}.get(name, default)

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass


NO_TELEMETRY: TelemetryConfig = {"tracing": False, "metrics": False, "logs": False}


def _app(seen: list[dict[str, Any]], **options: Any) -> FastAPI:
    app = FastAPI(telemetry=NO_TELEMETRY, **options)

    async def handler(request: Request) -> Response:
        seen.append(dict(request.scope))
        return Response(b'{"ok":true}', status_code=202, media_type="application/json")

    app.add_api_route(PATH, handler, methods=["POST"])
    app.add_api_route("/other", handler, methods=["POST"])
    return app


async def _request(protocol: HttpToolsProtocol, target: bytes) -> _Recording:
    transport = _Recording()
    protocol.connection_made(transport)
    protocol.data_received(b"POST " + target + b" HTTP/1.1\r\nHost: t\r\nContent-Length: 2\r\n\r\n{}")
    await asyncio.gather(*protocol.tasks)  # the request's task, which uvicorn made
    return transport


def _protocol(app: FastAPI, kind: type[HttpToolsProtocol] = IngressProtocol) -> HttpToolsProtocol:
    config = uvicorn.Config(app, http=kind, lifespan="off", log_level="warning")
    config.load()
    return kind(config=config, server_state=ServerState(), app_state={})


def _without_exit_stacks(scope: dict[str, Any]) -> dict[str, Any]:
    """The scope but FastAPI's exit stacks, which are each request's own."""
    return {key: value for key, value in scope.items() if not isinstance(value, contextlib.AsyncExitStack)}


async def test_uvicorn_is_the_version_the_shortcut_was_written_against() -> None:
    assert uvicorn.__version__ == "0.54.0"


async def test_a_publish_takes_the_shortcut_with_the_scope_the_router_would_give_it_and_one_write() -> None:
    seen: list[dict[str, Any]] = []
    app = _app(seen)
    assert publish_chain(_protocol(app).app) is not None
    shortcut = await _request(_protocol(app), PATH.encode())
    own = await _request(_protocol(app, HttpToolsProtocol), PATH.encode())
    other = await _request(_protocol(app), b"/other")
    assert len(shortcut.writes) == 1
    assert shortcut.writes[0] == b"".join(own.writes)
    assert len(own.writes) == len(other.writes) == 2  # uvicorn's own: head, then body
    via_shortcut, via_app, _ = seen
    assert set(via_shortcut) == set(via_app)
    assert _without_exit_stacks(via_shortcut) == _without_exit_stacks(via_app)
    assert via_shortcut["route"].path == PATH


async def test_a_publish_under_way_when_the_server_shuts_down_is_answered_then_its_connection_closed() -> None:
    entered, release = asyncio.Event(), asyncio.Event()
    app = FastAPI(telemetry=NO_TELEMETRY)

    async def slow(request: Request) -> Response:
        entered.set()
        await release.wait()
        return Response(b"{}", status_code=202, media_type="application/json")

    app.add_api_route(PATH, slow, methods=["POST"])
    protocol = _protocol(app)
    transport = _Recording()
    protocol.connection_made(transport)
    protocol.data_received(b"POST " + PATH.encode() + b" HTTP/1.1\r\nHost: t\r\nContent-Length: 2\r\n\r\n{}")
    await entered.wait()
    protocol.shutdown()  # what uvicorn's server does to each connection on its way out
    assert not transport.closed
    release.set()
    await asyncio.gather(*protocol.tasks)
    assert len(transport.writes) == 1
    assert b"\r\nconnection: close\r\n" in transport.writes[0]
    assert transport.closed


def _publish_route_behind_another() -> FastAPI:
    app = FastAPI(telemetry=NO_TELEMETRY)
    app.add_api_route("/api/v1/{anything}", lambda: None, methods=["POST"])
    app.add_api_route(PATH, lambda: None, methods=["POST"])
    return app


def _with_root_path(app: FastAPI) -> FastAPI:
    app.root_path = "/x"  # as its deprecated parameter would
    return app


@pytest.mark.parametrize(
    "app",
    [
        pytest.param(lambda: _publish_route_behind_another(), id="another route first"),
        pytest.param(lambda: _with_root_path(_app([])), id="a root path"),
        pytest.param(lambda: FastAPI(), id="FastAPI's telemetry"),
    ],
)
async def test_an_app_whose_entry_or_router_does_more_gets_no_shortcut(app: Callable[[], FastAPI]) -> None:
    assert publish_chain(_protocol(app()).app) is None
