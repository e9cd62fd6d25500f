"""Publishing on both backends: fan-out by event name and filter, in one transaction, with increasing ids."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from sqlalchemy import select

from chargewire.catalog import load_event_types
from chargewire.errors import ValidationFailed
from chargewire.runtime import Runtime
from chargewire.store.tables import deliveries, events

STATUS = load_event_types()["HardwareStatusNotification"].example
BOOT = load_event_types()["BootNotification"].example


async def _subscribe(runtime: Runtime, name: str, payload_filter: dict[str, Any] | None = None) -> str:
    owner = await runtime.tokens.create("owner", ["notifications:manage"])
    body = {
        "via": "webhook",
        "notifications": [name],
        "webhook": {"callbackUrl": "http://127.0.0.1:9/hook"},
        "filter": payload_filter,
    }
    return (await runtime.subscriptions.create(owner.token, body)).subscription.id


async def _delivered_events(runtime: Runtime) -> dict[str, list[str]]:
    """Event ids by subscription id, in delivery id order."""
    query = select(deliveries.c.subscription_id, deliveries.c.event_id).order_by(deliveries.c.id)
    async with runtime.database.reading() as connection:
        rows = (await connection.execute(query)).all()
    by_subscription: dict[str, list[str]] = {}
    for row in rows:
        by_subscription.setdefault(row.subscription_id, []).append(row.event_id)
    return by_subscription


async def test_a_batch_fans_out_by_event_name_and_payload_filter(runtime: Runtime) -> None:
    every_status = await _subscribe(runtime, "HardwareStatusNotification")
    only_1042 = await _subscribe(runtime, "HardwareStatusNotification", {"chargePointId": {"$in": [1042]}})
    boots = await _subscribe(runtime, "BootNotification")
    wanted, other = {**STATUS, "chargePointId": 1042}, {**STATUS, "chargePointId": 7}
    other_id, wanted_id, boot_id = await runtime.publisher.publish([other, wanted, BOOT])
    assert await _delivered_events(runtime) == {
        every_status: [other_id, wanted_id],
        only_1042: [wanted_id],
        boots: [boot_id],
    }


async def test_ids_and_log_numbers_strictly_increase_across_concurrent_batches(runtime: Runtime) -> None:
    await _subscribe(runtime, "BootNotification")
    batches = await asyncio.gather(*(runtime.publisher.publish([BOOT] * 50) for _ in range(4)))
    for batch in batches:
        assert batch == sorted(batch)
    async with runtime.database.reading() as connection:
        rows = (
            await connection.execute(select(deliveries.c.id, deliveries.c.event_id).order_by(deliveries.c.id))
        ).all()
        numbers = (await connection.execute(select(events.c.seq).order_by(events.c.id))).scalars().all()
    assert [row.event_id for row in rows] == sorted(event_id for batch in batches for event_id in batch)
    assert numbers == list(range(1, 201))  # Kafka streams read the log in this order


async def test_an_invalid_payload_stores_nothing_of_its_batch(runtime: Runtime) -> None:
    await _subscribe(runtime, "BootNotification")
    with pytest.raises(ValidationFailed) as failure:
        await runtime.publisher.publish([BOOT, {**BOOT, "chargePointId": "not a number"}])
    assert list(failure.value.errors) == ["1.chargePointId"]
    async with runtime.database.reading() as connection:
        assert (await connection.execute(select(events.c.id))).all() == []
        assert (await connection.execute(select(deliveries.c.id))).all() == []
