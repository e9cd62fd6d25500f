"""`chargewire.publish` from Python: with an idempotency key, a repeated publish is stored once."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

import chargewire
from chargewire.catalog import load_event_types
from chargewire.errors import ValidationFailed
from chargewire.runtime import Runtime
from chargewire.services.idempotency import HEADER
from chargewire.store.tables import events

HARDWARE = load_event_types()["HardwareStatusNotification"].example


async def _stored(runtime: Runtime) -> int:
    async with runtime.database.reading() as connection:
        return int((await connection.execute(select(func.count()).select_from(events))).scalar_one())


async def test_a_repeat_with_the_same_idempotency_key_returns_the_same_ids_and_stores_once(runtime: Runtime) -> None:
    first = await chargewire.publish(HARDWARE, runtime=runtime, idempotency_key="python-key")
    again = await chargewire.publish([HARDWARE], runtime=runtime, idempotency_key="python-key")

    assert again == first
    assert await _stored(runtime) == 1


async def test_the_same_idempotency_key_with_other_payloads_is_refused(runtime: Runtime) -> None:
    await chargewire.publish(HARDWARE, runtime=runtime, idempotency_key="python-key")

    with pytest.raises(ValidationFailed) as refused:
        await chargewire.publish({**HARDWARE, "evseId": 2}, runtime=runtime, idempotency_key="python-key")

    assert list(refused.value.errors) == [HEADER]
    assert await _stored(runtime) == 1
