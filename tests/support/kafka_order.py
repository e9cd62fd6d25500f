"""The in-process Kafka order scenario (issue 24): publish continuously, with a burst just before a fault and one
after it, through a worker in the test's process, and read back what reached the topic."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from chargewire.clock import utcnow
from chargewire.devtools.kafka_broker import KafkaBroker
from chargewire.runtime import Runtime
from chargewire.services.tokens import CreatedToken
from chargewire.store.delivery_stats import DeliveryStats
from tests.support.broker_faults import BURST, MESSAGE_TIMEOUT_S, RETRY_S, STEADY_BATCH, STEADY_EVERY_S, meter_values
from tests.support.kafka_topics import consume_topic

# A short message timeout, so an outage outlasts it; retries every few seconds, with the default jitter.
ORDER_SETTINGS: dict[str, Any] = {
    "kafka_message_timeout_s": MESSAGE_TIMEOUT_S,
    "kafka_connect_timeout_s": 1.0,
    "kafka_stream_batch_size": 200,
    "retry_schedule_s": [0.0, *[RETRY_S] * 20],
    "retry_jitter": 0.2,
    "worker_poll_interval_s": 0.05,
}


class InProcessPublisher:
    """Publishes meter values in the runtime, steadily and in bursts."""

    def __init__(self, runtime: Runtime) -> None:
        self._runtime = runtime
        self.published = 0

    async def publish(self, count: int) -> None:
        """Publish the next `count` events at once."""
        events = meter_values(self.published, count)
        self.published += count
        await self._runtime.publisher.publish(events)

    async def steadily(self) -> None:
        """Publish `STEADY_BATCH` events every `STEADY_EVERY_S` until cancelled."""
        while True:
            await self.publish(STEADY_BATCH)
            await asyncio.sleep(STEADY_EVERY_S)


@contextlib.asynccontextmanager
async def dispatching(runtime: Runtime) -> AsyncIterator[None]:
    """A dispatcher delivering for the length of the block."""
    stop = asyncio.Event()
    task = asyncio.create_task(runtime.dispatcher().run(stop))
    try:
        yield
    finally:
        stop.set()
        await asyncio.wait_for(task, 60)


@dataclass(frozen=True)
class FaultRun:
    """What a run through a fault published, what reached the topic, and how many attempts failed meanwhile."""

    published: int
    records: list[tuple[bytes, bytes]]
    failed_attempts: int


async def publish_through_a_fault(
    runtime: Runtime, owner: CreatedToken, broker: KafkaBroker, topic: str, fault: Callable[[], None]
) -> FaultRun:
    """Subscribe `topic` and publish across `fault` (run in a thread), until every event reached the topic."""
    started = utcnow() - timedelta(minutes=1)
    body = {
        "via": "kafka",
        "notifications": ["SessionMeterValuesNotification"],
        "kafka": {"topic": topic, "brokers": [broker.bootstrap("PLAINTEXT")]},
    }
    await runtime.subscriptions.create(owner.token, body)
    publisher = InProcessPublisher(runtime)
    async with dispatching(runtime):
        publishing = asyncio.create_task(publisher.steadily())
        await asyncio.sleep(1.0)
        await publisher.publish(BURST)
        await asyncio.sleep(0.05)  # the burst is being produced when the fault strikes
        await asyncio.to_thread(fault)
        await asyncio.sleep(1.0)
        await publisher.publish(BURST)  # and one while the failed records wait for their retries
        await asyncio.sleep(1.0)
        publishing.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await publishing
        records = await asyncio.to_thread(consume_topic, broker, topic, publisher.published, 120)
    counts = await DeliveryStats(runtime.database).attempts_by_minute(started)
    failed = sum(count.count for count in counts if count.outcome != "delivered")
    return FaultRun(publisher.published, records, failed)
