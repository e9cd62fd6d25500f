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
from chargewire.store.delivery_claims import ClaimRequest
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
        ClaimRequest(WORKER, now, now + timedelta(minutes=1), count, {Via.WEBHOOK: count})
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


def _failed(delivery: ClaimedDelivery, status: DeliveryStatus) -> AttemptRecord:
    record = _delivered(delivery)
    retry_at = record.attempt.started_at + timedelta(minutes=5) if status is DeliveryStatus.PENDING else None
    return replace(record, status=status, next_attempt_at=retry_at, last_error="HTTP 500")


async def _trips_and_checkouts(runtime: Runtime, records: list[AttemptRecord]) -> tuple[int, list[object]]:
    """How many trips to the driver's thread recording `records` makes, and the connections it takes from the pool."""
    trips: list[object] = []
    send = aiosqlite.Connection._execute

    async def counted(connection: aiosqlite.Connection, function: Any, *args: Any, **kwargs: Any) -> Any:
        trips.append(function)
        return await send(connection, function, *args, **kwargs)

    taken: list[object] = []
    event.listen(runtime.database.engine.sync_engine.pool, "checkout", lambda *args: taken.append(args))
    with pytest.MonkeyPatch.context() as monkeypatch:
        monkeypatch.setattr(aiosqlite.Connection, "_execute", counted)
        await runtime.delivery_store.record_attempts(records)
    return len(trips), taken


async def _claimed_and_first_recorded(runtime: Runtime, count: int) -> list[ClaimedDelivery]:
    """`count` claimed deliveries, the first recorded delivered: the writers' connection is taken (and kept)."""
    claimed = await _claimed(runtime, count)
    await runtime.delivery_store.record_attempts([_delivered(claimed[0])])
    return claimed


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
async def test_a_record_of_successes_on_sqlite_is_no_trip_to_the_driver_thread_on_the_writers_kept_connection(
    runtime: Runtime,
) -> None:
    claimed = await _claimed_and_first_recorded(runtime, 3)

    trips, taken = await _trips_and_checkouts(runtime, [_delivered(delivery) for delivery in claimed[1:]])

    # BEGIN IMMEDIATE, the attempts, the subscription's health, the delivered rows and COMMIT go together, in the
    # event loop's thread, on the connection the writers keep: none is taken from the pool and none given back.
    assert (trips, taken) == (0, [])
    for delivery in claimed:
        assert (await runtime.deliveries.get(OPERATOR, delivery.id)).delivery.status is DeliveryStatus.DELIVERED


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
async def test_a_record_with_failures_on_sqlite_is_no_trip_either_each_failure_rescheduled_with_its_own_values(
    runtime: Runtime,
) -> None:
    claimed = await _claimed_and_first_recorded(runtime, 4)
    records = [
        _failed(claimed[1], DeliveryStatus.PENDING),
        _delivered(claimed[2]),
        _failed(claimed[3], DeliveryStatus.FAILED),
    ]

    trips, taken = await _trips_and_checkouts(runtime, records)

    # The failures' reschedule goes with the rest and the commit (it was a trip of its own), in the loop's thread.
    assert (trips, taken) == (0, [])
    for record in records:
        detail = await runtime.deliveries.get(OPERATOR, record.attempt.delivery_id)
        assert detail.delivery.status is record.status
        assert detail.delivery.next_attempt_at == record.next_attempt_at
        assert detail.delivery.last_error == record.last_error
        assert detail.delivery.attempt_count == 1
