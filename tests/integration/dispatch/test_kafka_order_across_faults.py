"""One entity's Kafka records keep their publishing order across broker faults (issue 24), with the worker in the
API's process: publishing goes on while a burst of events is accepted just before the broker is killed for
longer than the message timeout, frozen, or cut off, and every key's first arrivals in the topic follow
publishing order, with every event present."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator

import orjson
import pytest

from chargewire.config import Settings
from chargewire.devtools.kafka_broker import KafkaBroker
from chargewire.runtime import Runtime
from chargewire.services.tokens import CreatedToken
from tests.support.broker_faults import (
    BURST,
    FAULTS,
    MESSAGE_TIMEOUT_S,
    PARTITIONS,
    RETRY_S,
    STEADY_BATCH,
    STEADY_EVERY_S,
    meter_values,
    overtaken,
)
from tests.support.kafka_topics import consume_topic

pytestmark = pytest.mark.timeout(300)


@pytest.fixture
def settings(settings: Settings) -> Settings:
    """A short message timeout, so an outage outlasts it; retries every few seconds, with the default jitter."""
    return settings.model_copy(
        update={
            "kafka_message_timeout_s": MESSAGE_TIMEOUT_S,
            "kafka_connect_timeout_s": 1.0,
            "kafka_stream_batch_size": 200,
            "retry_schedule_s": [0.0, *[RETRY_S] * 20],
            "retry_jitter": 0.2,
            "worker_poll_interval_s": 0.05,
        }
    )


class Publisher:
    """Publishes meter values in the runtime, steadily and in bursts."""

    def __init__(self, runtime: Runtime) -> None:
        self._runtime = runtime
        self.published = 0

    async def publish(self, count: int) -> None:
        events = meter_values(self.published, count)
        self.published += count
        await self._runtime.publisher.publish(events)

    async def steadily(self) -> None:
        while True:
            await self.publish(STEADY_BATCH)
            await asyncio.sleep(STEADY_EVERY_S)


@contextlib.asynccontextmanager
async def _dispatching(runtime: Runtime) -> AsyncIterator[None]:
    """A dispatcher delivering for the length of the block."""
    stop = asyncio.Event()
    task = asyncio.create_task(runtime.dispatcher().run(stop))
    try:
        yield
    finally:
        stop.set()
        await asyncio.wait_for(task, 60)


@pytest.mark.parametrize("fault", list(FAULTS))
async def test_every_keys_records_reach_the_topic_in_publishing_order_when_the_broker_fails_under_a_burst(
    runtime: Runtime, owner: CreatedToken, kafka_broker: KafkaBroker, fault: str
) -> None:
    topic = f"order-{fault}-{uuid.uuid4().hex[:8]}"
    kafka_broker.create_topic(topic, partitions=PARTITIONS)
    body = {
        "via": "kafka",
        "notifications": ["SessionMeterValuesNotification"],
        "kafka": {"topic": topic, "brokers": [kafka_broker.bootstrap("PLAINTEXT")]},
    }
    await runtime.subscriptions.create(owner.token, body)
    publisher = Publisher(runtime)
    async with _dispatching(runtime):
        publishing = asyncio.create_task(publisher.steadily())
        await asyncio.sleep(1.0)
        await publisher.publish(BURST)
        await asyncio.sleep(0.05)  # the burst is being produced when the fault strikes
        await asyncio.to_thread(FAULTS[fault], kafka_broker)
        await asyncio.sleep(1.0)
        await publisher.publish(BURST)  # and one while the failed records wait for their retries
        await asyncio.sleep(1.0)
        publishing.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await publishing
        published = publisher.published
        records = await asyncio.to_thread(consume_topic, kafka_broker, topic, published, 120)

    assert sorted({orjson.loads(value)["evseId"] for _key, value in records}) == list(range(published))
    assert overtaken(records) == {}
