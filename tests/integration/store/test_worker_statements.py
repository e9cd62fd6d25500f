"""A worker's claim and record send as few statements as each database allows, and mean the same on both."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

import orjson
import pytest
from sqlalchemy import select, update

from chargewire.catalog import load_event_types
from chargewire.clock import utcnow
from chargewire.models import DeliveryStatus, Via
from chargewire.runtime import Runtime
from chargewire.services.subscriptions import OPERATOR
from chargewire.store import postgresql_record
from chargewire.store.delivery_claims import ClaimRequest
from chargewire.store.delivery_records import AttemptRecord, ClaimedDelivery
from chargewire.store.postgresql_record import WHAT as RECORD
from chargewire.store.tables import deliveries, subscriptions
from tests.support.factories import delivered_record_factory
from tests.support.plans import driver_queries, sent_statements

BOOT = load_event_types()["BootNotification"].example
WORKER = "wrk_test"


async def _claimed(runtime: Runtime, count: int) -> list[ClaimedDelivery]:
    owner = await runtime.tokens.create("statements", ["notifications:manage"])
    body = {"via": "webhook", "notifications": ["BootNotification"], "webhook": {"callbackUrl": "http://127.0.0.1:9/"}}
    await runtime.subscriptions.create(owner.token, body)
    await runtime.publisher.publish([{**BOOT, "chargePointId": 7000 + index} for index in range(count)])
    if runtime.notifier is not None:
        # The publish's NOTIFY goes out now, so that the notifier's connection is not among those a test watches.
        await runtime.notifier.flush()
    now = utcnow()
    return await runtime.delivery_store.claim_due_deliveries(
        ClaimRequest(WORKER, now, now + timedelta(minutes=1), count, {Via.WEBHOOK: count})
    )


def _delivered(delivery: ClaimedDelivery) -> AttemptRecord:
    return delivered_record_factory(delivery, WORKER)


async def _claimed_of_a_failing_subscription(runtime: Runtime, count: int) -> tuple[list[ClaimedDelivery], str]:
    """`count` deliveries claimed, of one subscription marked failing, and that subscription's id."""
    claimed = await _claimed(runtime, count)
    subscription_id = claimed[0].subscription_id
    async with runtime.database.transaction() as connection:
        await connection.execute(
            update(subscriptions).where(subscriptions.c.id == subscription_id).values(failing_since=utcnow())
        )
    return claimed, subscription_id


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


async def test_a_success_makes_a_failing_subscription_healthy_again_without_a_statement_of_its_own(
    runtime: Runtime,
) -> None:
    claimed, subscription_id = await _claimed_of_a_failing_subscription(runtime, 2)

    with sent_statements(runtime.database, "UPDATE subscriptions", steps=False) as health_apart:
        await runtime.delivery_store.record_attempts([_delivered(delivery) for delivery in claimed])

    assert await _failing_since(runtime, subscription_id) is None
    # On PostgreSQL it rides in a WITH of the record's one statement, sent on the driver: no round trip of its own.
    # (SQLite sends a record's statements and its commit to the driver's thread in one trip, past SQLAlchemy's
    # events.)
    assert health_apart == []


async def test_a_success_of_another_worker_s_lease_still_makes_its_subscription_healthy_again(
    runtime: Runtime,
) -> None:
    claimed, subscription_id = await _claimed_of_a_failing_subscription(runtime, 1)
    late = replace(_delivered(claimed[0]), worker_id="wrk_lease_lost")  # its lease went to another worker

    await runtime.delivery_store.record_attempts([late])

    assert await _failing_since(runtime, subscription_id) is None


async def test_a_record_s_failures_are_rescheduled_each_with_its_own_values_in_one_statement_on_postgresql(
    runtime: Runtime,
) -> None:
    claimed = await _claimed(runtime, 3)
    retry_at = utcnow() + timedelta(minutes=5)
    failed = [
        replace(_delivered(delivery), status=DeliveryStatus.PENDING, next_attempt_at=retry_at, last_error=f"HTTP 50{i}")
        for i, delivery in enumerate(claimed)
    ]

    with (
        sent_statements(runtime.database, "", steps=False) as through_sqlalchemy,
        driver_queries(runtime.database) as on_driver,
    ):
        await runtime.delivery_store.record_attempts(failed)

    for record in failed:
        detail = await runtime.deliveries.get(OPERATOR, record.attempt.delivery_id)
        assert (detail.delivery.status, detail.delivery.last_error) == (DeliveryStatus.PENDING, record.last_error)
    if runtime.database.dialect.name == "postgresql":
        # The whole record is one statement on the driver, outside a transaction block: no BEGIN, no COMMIT.
        assert (through_sqlalchemy, [query.split()[:3] for query in on_driver]) == ([], [["WITH", "recorded", "AS"]])
    else:
        # SQLite sends them with the record's other statements and its commit in one trip to the driver's thread,
        # past SQLAlchemy's events.
        assert through_sqlalchemy == []


