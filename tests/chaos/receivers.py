"""Webhook receivers on loopback whose answer the chaos run switches: healthy, hang, reset, garbage or NUL bytes."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import struct
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from enum import StrEnum

from aiohttp import web

from tests.support.receiver import serve_posts_on_loopback

# Longer than the webhook timeout the stack configures, so chargewire gives up first; then a 503, never a success.
HANG_S = 30.0


class Mode(StrEnum):
    """How a receiver answers."""

    HEALTHY = "healthy"
    HANG = "hang"
    RESET = "reset"
    GARBAGE = "garbage"
    NUL = "nul"


@dataclass(frozen=True)
class Receipt:
    """One request that reached a receiver: its delivery id (`webhook-id`), when, and whether it was a success."""

    path: str
    delivery_id: str
    at: float
    succeeded: bool


class ChaosReceiver:
    """Records every webhook per path and answers as the path's current mode says."""

    def __init__(self) -> None:
        self.receipts: list[Receipt] = []
        self.modes: dict[str, Mode] = {}
        self.port = 0
        self._runner: web.AppRunner | None = None

    def url(self, path: str) -> str:
        """The URL to subscribe for `path` (healthy until told otherwise)."""
        self.modes.setdefault(path, Mode.HEALTHY)
        return f"http://127.0.0.1:{self.port}{path}"

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        await request.read()
        mode = self.modes.get(request.path, Mode.HEALTHY)
        succeeded = mode in (Mode.HEALTHY, Mode.NUL)
        self.receipts.append(Receipt(request.path, request.headers.get("webhook-id", ""), time.time(), succeeded))
        if mode is Mode.HANG:
            await asyncio.sleep(HANG_S)
            return web.Response(status=503, text="hung")
        if mode is Mode.RESET:
            _reset(request)
        if mode is Mode.GARBAGE:
            _garbage(request)
        if mode is Mode.NUL:
            # A NUL byte and bytes that are not UTF-8: what PostgreSQL text columns cannot hold as they come.
            return web.Response(status=200, body=b"accepted\x00\xff\xfe\x00")
        return web.Response(status=202, text="ok")

    async def start(self) -> None:
        """Listen on a free loopback port."""
        # The reset and garbage modes end their requests with an error on purpose: not worth a traceback each.
        logging.getLogger("aiohttp.server").setLevel(logging.CRITICAL)
        self._runner = await serve_posts_on_loopback(self._handle, handler_cancellation=True, shutdown_timeout=0.5)
        self.port = self._runner.addresses[0][1]

    async def aclose(self) -> None:
        """Stop listening."""
        if self._runner is not None:
            await self._runner.cleanup()


def _reset(request: web.Request) -> None:
    """Abort the connection with a TCP RST (SO_LINGER 0), so the client sees 'connection reset by peer'."""
    transport = request.transport
    if transport is None:
        raise ConnectionResetError
    sock: socket.socket = transport.get_extra_info("socket")
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    transport.abort()
    raise ConnectionResetError


def _garbage(request: web.Request) -> None:
    """Answer bytes that are not HTTP at all, then close."""
    transport = request.transport
    if transport is None:
        raise ConnectionResetError
    transport.write(b"\x00\x13garbage, not HTTP\xff\r\n\r\n")
    transport.close()
    raise ConnectionResetError


@contextlib.contextmanager
def receiver_in_thread() -> Iterator[ChaosReceiver]:
    """A ChaosReceiver on its own event loop in a daemon thread, stopped when the block ends."""
    loop = asyncio.new_event_loop()
    receiver = ChaosReceiver()
    thread = threading.Thread(target=loop.run_forever, name="chaos-receiver", daemon=True)
    thread.start()
    asyncio.run_coroutine_threadsafe(receiver.start(), loop).result(10)
    try:
        yield receiver
    finally:
        asyncio.run_coroutine_threadsafe(receiver.aclose(), loop).result(30)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        loop.close()
