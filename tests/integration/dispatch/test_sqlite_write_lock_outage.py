"""Another process holding the SQLite write lock past the busy timeout stops nothing for good: the API answers
503 (reads still work), /readyz says which check failed, and once the lock is gone every event is delivered,
once, by the same worker."""

from __future__ import annotations

import asyncio
import json

import httpx
import pytest

from chargewire.catalog import load_event_types
from chargewire.runtime import Runtime
from chargewire.store.dialects.engine import DATABASE_WAIT_S
from tests.conftest import TokenFactory, bearer
from tests.integration.dispatch.conftest import Subscribe
from tests.support.faults import in_a_thread, sqlite_write_locked
from tests.support.receiver import Receiver, always

EVENTS = 300
HARDWARE = load_event_types()["HardwareStatusNotification"].example


@pytest.mark.parametrize("backend", ["sqlite"])
async def test_delivery_resumes_and_nothing_is_lost_after_another_process_held_the_sqlite_write_lock(
    runtime: Runtime, receiver: Receiver, subscribe: Subscribe, api: httpx.AsyncClient, token_factory: TokenFactory
) -> None:
    # Slow answers keep attempts in flight while the lock is taken, so their records meet it too.
    await subscribe(receiver.on("/locked", always(202, delay_s=0.2)), "HardwareStatusNotification")
    await runtime.publisher.publish([{**HARDWARE, "chargePointId": i} for i in range(EVENTS)])
    # Its answer comes from the request deadline, the publish itself is not called back: it may still be stored.
    late = {**HARDWARE, "chargePointId": EVENTS}
    reader = bearer(await token_factory("notifications:manage"))
    publisher = bearer(await token_factory("events:publish"))
    assert runtime.database.sqlite_file is not None
    stop = asyncio.Event()
    worker = asyncio.create_task(runtime.deliver(runtime.dispatcher(), stop))
    try:
        await receiver.wait_for(1, "/locked")
        async with in_a_thread(sqlite_write_locked(runtime.database.sqlite_file)):
            listed = await api.get("/public-api/notifications/v2.0", headers=reader)
            refused = await api.post("/api/v1/events", json=[late], headers=publisher)
            ready = await api.get("/readyz")
            await asyncio.sleep(DATABASE_WAIT_S + 2)  # every loop that writes meets the lock
            retrying = runtime.loop_states()
        received = await receiver.wait_for(EVENTS, "/locked", timeout_s=120)
    finally:
        stop.set()
        await asyncio.wait_for(worker, 60)

    assert listed.status_code == 200  # authenticating a read does not wait for the token's last-used write
    assert refused.status_code == 503
    assert refused.headers["Retry-After"]
    assert ready.status_code == 503
    assert ready.json()["checks"]["database"]["ok"] is False
    assert retrying is not None
    assert "retrying" in retrying.values()
    assert runtime.supervisor is not None
    assert sum(runtime.supervisor.faults.values()) > 0
    ids = [request.headers["webhook-id"] for request in received]
    assert {json.loads(request.body)["chargePointId"] for request in received} - {EVENTS} == set(range(EVENTS))
    assert len(ids) == len(set(ids)), "records the lock kept from being written were sent again"
