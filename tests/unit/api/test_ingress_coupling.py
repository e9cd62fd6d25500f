"""What `api.ingress` relies on in uvicorn 0.54.0's httptools protocol and in the app's chain, driven through a
transport that records.

If uvicorn's protocol stops reading the cycle's state as the direct path keeps it, or the app's chain changes
shape, these fail: the direct path would then be silently off, or answer otherwise.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import orjson
import pytest
import uvicorn
from fastapi import FastAPI
from fastapi.routing import APIRoute
from starlette.types import ASGIApp, Receive, Scope, Send
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
from uvicorn.server import ServerState

from chargewire.api.ingress import DirectCycle, IngressProtocol, direct_publish
from chargewire.api.routes.events import PATH
from chargewire.catalog import load_event_types
from chargewire.runtime import Runtime
from chargewire.web import create_app

on_sqlite = pytest.mark.parametrize("backend", ["sqlite"], indirect=True)

EVENT = b'{"notification": "nope"}'


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


def _protocol(app: Any, kind: type[HttpToolsProtocol] = IngressProtocol, **options: Any) -> HttpToolsProtocol:
    options = {"access_log": False, **options}  # as serve's
    config = uvicorn.Config(app, http=kind, lifespan="off", log_level="warning", **options)
    config.load()
    return kind(config=config, server_state=ServerState(), app_state={})


def _publish(token: str, body: bytes = EVENT) -> bytes:
    return (
        f"POST {PATH} HTTP/1.1\r\nHost: t\r\nAuthorization: Bearer {token}\r\nContent-Length: {len(body)}\r\n\r\n"
    ).encode() + body


async def _sent(protocol: HttpToolsProtocol, request: bytes) -> _Recording:
    transport = _Recording()
    protocol.connection_made(transport)
    protocol.data_received(request)
    await asyncio.gather(*protocol.tasks)
    return transport


async def test_uvicorn_is_the_version_the_direct_path_was_written_against() -> None:
    assert uvicorn.__version__ == "0.54.0"


@on_sqlite
async def test_a_publish_to_the_served_app_goes_the_direct_way_in_one_write(runtime: Runtime) -> None:
    token = (await runtime.tokens.create("publisher", ["events:publish"])).text
    protocol = _protocol(create_app(runtime))
    transport = _Recording()
    protocol.connection_made(transport)
    protocol.data_received(_publish(token))
    assert isinstance(protocol.cycle, DirectCycle)
    await asyncio.gather(*protocol.tasks)
    assert len(transport.writes) == 1
    assert transport.writes[0].startswith(b"HTTP/1.1 422 ")


@on_sqlite
@pytest.mark.parametrize(
    ("options", "headers"),
    [
        pytest.param({}, "Transfer-Encoding: chunked", id="chunked"),
        pytest.param({}, "Expect: 100-continue\r\nContent-Length: 2", id="100-continue"),
        pytest.param({}, "X-Forwarded-For: 10.0.0.1\r\nContent-Length: 2", id="proxy headers"),
        pytest.param({}, "Content-Length: 999999999", id="a declared body over the limit"),
        pytest.param({"access_log": True}, "Content-Length: 2", id="an access log"),
        pytest.param({"limit_concurrency": 100}, "Content-Length: 2", id="a concurrency limit"),
    ],
)
async def test_an_unusual_publish_takes_uvicorns_path(runtime: Runtime, options: dict[str, Any], headers: str) -> None:
    protocol = _protocol(create_app(runtime), **options)
    protocol.connection_made(_Recording())
    protocol.data_received(f"POST {PATH} HTTP/1.1\r\nHost: t\r\n{headers}\r\n\r\n".encode())
    assert protocol.cycle is not None
    assert not isinstance(protocol.cycle, DirectCycle)


@on_sqlite
async def test_a_publish_under_way_when_the_server_shuts_down_is_answered_then_its_connection_closed(
    runtime: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    token = (await runtime.tokens.create("publisher", ["events:publish"])).text
    entered, release = asyncio.Event(), asyncio.Event()
    publish = runtime.publisher.publish

    async def slow(payloads: Any, **options: Any) -> list[str]:
        entered.set()
        await release.wait()
        return await publish(payloads, **options)

    monkeypatch.setattr(runtime.publisher, "publish", slow)
    protocol = _protocol(create_app(runtime))
    transport = _Recording()
    protocol.connection_made(transport)
    body = load_event_types()["SessionMeterValuesNotification"].example
    protocol.data_received(_publish(token, orjson.dumps(body)))
    await entered.wait()
    protocol.shutdown()  # what uvicorn's server does to each connection on its way out
    assert not transport.closed
    release.set()
    await asyncio.gather(*protocol.tasks)
    assert len(transport.writes) == 1
    assert transport.writes[0].startswith(b"HTTP/1.1 202 ")
    assert b"\r\nconnection: close\r\n" in transport.writes[0]
    assert transport.closed


def _publish_route_behind_another(runtime: Runtime) -> Any:
    app = create_app(runtime)
    app.router.routes.insert(0, APIRoute("/api/v1/{anything}", lambda: None, methods=["POST"]))
    return app


def _with_root_path(runtime: Runtime) -> Any:
    app = create_app(runtime)
    app.root_path = "/x"  # as its deprecated parameter would
    return app


class _Layer:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self.app(scope, receive, send)


def _with_another_layer(runtime: Runtime) -> Any:
    app = create_app(runtime)
    app.add_middleware(_Layer)
    return app


@on_sqlite
@pytest.mark.parametrize(
    "make",
    [
        pytest.param(_publish_route_behind_another, id="another route first"),
        pytest.param(_with_root_path, id="a root path"),
        pytest.param(_with_another_layer, id="another layer"),
        pytest.param(lambda runtime: FastAPI(), id="another app"),
    ],
)
async def test_an_app_whose_chain_does_more_gets_no_direct_path(
    runtime: Runtime, make: Callable[[Runtime], Any]
) -> None:
    assert direct_publish(_protocol(make(runtime)).app) is None
