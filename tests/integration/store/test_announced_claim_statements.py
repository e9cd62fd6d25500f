"""Claiming the deliveries a wake-up named, on both backends: exactly those still due, within the caps and the
exclusions, leaving the rest to the scan; on PostgreSQL in one statement outside a transaction block."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import orjson
import pytest
from sqlalchemy import event, select, update

from chargewire.catalog import load_event_types
from chargewire.clock import utcnow
from chargewire.ids import first_id_at, new_id
from chargewire.models import Event, Via
from chargewire.runtime import Runtime
from chargewire.store.delivery_claims import ClaimRequest
from chargewire.store.delivery_records import ClaimedDelivery
from chargewire.store.event_store import EventStore
from chargewire.store.retention import RetentionPolicy
from chargewire.store.tables import deliveries, subscriptions
from tests.support.factories import delivered_record_factory
from tests.support.plans import driver_queries, sent_statements

BOOT = load_event_types()["BootNotification"].example
CAPS = {Via.WEBHOOK: 3, Via.KAFKA: 100}
WORKER = "wrk_announced"
EXPIRY = RetentionPolicy(delivered=timedelta(days=30), failed=timedelta(days=90), batch_size=100)


async def _subscribe(runtime: Runtime, name: str) -> str:
    owner = await runtime.tokens.create(name, ["notifications:manage"])
    body = {
        "via": "webhook",
        "notifications": ["BootNotification"],
        "webhook": {"callbackUrl": f"http://127.0.0.1:9/{name}"},
    }
    return (await runtime.subscriptions.create(owner.token, body)).subscription.id


async def _published(runtime: Runtime, count: int) -> list[tuple[str, str]]:
    """Publish `count` boots; every delivery row, as a wake-up names it: (delivery id, subscription id)."""
    await runtime.publisher.publish([{**BOOT, "chargePointId": 6000 + index} for index in range(count)])
    async with runtime.database.reading() as connection:
        rows = await connection.execute(select(deliveries.c.id, deliveries.c.subscription_id).order_by(deliveries.c.id))
        return [(delivery_id, subscription_id) for delivery_id, subscription_id in rows]


async def _claim_announced(
    runtime: Runtime, announced: list[tuple[str, str]], excluded: tuple[str, ...] = (), limit: int = 100
) -> list[ClaimedDelivery]:
    now = utcnow()
    return await runtime.delivery_store.claim_announced(
        ClaimRequest(WORKER, now, now + timedelta(minutes=1), limit, CAPS, excluded), announced
    )


async def test_an_announced_claim_keeps_the_caps_and_exclusions_and_leaves_the_rest_to_the_scan(
    runtime: Runtime,
) -> None:
    busy = await _subscribe(runtime, "busy")
    excluded = await _subscribe(runtime, "excluded")
    quiet = await _subscribe(runtime, "quiet")
    announced = await _published(runtime, 5)

    claimed = await _claim_announced(runtime, announced, excluded=(excluded,))
    now = utcnow()
    rest = await runtime.delivery_store.claim_due_deliveries(
        ClaimRequest("wrk_scan", now, now + timedelta(minutes=1), 100, {Via.WEBHOOK: 100})
    )

    # At most three of each subscription (its cap), the first ones in id order; none of the excluded one.
    taken = [(delivery.subscription_id, delivery.entity_id) for delivery in claimed]
    assert taken == [(sub, str(6000 + index)) for index in range(3) for sub in (busy, quiet)]
    assert claimed == sorted(claimed, key=lambda delivery: delivery.id)
    assert all(delivery.payload and delivery.event_name == "BootNotification" for delivery in claimed)
    # What it left stayed due, for the scan.
    assert sorted(delivery.id for delivery in claimed + rest) == sorted(id_ for id_, _sub in announced)


async def test_an_announced_claim_leases_no_row_already_leased_nor_of_a_disabled_or_kafka_subscription(
    runtime: Runtime,
) -> None:
    open_one = await _subscribe(runtime, "open")
    disabled = await _subscribe(runtime, "disabled")
    kafka = await _subscribe(runtime, "kafka")
    announced = await _published(runtime, 2)
    await runtime.subscription_store.set_enabled(disabled, False, utcnow(), "test")
    async with runtime.database.transaction() as connection:
        # A Kafka subscription's rows are claimed in publishing order, by the scan only.
        await connection.execute(update(subscriptions).where(subscriptions.c.id == kafka).values(via=Via.KAFKA.value))
    first = await _claim_announced(runtime, announced, limit=1)

    again = await _claim_announced(runtime, announced)

    assert [delivery.subscription_id for delivery in first + again] == [open_one, open_one]
    assert first[0].id != again[0].id


@pytest.mark.parametrize("backend", ["postgresql"], indirect=True)
async def test_an_announced_claim_is_one_statement_outside_a_transaction_block_on_postgresql(
    runtime: Runtime,
) -> None:
    await _subscribe(runtime, "hooks")
    announced = await _published(runtime, 3)
    assert runtime.notifier is not None
    # The publish's NOTIFY goes out first, so that the notifier's own connection is not among those watched.
    await runtime.notifier.flush()

    with sent_statements(runtime.database, "") as sent, driver_queries(runtime.database) as around:
        claimed = await _claim_announced(runtime, announced)
        await asyncio.sleep(0)  # asyncpg logs a query at the event loop's next turn

    assert len(claimed) == 3
    # No due read, no BEGIN, no SET LOCAL, no scan, no COMMIT: one round trip, on the driver past SQLAlchemy's cursor.
    # (A connection's first statements of a kind may have asyncpg look up types: once a connection, not a claim.)
    claims = [query for query in around if query.startswith("WITH leased AS")]
    transaction = [query for query in around if query.split()[0].upper() in {"BEGIN", "BEGIN;", "COMMIT;", "ROLLBACK;"}]
    assert (sent, len(claims), transaction) == ([], 1, [])


async def test_an_announced_delivery_of_an_event_made_long_before_it_is_claimed_with_its_payload(
    runtime: Runtime,
) -> None:
    subscription_id = await _subscribe(runtime, "late")
    made_ms = int((utcnow() - timedelta(hours=2)).timestamp() * 1000)
    # (new_id never goes back in time: the smallest id of that moment stands in for one made then.)
    old = Event(first_id_at("evt", made_ms), "BootNotification", orjson.dumps(BOOT), "old", utcnow())
    delivery_id = new_id("dlv")
    await EventStore(runtime.database).insert_event_for_subscription(old, delivery_id, subscription_id)

    [claimed] = await _claim_announced(runtime, [(delivery_id, subscription_id)])

    # Its event lies outside the window the join reads (events are made moments before their deliveries).
    assert (claimed.id, claimed.event_id, claimed.payload, claimed.entity_id) == (
        delivery_id,
        old.id,
        old.payload,
        "old",
    )


@pytest.mark.parametrize("backend", ["postgresql"], indirect=True)
async def test_announced_claims_and_records_after_the_first_take_no_connection_from_the_pool(
    runtime: Runtime,
) -> None:
    await _subscribe(runtime, "kept")
    store = runtime.delivery_store
    first = await _claim_announced(runtime, await _published(runtime, 1))
    await store.record_attempts([delivered_record_factory(d, WORKER) for d in first])
    first_ids = {delivery.id for delivery in first}
    published = [row for row in await _published(runtime, 3) if row[0] not in first_ids]
    checkouts: list[object] = []
    event.listen(runtime.database.engine.sync_engine.pool, "checkout", lambda *args: checkouts.append(args))

    claimed = await _claim_announced(runtime, published)
    await store.record_attempts([delivered_record_factory(d, WORKER) for d in claimed])

    assert (len(claimed), checkouts) == (3, [])
    async with runtime.database.reading() as connection:
        statuses = await connection.execute(
            select(deliveries.c.status).where(deliveries.c.id.in_([d.id for d in claimed]))
        )
        assert {status for (status,) in statuses} == {"delivered"}


@pytest.mark.parametrize("backend", ["postgresql"], indirect=True)
async def test_an_announced_claim_names_the_partition_its_deliveries_lie_in_and_the_tables_across_two(
    runtime: Runtime,
) -> None:
    subscription_id = await _subscribe(runtime, "parted")
    today = await _published(runtime, 2)
    # Deliveries of tomorrow's partition (made ahead), their events today's: outside the partition of events that the
    # claim names for them, so read apart.
    tomorrow_ms = int((utcnow() + timedelta(days=1)).timestamp() * 1000)
    ahead = [(first_id_at("dlv", tomorrow_ms), subscription_id)]
    event = Event(new_id("evt"), "BootNotification", orjson.dumps(BOOT), "ahead", utcnow())
    await EventStore(runtime.database).insert_event_for_subscription(event, ahead[0][0], subscription_id)
    assert runtime.notifier is not None
    await runtime.notifier.flush()

    with driver_queries(runtime.database) as around:
        one_partition = await _claim_announced(runtime, today[:1])
        of_tomorrow = await _claim_announced(runtime, ahead)
        across_two = await _claim_announced(runtime, [today[1], *ahead])
        await asyncio.sleep(0)  # asyncpg logs a query at the event loop's next turn

    claims = [query.split()[4] for query in around if query.startswith("WITH leased AS")]
    # Today's in the partition that holds today (a day's, or the historic one on the day the database was made).
    assert [claims[0].startswith("deliveries_"), claims[1][:12], claims[2]] == [True, "deliveries_p", "deliveries"]
    assert claims[0] != claims[1]
    assert [delivery.id for delivery in one_partition + of_tomorrow] == [today[0][0], ahead[0][0]]
    assert (of_tomorrow[0].event_id, of_tomorrow[0].payload) == (event.id, event.payload)
    # Tomorrow's delivery was leased by its own claim; the claim on the tables took today's other one.
    assert [delivery.id for delivery in across_two] == [today[1][0]]


@pytest.mark.parametrize("backend", ["postgresql"], indirect=True)
@pytest.mark.parametrize("across_two", [False, True], ids=["on_a_partition", "on_the_tables"])
async def test_an_announced_claim_is_planned_anew_each_time_its_calls_double(
    runtime: Runtime, across_two: bool
) -> None:
    subscription_id = await _subscribe(runtime, "replanned")
    announced = await _published(runtime, 1)
    if across_two:
        # With a delivery of tomorrow's partition the claim is on the tables, whose generic plan ages as well.
        tomorrow_ms = int((utcnow() + timedelta(days=1)).timestamp() * 1000)
        announced.append((first_id_at("dlv", tomorrow_ms), subscription_id))
        event = Event(new_id("evt"), "BootNotification", orjson.dumps(BOOT), "ahead", utcnow())
        await EventStore(runtime.database).insert_event_for_subscription(event, announced[-1][0], subscription_id)
    assert runtime.notifier is not None
    await runtime.notifier.flush()

    with driver_queries(runtime.database) as around:
        claims = [await _claim_announced(runtime, announced) for _ in range(33)]
        await asyncio.sleep(0)  # asyncpg logs a query at the event loop's next turn

    # Once leased, the deliveries are no longer due: the later claims lease nothing, but are sent all the same.
    assert [len(claimed) for claimed in claims] == [len(announced)] + [0] * 32
    sent = [query for query in around if query.startswith("WITH leased AS")]
    assert {query.split()[4] == "deliveries" for query in sent} == {across_two}
    marks = [query.rpartition("/*")[2] if query.endswith("*/") else "" for query in sent]
    assert marks == [""] * 16 + [" planned anew at 16 */"] * 16 + [" planned anew at 32 */"]


@pytest.mark.parametrize("backend", ["postgresql"], indirect=True)
async def test_an_announced_claim_on_a_partition_expiry_dropped_since_reads_the_partitions_again_and_leases(
    runtime: Runtime,
) -> None:
    await _subscribe(runtime, "expired")
    announced = await _published(runtime, 2)
    # The first claim reads the partitions' bounds, and names today's partitions.
    [first] = await _claim_announced(runtime, announced[:1])
    # Expiry run as if a month had passed: today's partitions dropped, the pending delivery and its event copied back
    # (into the default partitions) first.
    await runtime.retention.expire(utcnow() + timedelta(days=31), EXPIRY)

    claimed = await _claim_announced(runtime, announced[1:])
    again = await _claim_announced(runtime, announced)

    assert first.id == announced[0][0]
    assert [(delivery.id, delivery.subscription_id) for delivery in claimed] == announced[1:]
    assert claimed[0].payload == orjson.dumps({**BOOT, "chargePointId": 6001})
    assert again == []  # both leased already
