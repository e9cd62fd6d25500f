"""Kafka delivery end to end through the dispatcher, against a real broker: published events become records,
in order per entity; a broker that goes away loses nothing; wrong credentials show up and block no one."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections import defaultdict

import orjson
import pytest

from chargewire.catalog import load_event_types
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

pytestmark = [pytest.mark.timeout(240), pytest.mark.parametrize("backend", ["sqlite"], indirect=True)]

METER = load_event_types()["SessionMeterValuesNotification"].example
# Long enough to outlast a broker restart (about 5-15 s), short enough for a test.
OUTAGE_RETRIES = [0.0, 1.0, 2.0, 4.0, 8.0, 16.0, 30.0]


@pytest.fixture
def settings(settings: Settings) -> Settings:
    """Retries that span a broker restart."""
    return settings.model_copy(update={"retry_schedule_s": OUTAGE_RETRIES})


async def _subscribe(
    runtime: Runtime, owner: CreatedToken, broker: KafkaBroker, topic: str, **kafka: object
) -> CreatedSubscription:
    body = {
        "via": "kafka",
        "notifications": ["SessionMeterValuesNotification"],
        "kafka": {"topic": topic, "brokers": [broker.bootstrap("PLAINTEXT")], "compressionCodec": "lz4", **kafka},
    }
    return await runtime.subscriptions.create(owner.token, body)


def _meter_events(sessions: int, per_session: int, first_session: int = 9000) -> list[dict[str, object]]:
    return [
        {**METER, "sessionId": first_session + session, "meterValues": [{**METER["meterValues"][0], "value": step}]}
        for step in range(per_session)
        for session in range(sessions)
    ]


async def test_published_events_arrive_as_records_in_order_per_session(
    runtime: Runtime, owner: CreatedToken, kafka_broker: KafkaBroker, dispatcher: Dispatcher
) -> None:
    topic = f"meters-{uuid.uuid4().hex[:8]}"
    kafka_broker.create_topic(topic, partitions=3)
    await _subscribe(runtime, owner, kafka_broker, topic)
    await runtime.publisher.publish(_meter_events(sessions=10, per_session=30))
    records = await asyncio.to_thread(consume_topic, kafka_broker, topic, 300)
    assert len(records) == 300
    steps: dict[bytes, list[float]] = defaultdict(list)
    for key, value in records:
        payload = orjson.loads(value)
        assert key == str(payload["sessionId"]).encode()
        steps[key].append(payload["meterValues"][0]["value"])
    assert all(values == sorted(values) for values in steps.values())


async def test_a_kafka_subscriptions_due_rows_reach_the_channel_as_one_batch(
    runtime: Runtime, owner: CreatedToken, kafka_broker: KafkaBroker
) -> None:
    topic = f"batches-{uuid.uuid4().hex[:8]}"
    kafka_broker.create_topic(topic, partitions=1)
    created = await _subscribe(runtime, owner, kafka_broker, topic)
    # Rows, not the stream: test sends (as retries and resends are) go through the row queue.
    for event in _meter_events(sessions=2, per_session=25):
        await runtime.publisher.publish_to(created.subscription.id, event)
    attempted, batch_sizes = await deliver_once(runtime)

    assert attempted == 50
    assert batch_sizes == [50]
    assert await delivered_count(runtime.database) == 50


async def test_a_broker_outage_in_the_middle_of_a_run_loses_nothing(
    runtime: Runtime, owner: CreatedToken, kafka_broker: KafkaBroker, dispatcher: Dispatcher
) -> None:
    topic = f"outage-{uuid.uuid4().hex[:8]}"
    kafka_broker.create_topic(topic, partitions=1)
    await _subscribe(runtime, owner, kafka_broker, topic)
    await runtime.publisher.publish(_meter_events(sessions=1, per_session=100))
    await asyncio.to_thread(kafka_broker.stop)
    await runtime.publisher.publish(_meter_events(sessions=2, per_session=100, first_session=9100))
    await asyncio.sleep(2)
    await asyncio.to_thread(kafka_broker.start)
    records = await asyncio.to_thread(consume_topic, kafka_broker, topic, 300, 120)
    delivered_steps = {(orjson.loads(v)["sessionId"], orjson.loads(v)["meterValues"][0]["value"]) for _, v in records}
    assert len(delivered_steps) == 300  # every event at least once


async def test_wrong_credentials_show_their_own_error_and_do_not_block_others(
    runtime: Runtime, owner: CreatedToken, kafka_broker: KafkaBroker, dispatcher: Dispatcher
) -> None:
    good_topic = f"good-{uuid.uuid4().hex[:8]}"
    kafka_broker.create_topic(good_topic, partitions=1)
    user, _password = kafka_broker.credentials["SCRAM-SHA-512"]
    bad = await _subscribe(
        runtime,
        owner,
        kafka_broker,
        good_topic,
        brokers=[kafka_broker.bootstrap("SASL_PLAINTEXT")],
        securityProtocol="SASL_PLAINTEXT",
        saslMechanism="SCRAM-SHA-512",
        saslUsername=user,
        saslPassword="not-the-password",
    )
    await _subscribe(runtime, owner, kafka_broker, good_topic)
    started = time.monotonic()
    await runtime.publisher.publish(_meter_events(sessions=1, per_session=50))
    records = await asyncio.to_thread(consume_topic, kafka_broker, good_topic, 50)
    assert len(records) == 50
    where = DeliveryFilter(subscription_id=bad.subscription.id)
    while True:
        # A streamed delivery shows in the log once its first attempt has ended.
        logged = (await runtime.deliveries.list_page(OPERATOR, where, None, 100)).deliveries
        if logged:
            detail = await runtime.deliveries.get(OPERATOR, logged[0].id)
            break
        await asyncio.sleep(0.1)
    assert detail.attempts[0].error_class == "authentication"
    assert detail.delivery.status is not DeliveryStatus.DELIVERED
    assert time.monotonic() - started < 30
