"""A full disk under the SQLite file stops delivery only while it lasts: once space is freed, every event is
delivered."""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from chargewire.catalog import load_event_types
from chargewire.config import Settings
from chargewire.runtime import Runtime
from tests.integration.dispatch.conftest import Subscribe
from tests.support.faults import disk_full, small_filesystem
from tests.support.receiver import Receiver, always

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
    assert {json.loads(request.body)["chargePointId"] for request in received} == set(range(EVENTS))
    assert runtime.supervisor is not None
    assert sum(runtime.supervisor.faults.values()) > 0, "the full disk was never met"
