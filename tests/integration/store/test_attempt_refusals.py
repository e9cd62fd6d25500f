"""Recording attempts: a record the database refuses fails alone (both databases); a record on SQLite is one trip."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta
from typing import Any

import aiosqlite
import pytest
from sqlalchemy import event

from chargewire.catalog import load_event_types
from chargewire.clock import utcnow
from chargewire.ids import new_id
from chargewire.models import DeliveryStatus, Via
from chargewire.runtime import Runtime
from chargewire.services.subscriptions import OPERATOR
from chargewire.store.delivery_records import AttemptRecord, ClaimedDelivery
from tests.support.factories import delivered_record_factory

BOOT = load_event_types()["BootNotification"].example
WORKER = "wrk_test"
# A lone surrogate in a header the channel built: not made storable (request headers are chargewire's own),
# so the JSON encoder refuses it on either database.
UNENCODABLE = {"X-Broken": "\udcff"}


async def _claimed(runtime: Runtime, count: int) -> list[ClaimedDelivery]:
    owner = await runtime.tokens.create("refusals", ["notifications:manage"])
    body = {"via": "webhook", "notifications": ["BootNotification"], "webhook": {"callbackUrl": "http://127.0.0.1:9/"}}
    await runtime.subscriptions.create(owner.token, body)
    await runtime.publisher.publish([BOOT] * count)
    now = utcnow()
    return await runtime.delivery_store.claim_due_deliveries(
        WORKER, now, now + timedelta(minutes=1), count, {Via.WEBHOOK: count}
    )


def _delivered(delivery: ClaimedDelivery, request_headers: dict[str, str] | None = None) -> AttemptRecord:
    return delivered_record_factory(delivery, WORKER, request_headers)


async def test_a_refused_record_is_written_bare_and_the_rest_of_its_batch_in_full(runtime: Runtime) -> None:
    claimed = await _claimed(runtime, 5)
    records = [_delivered(delivery, UNENCODABLE if index == 2 else None) for index, delivery in enumerate(claimed)]

    await runtime.delivery_store.record_attempts(records)

    for index, delivery in enumerate(claimed):
        detail = await runtime.deliveries.get(OPERATOR, delivery.id)
        assert detail.delivery.status is DeliveryStatus.DELIVERED
        [attempt] = detail.attempts
        expected = ({}, None) if index == 2 else ({"X-Fine": "yes"}, "ok")
        assert (attempt.request_headers, attempt.response_body) == expected


async def test_a_record_whose_delivery_is_gone_is_given_up_and_the_rest_recorded(runtime: Runtime) -> None:
    claimed = await _claimed(runtime, 3)
    ghost = replace(claimed[0], id=new_id("dlv"))

    await runtime.delivery_store.record_attempts([_delivered(delivery) for delivery in [*claimed, ghost]])

    for delivery in claimed:
        assert (await runtime.deliveries.get(OPERATOR, delivery.id)).delivery.status is DeliveryStatus.DELIVERED


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
async def test_a_record_of_successes_on_sqlite_is_one_trip_to_the_driver_thread_on_the_writers_kept_connection(
    runtime: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    claimed = await _claimed(runtime, 3)
    await runtime.delivery_store.record_attempts([_delivered(claimed[0])])  # the writers' connection is taken
    trips: list[object] = []
    send = aiosqlite.Connection._execute

    async def counted(connection: aiosqlite.Connection, function: Any, *args: Any, **kwargs: Any) -> Any:
        trips.append(function)
        return await send(connection, function, *args, **kwargs)

    taken: list[object] = []
    event.listen(runtime.database.engine.sync_engine.pool, "checkout", lambda *args: taken.append(args))
    monkeypatch.setattr(aiosqlite.Connection, "_execute", counted)
    await runtime.delivery_store.record_attempts([_delivered(delivery) for delivery in claimed[1:]])
    monkeypatch.undo()

    # BEGIN IMMEDIATE, the attempts, the subscription's health, the delivered rows and COMMIT go together, on
    # the connection the writers keep: none is taken from the pool and none given back (a reset).
    assert (len(trips), taken) == (1, [])
    for delivery in claimed:
        assert (await runtime.deliveries.get(OPERATOR, delivery.id)).delivery.status is DeliveryStatus.DELIVERED
