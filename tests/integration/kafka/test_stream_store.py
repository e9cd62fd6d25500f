"""Kafka streams on both backends: which events a stream reads, when it is ready, and how its batches are recorded.

A Kafka subscription gets no delivery row at publish; its stream reads the numbered event log past its
position. These tests drive the store directly, with no broker: the streamer's own behaviour is proven
against a real one in tests/integration/dispatch/test_kafka_streams.py.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import replace
from datetime import timedelta

import pytest
from alembic import command
from sqlalchemy import Connection, select

from chargewire.catalog import load_event_types
from chargewire.clock import utcnow
from chargewire.ids import new_id
from chargewire.kafka.streams import LeaseLost, Stream, StreamLook
from chargewire.models import Attempt, DeliveryStatus, Via
from chargewire.runtime import Runtime
from chargewire.services.subscriptions import OPERATOR
from chargewire.store import migrate
from chargewire.store.delivery_claims import ClaimRequest
from chargewire.store.delivery_log import DeliveryFilter
from chargewire.store.delivery_records import AttemptRecord, ClaimedDelivery
from chargewire.store.delivery_stats import DeliveryStats
from chargewire.store.event_log import number_events
from chargewire.store.event_store import EventStore
from chargewire.store.tables import attempts, stream_pauses

BOOT = load_event_types()["BootNotification"].example
WORKER = "wrk_one"
KAFKA_BODY = {
    "via": "kafka",
    "notifications": ["BootNotification"],
    "kafka": {"topic": "t", "brokers": ["127.0.0.1:9"]},
}


def _boots(first: int, count: int) -> list[dict[str, object]]:
    return [{**BOOT, "chargePointId": first + index} for index in range(count)]


async def _subscribe(runtime: Runtime, via: Via = Via.KAFKA, **extra: object) -> str:
    owner = await runtime.tokens.create("owner", ["notifications:manage"])
    body: dict[str, object] = {"via": via.value, "notifications": ["BootNotification"], **extra}
    if via is Via.KAFKA:
        body["kafka"] = {"topic": "boots", "brokers": ["127.0.0.1:9"]}
    else:
        body["webhook"] = {"callbackUrl": "http://127.0.0.1:9/boots"}
    return (await runtime.subscriptions.create(owner.token, body)).subscription.id


async def _ready(runtime: Runtime) -> dict[str, Stream]:
    return {stream.subscription_id: stream for stream in await runtime.stream_store.ready_streams(utcnow())}


async def _streamed_charge_points(runtime: Runtime, subscription_id: str) -> list[str | None]:
    """What a stream would send next, read from its current position to the end of the log."""
    stream = (await _ready(runtime))[subscription_id]
    read = await runtime.stream_store.read(stream, ["BootNotification"], stream.position, 1000)
    return [delivery.entity_id for delivery in read.deliveries]


async def _lease(runtime: Runtime, stream: Stream, worker: str = WORKER) -> bool:
    now = utcnow()
    return await runtime.stream_store.lease(stream, worker, now, now + timedelta(minutes=1))


def _delivered(delivery: ClaimedDelivery) -> AttemptRecord:
    """A delivered attempt of a Kafka record, whose offset is its charge point id."""
    attempt = Attempt(
        id=new_id("att"),
        delivery_id=delivery.id,
        number=1,
        started_at=utcnow(),
        duration_ms=3.0,
        outcome="delivered",
        request_headers={"kafka-topic": "boots", "kafka-key": delivery.entity_id or delivery.id},
        response_headers={"kafka-partition": "0", "kafka-offset": delivery.entity_id or ""},
    )
    return AttemptRecord(attempt, delivery.subscription_id, WORKER, DeliveryStatus.DELIVERED, None, None)


def _refused(delivery: ClaimedDelivery) -> AttemptRecord:
    """An attempt of a Kafka record that timed out, to be retried in a minute."""
    attempt = replace(
        _delivered(delivery).attempt,
        outcome="retry",
        error_class="timeout",
        error_message="no ack",
        response_headers=None,
    )
    retry_at = utcnow() + timedelta(minutes=1)
    return AttemptRecord(attempt, delivery.subscription_id, WORKER, DeliveryStatus.PENDING, retry_at, "no ack")


async def _deliver_rows(runtime: Runtime) -> None:
    """Record every due row as delivered, as a worker would."""
    now = utcnow()
    claimed = await runtime.delivery_store.claim_due_deliveries(
        ClaimRequest(WORKER, now, now + timedelta(minutes=1), 100, {Via.KAFKA: 100, Via.WEBHOOK: 100})
    )
    await runtime.delivery_store.record_attempts([_delivered(delivery) for delivery in claimed])


async def test_a_kafka_subscription_gets_no_rows_at_publish_and_streams_only_what_came_after_it(
    runtime: Runtime,
) -> None:
    await runtime.publisher.publish(_boots(100, 2))
    subscription_id = await _subscribe(runtime)
    await runtime.publisher.publish(_boots(200, 3))

    assert await runtime.delivery_store.list_deliveries(DeliveryFilter(), None, 10) == []
    assert await _streamed_charge_points(runtime, subscription_id) == ["200", "201", "202"]
    counts = await runtime.delivery_store.queue_depth(utcnow())
    assert counts["due"] == 3  # the queue depth counts what the stream has yet to read


async def test_a_test_send_to_a_kafka_subscription_is_a_row_that_no_stream_reads(runtime: Runtime) -> None:
    subscription_id = await _subscribe(runtime)
    other = await _subscribe(runtime)

    await runtime.publisher.publish_to(subscription_id, {**BOOT, "chargePointId": 7})

    [row] = await runtime.delivery_store.list_deliveries(DeliveryFilter(), None, 10)
    assert (row.subscription_id, row.status) == (subscription_id, DeliveryStatus.PENDING)
    assert await _ready(runtime) == {}  # the one with a pending row waits; the other has nothing to read
    assert other not in await _ready(runtime)


async def test_a_stream_waits_while_its_subscription_has_pending_rows(runtime: Runtime) -> None:
    subscription_id = await _subscribe(runtime)
    await runtime.publisher.publish_to(subscription_id, {**BOOT, "chargePointId": 7})
    await runtime.publisher.publish(_boots(300, 2))

    assert subscription_id not in await _ready(runtime)

    await _deliver_rows(runtime)
    assert subscription_id in await _ready(runtime)


async def test_events_published_while_a_subscription_is_disabled_are_skipped_and_its_earlier_backlog_is_kept(
    runtime: Runtime,
) -> None:
    subscription_id = await _subscribe(runtime)
    await runtime.publisher.publish(_boots(400, 2))  # the backlog from before the pause
    await runtime.subscription_store.set_enabled(subscription_id, False, utcnow(), "test")
    await runtime.publisher.publish(_boots(500, 2))  # published while disabled
    assert subscription_id not in await _ready(runtime)

    await runtime.subscription_store.set_enabled(subscription_id, True, utcnow())
    await runtime.publisher.publish(_boots(600, 1))

    assert await _streamed_charge_points(runtime, subscription_id) == ["400", "401", "600"]
    assert (await runtime.delivery_store.queue_depth(utcnow()))["due"] == 3


async def test_a_pause_the_stream_has_passed_is_dropped_at_its_next_lease(runtime: Runtime) -> None:
    subscription_id = await _subscribe(runtime)
    await runtime.subscription_store.set_enabled(subscription_id, False, utcnow(), "test")
    await runtime.publisher.publish(_boots(650, 2))  # skipped
    await runtime.subscription_store.set_enabled(subscription_id, True, utcnow())
    await runtime.publisher.publish(_boots(660, 1))
    stream = (await _ready(runtime))[subscription_id]
    assert await _lease(runtime, stream)
    read = await runtime.stream_store.read(stream, ["BootNotification"], stream.position, 1000)
    attempted = [(delivery, _delivered(delivery)) for delivery in read.deliveries]
    await runtime.stream_store.record_batch(stream, WORKER, (stream.position, read.position), attempted, None)
    assert await _pause_count(runtime) == 1  # passed, and kept until the stream is leased again

    assert await _lease(runtime, Stream(subscription_id, read.position))

    assert await _pause_count(runtime) == 0


async def _pause_count(runtime: Runtime) -> int:
    async with runtime.database.reading() as connection:
        return len((await connection.execute(select(stream_pauses.c.from_seq))).all())


async def test_disabling_and_enabling_with_nothing_published_between_skips_nothing(runtime: Runtime) -> None:
    subscription_id = await _subscribe(runtime)
    await runtime.subscription_store.set_enabled(subscription_id, False, utcnow(), "test")
    await runtime.subscription_store.set_enabled(subscription_id, True, utcnow())
    await runtime.subscription_store.set_enabled(subscription_id, False, utcnow(), "test")
    await runtime.subscription_store.set_enabled(subscription_id, True, utcnow())
    await runtime.publisher.publish(_boots(700, 2))

    assert await _streamed_charge_points(runtime, subscription_id) == ["700", "701"]


async def test_a_webhook_that_becomes_kafka_streams_what_is_published_from_then_on(runtime: Runtime) -> None:
    subscription_id = await _subscribe(runtime, Via.WEBHOOK)
    await runtime.publisher.publish(_boots(800, 1))  # a row, for the webhook

    await runtime.subscriptions.replace(OPERATOR, subscription_id, KAFKA_BODY)
    await runtime.publisher.publish(_boots(900, 1))

    [row] = await runtime.delivery_store.list_deliveries(DeliveryFilter(), None, 10)
    assert row.status is DeliveryStatus.PENDING
    assert await _ready(runtime) == {}  # the webhook-era row goes first
    await _deliver_rows(runtime)
    assert await _streamed_charge_points(runtime, subscription_id) == ["900"]


async def test_a_kafka_subscription_that_becomes_a_webhook_takes_its_unread_backlog_along_as_rows(
    runtime: Runtime,
) -> None:
    subscription_id = await _subscribe(runtime)
    await runtime.publisher.publish(_boots(950, 3))
    webhook = {
        "via": "webhook",
        "notifications": ["BootNotification"],
        "webhook": {"callbackUrl": "http://127.0.0.1:9/boots"},
        "filter": {"chargePointId": {"$nin": [951]}},
    }

    await runtime.subscriptions.replace(OPERATOR, subscription_id, webhook)

    rows = await runtime.delivery_store.list_deliveries(DeliveryFilter(), None, 10)
    events = await EventStore(runtime.database).get_events([row.event_id for row in rows])
    assert sorted(event.entity_id or "" for event in events) == ["950", "952"]  # the filter applies
    assert {row.status for row in rows} == {DeliveryStatus.PENDING}
    assert await runtime.stream_store.ready_streams(utcnow()) == []


async def test_a_batch_in_flight_when_its_subscription_becomes_a_webhook_is_recorded_and_not_sent_again_as_rows(
    runtime: Runtime,
) -> None:
    subscription_id = await _subscribe(runtime)
    await runtime.publisher.publish(_boots(1300, 4))
    stream = (await _ready(runtime))[subscription_id]
    assert await _lease(runtime, stream)
    read = await runtime.stream_store.read(stream, ["BootNotification"], stream.position, 1000)
    # While the batch is in flight, the move turns the stream's backlog (the batch's events) into rows, and a
    # worker claims one of them before the batch is recorded.
    webhook = {
        "via": "webhook",
        "notifications": ["BootNotification"],
        "webhook": {"callbackUrl": "http://127.0.0.1:9/boots"},
    }
    await runtime.subscriptions.replace(OPERATOR, subscription_id, webhook)
    now = utcnow()
    [claimed] = await runtime.delivery_store.claim_due_deliveries(
        ClaimRequest("wrk_web", now, now + timedelta(minutes=1), 1, {Via.WEBHOOK: 1})
    )
    names = {delivery.event_id: delivery.entity_id for delivery in read.deliveries}
    outcomes = [_delivered, _delivered, _delivered, _refused]
    attempted = [(delivery, outcome(delivery)) for delivery, outcome in zip(read.deliveries, outcomes, strict=True)]

    await runtime.stream_store.record_batch(stream, WORKER, (stream.position, read.position), attempted, None)

    rows = await runtime.delivery_store.list_deliveries(DeliveryFilter(), None, 10)
    delivered = sorted(names[row.event_id] or "" for row in rows if row.status is DeliveryStatus.DELIVERED)
    due = sorted(names[row.event_id] or "" for row in rows if row.status is DeliveryStatus.PENDING)
    assert delivered == ["1300", "1301", "1302"]  # recorded from the batch, with its attempt
    # Left to the webhook: the record the batch failed, and the row claimed before the batch was recorded (a
    # second delivery, as at least once allows, unless it is the one the batch failed).
    assert due == sorted({"1303", names[claimed.event_id] or ""})
    recorded = next(row for row in rows if row.status is DeliveryStatus.DELIVERED)
    [attempt] = await runtime.delivery_store.list_attempts(recorded.id)
    assert attempt.outcome == "delivered"


async def test_a_batch_is_recorded_only_by_the_worker_that_holds_the_lease(runtime: Runtime) -> None:
    subscription_id = await _subscribe(runtime)
    await runtime.publisher.publish(_boots(1000, 3))
    stream = (await _ready(runtime))[subscription_id]
    assert await _lease(runtime, stream)
    assert not await _lease(runtime, stream, "wrk_two")  # held
    assert subscription_id not in await _ready(runtime)

    read = await runtime.stream_store.read(stream, ["BootNotification"], stream.position, 1000)
    attempted = [(delivery, _delivered(delivery)) for delivery in read.deliveries]
    with pytest.raises(LeaseLost):
        await runtime.stream_store.record_batch(stream, "wrk_two", (stream.position, read.position), attempted, None)
    assert await runtime.delivery_store.list_deliveries(DeliveryFilter(), None, 10) == []

    await runtime.stream_store.record_batch(stream, WORKER, (stream.position, read.position), attempted, None)

    rows = await runtime.delivery_store.list_deliveries(DeliveryFilter(), None, 10)
    assert sorted((row.status, row.attempt_count) for row in rows) == [(DeliveryStatus.DELIVERED, 1)] * 3
    [attempt] = await runtime.delivery_store.list_attempts(rows[0].id)
    assert attempt.outcome == "delivered"
    assert await _ready(runtime) == {}  # caught up, and the lease was handed back
    assert (await runtime.delivery_store.queue_depth(utcnow()))["due"] == 0


async def test_a_batch_logs_one_attempt_for_the_records_it_delivered_and_its_failures_keep_their_own(
    runtime: Runtime,
) -> None:
    subscription_id = await _subscribe(runtime)
    await runtime.publisher.publish(_boots(1200, 4))
    stream = (await _ready(runtime))[subscription_id]
    assert await _lease(runtime, stream)
    read = await runtime.stream_store.read(stream, ["BootNotification"], stream.position, 1000)
    *sent, refused = read.deliveries
    attempted = [(delivery, _delivered(delivery)) for delivery in sent] + [(refused, _refused(refused))]

    await runtime.stream_store.record_batch(stream, WORKER, (stream.position, read.position), attempted, None)

    shares = [await runtime.delivery_store.list_attempts(delivery.id) for delivery in sent]
    assert len({attempt.id for [attempt] in shares}) == 1  # one attempt, shared by the batch's records
    for delivery, [attempt] in zip(sent, shares, strict=True):
        assert (attempt.delivery_id, attempt.number, attempt.outcome) == (delivery.id, 1, "delivered")
        assert attempt.request_headers == {"kafka-topic": "boots"}  # the key differs per record: not kept
        assert attempt.response_headers == {"kafka-partition": "0", "kafka-offset": delivery.entity_id}
    [retry] = await runtime.delivery_store.list_attempts(refused.id)
    assert (retry.outcome, retry.error_class, retry.request_headers["kafka-key"]) == ("retry", "timeout", "1203")

    stats = DeliveryStats(runtime.database)
    since = utcnow() - timedelta(minutes=1)
    outcomes = {count.outcome: count.count for count in await stats.attempts_by_minute(since)}
    assert outcomes == {"delivered": 3, "retry": 1}
    assert sum(bucket.count for bucket in await stats.latency_by_minute(since, [60.0])) == 3


async def test_downgrading_below_attempt_batches_gives_each_batched_delivery_its_attempt_row(runtime: Runtime) -> None:
    streamed = await _stream_one_batch(runtime, _boots(1300, 3), _delivered)

    async with runtime.database.transaction() as connection:
        await connection.run_sync(_migrate_to, "0004")
        rows = (await connection.execute(select(attempts.c.delivery_id, attempts.c.outcome))).all()
        await connection.run_sync(_migrate_to, "head")

    assert sorted(rows) == sorted((delivery.id, "delivered") for delivery in streamed)


async def test_dropping_and_restoring_the_event_check_of_deliveries_keeps_every_attempt_row(runtime: Runtime) -> None:
    streamed = await _stream_one_batch(runtime, _boots(1350, 3), _refused)
    logged = select(attempts.c.delivery_id, attempts.c.outcome, attempts.c.error_message)

    async with runtime.database.transaction() as connection:
        before = sorted((await connection.execute(logged)).all())
        await connection.run_sync(_migrate_to, "0005")  # SQLite rebuilds the deliveries table both ways
        restored = sorted((await connection.execute(logged)).all())
        await connection.run_sync(_migrate_to, "head")
        after = sorted((await connection.execute(logged)).all())

    assert before == sorted((delivery.id, "retry", "no ack") for delivery in streamed)
    assert restored == before
    assert after == before


async def _stream_one_batch(
    runtime: Runtime, payloads: list[dict[str, object]], outcome: Callable[[ClaimedDelivery], AttemptRecord]
) -> list[ClaimedDelivery]:
    """Publish `payloads` to a new Kafka subscription and record them as one streamed batch with `outcome`."""
    subscription_id = await _subscribe(runtime)
    await runtime.publisher.publish(payloads)
    stream = (await _ready(runtime))[subscription_id]
    assert await _lease(runtime, stream)
    read = await runtime.stream_store.read(stream, ["BootNotification"], stream.position, 1000)
    attempted = [(delivery, outcome(delivery)) for delivery in read.deliveries]
    await runtime.stream_store.record_batch(stream, WORKER, (stream.position, read.position), attempted, None)
    return read.deliveries


def _migrate_to(connection: Connection, revision: str) -> None:
    config = migrate.alembic_config()
    config.attributes["connection"] = connection
    if revision == "head":
        command.upgrade(config, revision)
    else:
        command.downgrade(config, revision)


async def test_a_lease_that_ran_out_can_be_taken_by_another_worker_and_the_first_records_nothing(
    runtime: Runtime,
) -> None:
    subscription_id = await _subscribe(runtime)
    await runtime.publisher.publish(_boots(1100, 2))
    stream = (await _ready(runtime))[subscription_id]
    past = utcnow() - timedelta(minutes=2)
    assert await runtime.stream_store.lease(stream, WORKER, past, past + timedelta(minutes=1))

    assert await _lease(runtime, stream, "wrk_two")

    read = await runtime.stream_store.read(stream, ["BootNotification"], stream.position, 1000)
    attempted = [(delivery, _delivered(delivery)) for delivery in read.deliveries]
    with pytest.raises(LeaseLost):
        await runtime.stream_store.record_batch(stream, WORKER, (stream.position, read.position), attempted, None)


async def test_a_lease_its_worker_could_not_hand_back_is_ready_for_that_worker_at_once_and_for_others_once_it_runs_out(
    runtime: Runtime,
) -> None:
    subscription_id = await _subscribe(runtime)
    await runtime.publisher.publish(_boots(1250, 2))
    store = runtime.stream_store
    stream = (await _ready(runtime))[subscription_id]
    assert await _lease(runtime, stream)  # and the run ends without a release, as when the database went away

    assert [ready.subscription_id for ready in await store.ready_streams(utcnow(), WORKER)] == [subscription_id]
    assert await store.ready_streams(utcnow(), "wrk_two") == []
    assert not await _lease(runtime, stream, "wrk_two")
    assert await _lease(runtime, stream)
    later = utcnow() + timedelta(minutes=2)
    assert [ready.subscription_id for ready in await store.ready_streams(later, "wrk_two")] == [subscription_id]


async def test_a_stream_behind_the_log_is_work_for_its_holder_and_for_no_other_worker_until_its_lease_runs_out(
    runtime: Runtime,
) -> None:
    subscription_id = await _subscribe(runtime)
    await runtime.publisher.publish(_boots(1200, 2))
    stream = (await _ready(runtime))[subscription_id]
    store = runtime.stream_store
    assert await store.work_due(utcnow(), "wrk_two")  # free to lease: work for anyone

    assert await _lease(runtime, stream)

    assert await store.work_due(utcnow(), WORKER)
    assert not await store.work_due(utcnow(), "wrk_two")
    assert await store.work_due(utcnow() + timedelta(minutes=2), "wrk_two")


async def test_publishing_waits_for_an_earlier_transaction_that_took_event_numbers_to_commit(
    runtime: Runtime,
) -> None:
    subscription_id = await _subscribe(runtime)
    async with runtime.database.transaction() as connection:
        held_seq = await number_events(connection, 1)
        later = asyncio.create_task(runtime.publisher.publish(_boots(1200, 1)))
        await asyncio.sleep(0.3)
        assert not later.done()  # its numbers would come after ours, so its commit does too
        assert (await runtime.stream_store.newest_work())[1] == held_seq - 1  # ours is not committed yet
    await asyncio.wait_for(later, 10)

    assert (await runtime.stream_store.newest_work())[1] == held_seq + 1
    assert await _streamed_charge_points(runtime, subscription_id) == ["1200"]


async def test_a_read_tells_a_running_stream_to_stop_once_its_subscription_is_disabled(runtime: Runtime) -> None:
    subscription_id = await _subscribe(runtime)
    await runtime.publisher.publish(_boots(1300, 2))
    stream = (await _ready(runtime))[subscription_id]

    await runtime.subscription_store.set_enabled(subscription_id, False, utcnow(), "test")

    read = await runtime.stream_store.read(stream, ["BootNotification"], stream.position, 1000)
    assert read.stopped
    assert read.deliveries == []


async def test_a_read_skips_a_pause_that_began_after_the_stream_was_looked_up(runtime: Runtime) -> None:
    subscription_id = await _subscribe(runtime)
    await runtime.publisher.publish(_boots(1400, 1))
    stream = (await _ready(runtime))[subscription_id]  # no pauses yet
    await runtime.subscription_store.set_enabled(subscription_id, False, utcnow(), "test")
    await runtime.publisher.publish(_boots(1500, 1))
    await runtime.subscription_store.set_enabled(subscription_id, True, utcnow())

    read = await runtime.stream_store.read(stream, ["BootNotification"], stream.position, 1000)

    assert [delivery.entity_id for delivery in read.deliveries] == ["1400"]


async def test_a_batch_the_database_refuses_is_recorded_bare_and_the_stream_moves_past_it(runtime: Runtime) -> None:
    subscription_id = await _subscribe(runtime)
    await runtime.publisher.publish(_boots(1300, 3))
    stream = (await _ready(runtime))[subscription_id]
    assert await _lease(runtime, stream)
    read = await runtime.stream_store.read(stream, ["BootNotification"], stream.position, 1000)
    *sent, failed = read.deliveries
    unencodable = _refused(failed)
    unencodable.attempt = replace(unencodable.attempt, request_headers={"kafka-key": "\udcff"})
    attempted = [(delivery, _delivered(delivery)) for delivery in sent] + [(failed, unencodable)]

    await runtime.stream_store.record_batch(stream, WORKER, (stream.position, read.position), attempted, None)

    [retry] = await runtime.delivery_store.list_attempts(failed.id)
    assert (retry.outcome, retry.error_class, retry.request_headers) == ("retry", "timeout", {})
    assert all([await runtime.delivery_store.list_attempts(delivery.id) for delivery in sent])
    assert subscription_id not in await _ready(runtime)


async def test_look_finds_streams_only_while_an_enabled_kafka_subscription_has_one(runtime: Runtime) -> None:
    await _subscribe(runtime, Via.WEBHOOK)
    assert not (await runtime.stream_store.look(utcnow())).streams_exist

    subscription_id = await _subscribe(runtime)
    assert await runtime.stream_store.look(utcnow()) == StreamLook([], streams_exist=True)

    await runtime.subscription_store.set_enabled(subscription_id, False, utcnow(), "test")
    assert not (await runtime.stream_store.look(utcnow())).streams_exist


async def test_look_finds_a_stream_ready_once_its_events_are_published(runtime: Runtime) -> None:
    subscription_id = await _subscribe(runtime)
    await runtime.publisher.publish(_boots(1, 2))

    look = await runtime.stream_store.look(utcnow())

    assert [stream.subscription_id for stream in look.ready] == [subscription_id]
    assert look.streams_exist
