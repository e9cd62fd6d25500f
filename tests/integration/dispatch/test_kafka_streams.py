"""Kafka streams against a real broker: new events go from the log to the topic and into the delivery log;
a failed batch becomes rows that go first; several workers send each event once."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections import defaultdict
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence

import orjson
import pytest

from chargewire.catalog import load_event_types
from chargewire.clock import utcnow
from chargewire.config import Settings
from chargewire.devtools.kafka_broker import KafkaBroker
from chargewire.dispatch.dispatcher import Dispatcher
from chargewire.models import DeliveryStatus
from chargewire.runtime import Runtime
from chargewire.services.subscriptions import OPERATOR, CreatedSubscription
from chargewire.services.tokens import CreatedToken
from chargewire.store.delivery_log import DeliveryFilter
from tests.support.delivered import delivered_count
from tests.support.kafka_topics import consume_topic, deliver_once

pytestmark = pytest.mark.timeout(240)

METER = load_event_types()["SessionMeterValuesNotification"].example
SAMPLE = METER["meterValues"][0]
RETRIES = [0.0, 1.0, 1.0, 2.0, 4.0, 8.0, 16.0]


@pytest.fixture
def settings(settings: Settings) -> Settings:
    """Small stream batches, so that a few hundred events make several; retries that outlast a missing topic.

    A 3 s message timeout (past the 2 s an unknown topic is awaited) keeps Kafka retries 4 s apart at least.
    """
    update = {"kafka_stream_batch_size": 150, "retry_schedule_s": RETRIES, "kafka_message_timeout_s": 3.0}
    return settings.model_copy(update=update)


def _meter_events(sessions: int, per_session: int, first_value: int = 0) -> list[dict[str, object]]:
    return [
        {**METER, "sessionId": 7000 + session, "meterValues": [{**SAMPLE, "value": first_value + step}]}
        for step in range(per_session)
        for session in range(sessions)
    ]


async def _subscribe(runtime: Runtime, owner: CreatedToken, broker: KafkaBroker, topic: str) -> CreatedSubscription:
    body = {
        "via": "kafka",
        "notifications": ["SessionMeterValuesNotification"],
        "kafka": {"topic": topic, "brokers": [broker.bootstrap("PLAINTEXT")]},
    }
    return await runtime.subscriptions.create(owner.token, body)


async def _until(condition: Callable[[], Awaitable[bool]], timeout_s: float = 60) -> None:
    """Wait until `condition()` is true."""
    deadline = asyncio.get_running_loop().time() + timeout_s
    while not await condition():
        assert asyncio.get_running_loop().time() < deadline, "timed out"
        await asyncio.sleep(0.1)


async def _until_delivered(runtime: Runtime, count: int) -> None:
    """Wait until the delivery log holds `count` delivered deliveries."""

    async def reached() -> bool:
        return await delivered_count(runtime.database) == count

    await _until(reached)


@contextlib.asynccontextmanager
async def _running(dispatcher: Dispatcher) -> AsyncIterator[Dispatcher]:
    stop = asyncio.Event()
    task = asyncio.create_task(dispatcher.run(stop))
    try:
        yield dispatcher
    finally:
        stop.set()
        await asyncio.wait_for(task, 30)


def _values_per_session(records: Sequence[tuple[bytes, bytes]]) -> dict[bytes, list[float]]:
    values: dict[bytes, list[float]] = defaultdict(list)
    for key, value in records:
        values[key].append(orjson.loads(value)["meterValues"][0]["value"])
    return values


async def test_streamed_events_reach_the_topic_in_batches_and_the_delivery_log_as_delivered(
    runtime: Runtime, owner: CreatedToken, kafka_broker: KafkaBroker
) -> None:
    topic = f"streamed-{uuid.uuid4().hex[:8]}"
    kafka_broker.create_topic(topic, partitions=3)
    created = await _subscribe(runtime, owner, kafka_broker, topic)
    await runtime.publisher.publish(_meter_events(sessions=4, per_session=100))
    attempted, batch_sizes = await deliver_once(runtime)

    assert attempted == 400
    assert batch_sizes == [150, 150, 100]
    records = await asyncio.to_thread(consume_topic, kafka_broker, topic, 400)
    assert len(records) == 400
    assert all(values == sorted(values) for values in _values_per_session(records).values())
    counts = await runtime.delivery_store.queue_depth(utcnow())
    assert (await delivered_count(runtime.database), counts["due"], counts["scheduled"]) == (400, 0, 0)
    where = DeliveryFilter(subscription_id=created.subscription.id)
    [newest] = (await runtime.deliveries.list_page(OPERATOR, where, None, 1)).deliveries
    detail = await runtime.deliveries.get(OPERATOR, newest.id)
    [attempt] = detail.attempts
    assert attempt.outcome == "delivered"
    assert "kafka-offset" in (attempt.response_headers or {})
    assert attempt.request_headers["kafka-topic"] == topic


async def test_a_failed_batch_becomes_rows_that_go_before_anything_published_after_it(
    runtime: Runtime, owner: CreatedToken, kafka_broker: KafkaBroker
) -> None:
    topic = f"late-{uuid.uuid4().hex[:8]}"  # created only after the first attempts failed
    created = await _subscribe(runtime, owner, kafka_broker, topic)
    where = DeliveryFilter(subscription_id=created.subscription.id)
    async with _running(runtime.dispatcher()):
        await runtime.publisher.publish(_meter_events(sessions=3, per_session=10))

        async def failed_once() -> bool:
            page = await runtime.deliveries.list_page(OPERATOR, where, None, 100)
            return len(page.deliveries) == 30 and all(d.last_error for d in page.deliveries)

        await _until(failed_once)
        [sample, *_] = (await runtime.deliveries.list_page(OPERATOR, where, None, 1)).deliveries
        assert sample.status is DeliveryStatus.PENDING
        assert (await runtime.deliveries.get(OPERATOR, sample.id)).attempts[0].error_class == "unknown_topic"

        await runtime.publisher.publish(_meter_events(sessions=3, per_session=10, first_value=10))
        await asyncio.sleep(1.0)
        assert len((await runtime.deliveries.list_page(OPERATOR, where, None, 100)).deliveries) == 30  # waiting
        await asyncio.to_thread(kafka_broker.create_topic, topic, 1)
        records = await asyncio.to_thread(consume_topic, kafka_broker, topic, 60, 90)

    assert len(records) >= 60
    for values in _values_per_session(records).values():
        first_seen = list(dict.fromkeys(values))
        assert first_seen == sorted(first_seen)  # the retried rows went before the streamed events
    counts = await runtime.delivery_store.queue_depth(utcnow())
    assert await delivered_count(runtime.database) == 60
    assert (counts["due"], counts["scheduled"], counts["failed"]) == (0, 0, 0)


async def test_two_workers_send_each_streamed_event_once(
    runtime: Runtime, owner: CreatedToken, kafka_broker: KafkaBroker, settings: Settings
) -> None:
    topic = f"shared-{uuid.uuid4().hex[:8]}"
    kafka_broker.create_topic(topic, partitions=2)
    await _subscribe(runtime, owner, kafka_broker, topic)
    async with await Runtime.open(settings) as other, _running(runtime.dispatcher()), _running(other.dispatcher()):
        for first_value in range(0, 1000, 100):
            await runtime.publisher.publish(_meter_events(sessions=2, per_session=100, first_value=first_value))
        records = await asyncio.to_thread(consume_topic, kafka_broker, topic, 2000)
        await _until_delivered(runtime, 2000)

    assert len(records) == 2000  # none twice
    assert all(values == sorted(values) for values in _values_per_session(records).values())


async def test_a_payload_filter_applies_to_what_the_stream_reads(
    runtime: Runtime, owner: CreatedToken, kafka_broker: KafkaBroker
) -> None:
    topic = f"filtered-{uuid.uuid4().hex[:8]}"
    kafka_broker.create_topic(topic, partitions=1)
    body = {
        "via": "kafka",
        "notifications": ["SessionMeterValuesNotification"],
        "kafka": {"topic": topic, "brokers": [kafka_broker.bootstrap("PLAINTEXT")]},
        "filter": {"sessionId": 7001},
    }
    await runtime.subscriptions.create(owner.token, body)
    await runtime.publisher.publish(_meter_events(sessions=3, per_session=5))
    attempted, _batch_sizes = await deliver_once(runtime)
    assert attempted == 5
    records = await asyncio.to_thread(consume_topic, kafka_broker, topic, 5)
    assert {key for key, _value in records} == {b"7001"}
    assert (await runtime.delivery_store.queue_depth(utcnow()))["due"] == 0


async def test_under_steady_publishing_a_worker_keeps_its_stream_and_claims_no_rows(
    runtime: Runtime, owner: CreatedToken, kafka_broker: KafkaBroker
) -> None:
    topic = f"steady-{uuid.uuid4().hex[:8]}"
    kafka_broker.create_topic(topic, partitions=1)
    await _subscribe(runtime, owner, kafka_broker, topic)
    calls = {"lease": 0, "claim": 0}
    lease, claim = runtime.stream_store.lease, runtime.delivery_store.claim_due_deliveries

    async def counted_lease(*args: object) -> bool:
        calls["lease"] += 1
        return await lease(*args)  # type: ignore[arg-type]

    async def counted_claim(*args: object) -> object:
        calls["claim"] += 1
        return await claim(*args)  # type: ignore[arg-type]

    runtime.stream_store.lease = counted_lease  # type: ignore[method-assign]
    runtime.delivery_store.claim_due_deliveries = counted_claim  # type: ignore[method-assign,assignment]
    async with _running(runtime.dispatcher()):
        for published in range(20, 101, 20):
            await runtime.publisher.publish(_meter_events(sessions=2, per_session=10, first_value=published))
            await _until_delivered(runtime, published)
            await asyncio.sleep(0.2)  # nothing new meanwhile: the stream has caught up
        records = await asyncio.to_thread(consume_topic, kafka_broker, topic, 100)

    assert len(records) == 100
    assert calls["lease"] == 1  # caught up between publishes, it held on for the next ones
    assert calls["claim"] == 0  # no row was due, so the worker never took the write lock to claim


async def test_a_running_stream_stops_at_a_disable_and_skips_what_was_published_meanwhile(
    runtime: Runtime, owner: CreatedToken, kafka_broker: KafkaBroker
) -> None:
    topic = f"paused-{uuid.uuid4().hex[:8]}"
    kafka_broker.create_topic(topic, partitions=1)
    created = await _subscribe(runtime, owner, kafka_broker, topic)
    subscription_id = created.subscription.id

    async with _running(runtime.dispatcher()):
        await runtime.publisher.publish(_meter_events(sessions=2, per_session=10))
        await _until_delivered(runtime, 20)
        # The stream has caught up and holds its lease for news: the disable must still stop it.
        await runtime.subscriptions.set_enabled(OPERATOR, subscription_id, False)
        await runtime.publisher.publish(_meter_events(sessions=2, per_session=10, first_value=100))
        await asyncio.sleep(1.5)
        assert await delivered_count(runtime.database) == 20
        await runtime.subscriptions.set_enabled(OPERATOR, subscription_id, True)
        await runtime.publisher.publish(_meter_events(sessions=2, per_session=10, first_value=200))
        await _until_delivered(runtime, 40)
        records = await asyncio.to_thread(consume_topic, kafka_broker, topic, 40)

    values = {orjson.loads(value)["meterValues"][0]["value"] for _key, value in records}
    assert len(records) == 40
    assert values == set(range(10)) | set(range(200, 210))  # nothing published while it was disabled
