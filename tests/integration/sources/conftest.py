"""Fixtures for the OCPP tap: a dev CSMS on loopback and a tap in front of it, publishing into the test's runtime."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry

from chargewire.devtools.csms import DevCsms
from chargewire.runtime import Runtime
from chargewire.sources.ocpp import run_tap
from tests.support.ocpp import ChargePoint

TapStarter = Callable[..., Awaitable[str]]


def free_port() -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture
async def csms() -> AsyncIterator[tuple[DevCsms, int]]:
    """A dev CSMS on a free loopback port, and that port."""
    dev_csms = DevCsms()
    server = await dev_csms.start()
    async with server:
        yield dev_csms, server.sockets[0].getsockname()[1]


@pytest.fixture
def tap_metrics() -> CollectorRegistry:
    """The registry the test's taps count into."""
    return CollectorRegistry()


@pytest.fixture
def running_taps() -> list[tuple[asyncio.Event, asyncio.Task[None]]]:
    """The taps a test started: stop them early with `await stop_taps(running_taps)`."""
    return []


@pytest.fixture
async def start_tap(
    runtime: Runtime,
    tmp_path: Path,
    tap_metrics: CollectorRegistry,
    running_taps: list[tuple[asyncio.Event, asyncio.Task[None]]],
) -> AsyncIterator[TapStarter]:
    """Starts taps in this process; `await start_tap(upstream, **settings)` returns the URL prefix to connect to.

    Every tap is stopped (as on SIGTERM) when the test ends.
    """
    running = running_taps

    async def start(upstream: str, **overrides: object) -> str:
        port = free_port()
        settings = runtime.settings.model_copy(
            update={
                "ocpp_listen": f"127.0.0.1:{port}",
                "ocpp_upstream": upstream,
                **overrides,
            }
        )
        stop = asyncio.Event()
        task = asyncio.create_task(run_tap(settings, runtime.publisher, runtime.database, stop, tap_metrics))
        running.append((stop, task))
        scheme = "wss" if overrides.get("ocpp_tls_cert_file") else "ws"
        await _wait_listening(port, task)
        return f"{scheme}://127.0.0.1:{port}/ocpp/"

    yield start
    await stop_taps(running)


async def through_tap(
    csms: tuple[DevCsms, int],
    start_tap: TapStarter,
    identity: str,
    subprotocols: tuple[str, ...] = ("ocpp1.6",),
    **settings: object,
) -> tuple[DevCsms, ChargePoint, str]:
    """A tap in front of the dev CSMS, a charge point connected through it as `identity`, and the tap's URL."""
    dev_csms, port = csms
    tap = await start_tap(f"ws://127.0.0.1:{port}/ocpp/", **settings)
    return dev_csms, await ChargePoint.connect(f"{tap}{identity}", subprotocols=subprotocols), tap


async def stop_taps(running: list[tuple[asyncio.Event, asyncio.Task[None]]]) -> None:
    """Stop every tap in `running` and wait for them to finish publishing."""
    for stop, _ in running:
        stop.set()
    for _, task in running:
        await task
    running.clear()


async def _wait_listening(port: int, task: asyncio.Task[None]) -> None:
    for _ in range(200):
        if task.done():
            task.result()
        with contextlib.suppress(OSError):
            _, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.close()
            await writer.wait_closed()
            return
        await asyncio.sleep(0.02)
    raise AssertionError(f"the tap did not listen on {port}")
