"""A full disk under the SQLite file stops delivery only while it lasts: once space is freed, every event is
delivered."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from chargewire.catalog import load_event_types
from chargewire.config import Settings
from chargewire.runtime import Runtime
from tests.conftest import TokenFactory, bearer
from tests.integration.dispatch.conftest import Subscribe
from tests.support.faults import disk_full, small_filesystem
from tests.support.receiver import Received, Receiver, always

EVENTS = 200
HARDWARE = load_event_types()["HardwareStatusNotification"].example


@pytest.fixture
def data_dir(tmp_path: Path) -> Iterator[Path]:
    """A 64 MiB filesystem of its own for the SQLite file (mounting needs root, as in the test containers)."""
    if os.geteuid() != 0:
        pytest.fail("filling a disk needs a tmpfs mount, and mounting needs root")
    with small_filesystem(tmp_path / "small", 64) as mounted:
        yield mounted


@pytest.fixture
def database_url(data_dir: Path) -> str:
    """The test's SQLite file, on the small filesystem."""
    return f"sqlite+aiosqlite:///{data_dir / 'chargewire.db'}"


def _points(received: list[Received]) -> set[int]:
    return {json.loads(request.body)["chargePointId"] for request in received}


async def test_delivery_resumes_and_nothing_is_lost_after_the_disk_was_full(
    runtime: Runtime, receiver: Receiver, subscribe: Subscribe, settings: Settings, data_dir: Path
) -> None:
    await subscribe(receiver.on("/full", always(202, delay_s=0.05)), "HardwareStatusNotification")
    await runtime.publisher.publish([{**HARDWARE, "chargePointId": i} for i in range(EVENTS)])
    stop = asyncio.Event()
    worker = asyncio.create_task(runtime.deliver(runtime.dispatcher(), stop))
    try:
        await receiver.wait_for(1, "/full")
        with disk_full(data_dir):
            await asyncio.sleep(3)  # attempts end and their records meet the full disk
        received = await receiver.wait_for(EVENTS, "/full", timeout_s=120)
    finally:
        stop.set()
        await asyncio.wait_for(worker, 60)
    assert _points(received) == set(range(EVENTS))
    assert runtime.supervisor is not None
    assert sum(runtime.supervisor.faults.values()) > 0, "the full disk was never met"


def _stored(database: Path) -> tuple[int, int]:
    """How many events and deliveries the SQLite file holds."""
    with contextlib.closing(sqlite3.connect(database)) as reader:
        (events,) = reader.execute("SELECT count(*) FROM events").fetchone()
        (deliveries,) = reader.execute("SELECT count(*) FROM deliveries").fetchone()
    return events, deliveries


async def test_a_publish_on_a_full_disk_answers_503_stores_nothing_and_delivery_resumes_when_space_returns(
    runtime: Runtime,
    receiver: Receiver,
    subscribe: Subscribe,
    api: httpx.AsyncClient,
    token_factory: TokenFactory,
    data_dir: Path,
) -> None:
    # One small event per publish: each is a transaction of a few rows, which SQLite runs in the loop's thread.
    await subscribe(receiver.on("/publish-full", always(202)), "HardwareStatusNotification")
    publisher = bearer(await token_factory("events:publish"))

    async def publish(point: int) -> int:
        response = await api.post("/api/v1/events", json=[{**HARDWARE, "chargePointId": point}], headers=publisher)
        return response.status_code

    stop = asyncio.Event()
    worker = asyncio.create_task(runtime.deliver(runtime.dispatcher(), stop))
    try:
        assert await publish(0) == 202
        await receiver.wait_for(1, "/publish-full")
        with disk_full(data_dir):
            during = {point: await publish(point) for point in range(1000, 1040)}
        after = [await publish(point) for point in (2000, 2001)]
        accepted = {0, 2000, 2001} | {point for point, status in during.items() if status == 202}
        while not accepted <= (points := _points(receiver.on_path("/publish-full"))):
            await receiver.wait_for(len(receiver.on_path("/publish-full")) + 1, "/publish-full", timeout_s=60)
    finally:
        stop.set()
        await asyncio.wait_for(worker, 60)

    assert set(during.values()) <= {202, 503}, during
    assert 503 in during.values(), "no publish met the full disk"
    assert after == [202, 202]
    assert points == accepted  # nothing refused was delivered
    assert _stored(data_dir / "chargewire.db") == (len(accepted), len(accepted))  # nor half stored