async def test_a_mixed_record_leaves_the_same_rows_on_both_databases_a_lease_lost_to_another_worker_included(
    runtime: Runtime,
) -> None:
    claimed, subscription_id = await _claimed_of_a_failing_subscription(runtime, 5)
    retry_at = utcnow() + timedelta(minutes=5)
    delivered, lost, retried, also_delivered, given_up = (_delivered(delivery) for delivery in claimed)
    records = [
        delivered,
        replace(lost, worker_id="wrk_lease_lost"),
        replace(retried, status=DeliveryStatus.PENDING, next_attempt_at=retry_at, last_error="HTTP 503"),
        also_delivered,
        replace(given_up, status=DeliveryStatus.FAILED, last_error="HTTP 410"),
    ]
    before = await _delivery_rows(runtime)

    await runtime.delivery_store.record_attempts(records)

    # Successes are stamped with the last success's start; failures each with their own; the lost lease's row is
    # left to whoever holds it, though its attempt is logged.
    delivered_at = also_delivered.attempt.started_at
    assert await _delivery_rows(runtime) == {
        delivered.attempt.delivery_id: ("delivered", 1, None, None, None, delivered_at),
        lost.attempt.delivery_id: before[lost.attempt.delivery_id],
        retried.attempt.delivery_id: ("pending", 1, retry_at, "HTTP 503", None, retried.attempt.started_at),
        also_delivered.attempt.delivery_id: ("delivered", 1, None, None, None, delivered_at),
        given_up.attempt.delivery_id: ("failed", 1, None, "HTTP 410", None, given_up.attempt.started_at),
    }
    for record in records:
        [attempt] = (await runtime.deliveries.get(OPERATOR, record.attempt.delivery_id)).attempts
        assert attempt == record.attempt
    assert await _failing_since(runtime, subscription_id) is None


async def test_a_subscription_with_only_failures_in_a_record_is_failing_since_its_last_attempt_unless_it_was(
    runtime: Runtime,
) -> None:
    claimed = await _claimed(runtime, 3)
    subscription_id = claimed[0].subscription_id
    first, second, later = (
        replace(_delivered(delivery), status=DeliveryStatus.FAILED, last_error="HTTP 410") for delivery in claimed
    )

    await runtime.delivery_store.record_attempts([first, second])
    await runtime.delivery_store.record_attempts([later])

    assert await _failing_since(runtime, subscription_id) == second.attempt.started_at


async def _delivery_rows(runtime: Runtime) -> dict[str, tuple[object, ...]]:
    """Every delivery's id with its (status, attempt count, next attempt at, last error, lease owner, updated at)."""
    columns = ("status", "attempt_count", "next_attempt_at", "last_error", "lease_owner", "updated_at")
    async with runtime.database.reading() as connection:
        rows = await connection.execute(select(deliveries.c.id, *(deliveries.c[name] for name in columns)))
        return {row[0]: tuple(row[1:]) for row in rows}


@pytest.mark.parametrize("backend", ["postgresql"], indirect=True)
async def test_a_record_statement_is_planned_once_per_connection_and_anew_as_its_calls_double_on_postgresql(
    runtime: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    # From 16 attempts recorded on a connection rather than a thousand, for a quick test.
    monkeypatch.setattr(postgresql_record, "_REPLAN_FROM", 16)
    records = 20
    for delivery in await _claimed(runtime, records):
        await runtime.delivery_store.record_attempts([_delivered(delivery)])

    plans = await _record_plans(runtime)

    # PostgreSQL plans a prepared statement for its values five times, then keeps one generic plan if that is no
    # costlier: with arrays bound (reckoned at their length) every record was planned anew.
    assert max(custom for _generic, custom in plans.values()) <= 5
    assert sum(generic for generic, _custom in plans.values()) >= records - 5 * len(plans) > 0
    # Prepared again once it had recorded 16 attempts there (`postgresql_replans`): a generic plan made while the
    # tables were nearly empty scanned a day's deliveries whole on every record.
    assert {mark: generic + custom for mark, (generic, custom) in plans.items()} == {"": 16, "planned anew at 16": 4}


async def _record_plans(runtime: Runtime) -> dict[str, tuple[int, int]]:
    """(generic plans, custom plans) of the record statement on the connection the store keeps for records, by the
    mark its SQL ends with ("" for none)."""
    query = (
        "SELECT substring(statement FROM '/\\* (.*) \\*/$'), generic_plans, custom_plans FROM pg_prepared_statements"
        " WHERE statement LIKE 'WITH recorded%'"
    )
    # Prepared statements are seen only from their own session: the kept connection's.
    async with runtime.delivery_store._driver(RECORD) as driver:
        return {mark or "": (int(generic), int(custom)) for mark, generic, custom in await driver.fetch(query)}
