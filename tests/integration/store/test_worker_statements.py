"""A worker's claim and record send as few statements as each database allows, and mean the same on both."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

import orjson
from sqlalchemy import select, update

from chargewire.catalog import load_event_types
from chargewire.clock import utcnow
from chargewire.models import DeliveryStatus, Via
from chargewire.runtime import Runtime
from chargewire.services.subscriptions import OPERATOR
from chargewire.store.delivery_records import AttemptRecord, ClaimedDelivery
from chargewire.store.tables import subscriptions
from tests.support.factories import delivered_record_factory
from tests.support.plans import sent_statements

BOOT = load_event_types()["BootNotification"].example
WORKER = "wrk_test"


async def _claimed(runtime: Runtime, count: int) -> list[ClaimedDelivery]:
    owner = await runtime.tokens.create("statements", ["notifications:manage"])
    body = {"via": "webhook", "notifications": ["BootNotification"], "webhook": {"callbackUrl": "http://127.0.0.1:9/"}}
    await runtime.subscriptions.create(owner.token, body)
    await runtime.publisher.publish([{**BOOT, "chargePointId": 7000 + index} for index in range(count)])
    now = utcnow()
    return await runtime.delivery_store.claim_due_deliveries(
        WORKER, now, now + timedelta(minutes=1), count, {Via.WEBHOOK: count}
    )


def _delivered(delivery: ClaimedDelivery) -> AttemptRecord:
    return delivered_record_factory(delivery, WORKER)


async def _mark_failing(runtime: Runtime, subscription_id: str) -> None:
    async with runtime.database.transaction() as connection:
        await connection.execute(
            update(subscriptions).where(subscriptions.c.id == subscription_id).values(failing_since=utcnow())
        )


async def _failing_since(runtime: Runtime, subscription_id: str) -> object:
    async with runtime.database.reading() as connection:
        query = select(subscriptions.c.failing_since).where(subscriptions.c.id == subscription_id)
        return (await connection.execute(query)).scalar()


async def test_a_claim_leases_its_deliveries_and_reads_their_payloads_in_one_statement_on_postgresql(
    runtime: Runtime,
) -> None:
    with sent_statements(runtime.database, "") as sent:
        claimed = await _claimed(runtime, 3)

    assert [orjson.loads(delivery.payload)["chargePointId"] for delivery in claimed] == [7000, 7001, 7002]
    payload_reads = [text for text, _values in sent if text.startswith("SELECT events.id, events.payload")]
    assert len(payload_reads) == (0 if runtime.database.dialect.name == "postgresql" else 1)


async def test_a_success_makes_a_failing_subscription_healthy_again_in_the_delivered_rows_statement(
    runtime: Runtime,
) -> None:
    claimed = await _claimed(runtime, 2)
    subscription_id = claimed[0].subscription_id
    await _mark_failing(runtime, subscription_id)

    with sent_statements(runtime.database, "UPDATE subscriptions") as health_apart:
        await runtime.delivery_store.record_attempts([_delivered(delivery) for delivery in claimed])

    assert await _failing_since(runtime, subscription_id) is None
    # On PostgreSQL it rides in a WITH of the UPDATE of the delivered rows: no round trip of its own. (SQLite
    # sends a record's statements and its commit to the driver's thread in one trip, past SQLAlchemy's events.)
    assert health_apart == []


async def test_a_success_of_another_worker_s_lease_still_makes_its_subscription_healthy_again(
    runtime: Runtime,
) -> None:
    claimed = await _claimed(runtime, 1)
    subscription_id = claimed[0].subscription_id
    await _mark_failing(runtime, subscription_id)
    late = replace(_delivered(claimed[0]), worker_id="wrk_lease_lost")  # its lease went to another worker

    await runtime.delivery_store.record_attempts([late])

    assert await _failing_since(runtime, subscription_id) is None


async def test_a_record_s_failures_are_rescheduled_each_with_its_own_values_by_one_executemany(
    runtime: Runtime,
) -> None:
    claimed = await _claimed(runtime, 3)
    retry_at = utcnow() + timedelta(minutes=5)
    failed = [
        replace(_delivered(delivery), status=DeliveryStatus.PENDING, next_attempt_at=retry_at, last_error=f"HTTP 50{i}")
        for i, delivery in enumerate(claimed)
    ]

    with sent_statements(runtime.database, "UPDATE deliveries") as reschedules:
        await runtime.delivery_store.record_attempts(failed)

    for record in failed:
        detail = await runtime.deliveries.get(OPERATOR, record.attempt.delivery_id)
        assert (detail.delivery.status, detail.delivery.last_error) == (DeliveryStatus.PENDING, record.last_error)
    # On PostgreSQL one round trip for all of them (asyncpg's executemany); SQLite sends them with the record's other
    # statements and its commit in one trip to the driver's thread, past SQLAlchemy's events.
    expected = 1 if runtime.database.dialect.name == "postgresql" else 0
    assert len(reschedules) == expected
