"""A failed Kafka record is not tried again before its message timeout has passed, whatever the retry schedule says
(decision 0005): with several workers, a record still in flight in another worker must not land after the retry.
Webhooks keep their schedule; a starting worker says which retries the floor raises."""

from __future__ import annotations

import asyncio
import logging
import uuid
from datetime import timedelta

import pytest

from chargewire.catalog import load_event_types
from chargewire.clock import utcnow
from chargewire.config import Settings
from chargewire.devtools.kafka_broker import KafkaBroker
from chargewire.dispatch.retry_policy import KAFKA_RETRY_MARGIN_S
from chargewire.models import Delivery, DeliveryStatus
from chargewire.runtime import Runtime
from chargewire.services.subscriptions import OPERATOR
from chargewire.services.tokens import CreatedToken
from chargewire.store.delivery_log import DeliveryFilter
from tests.integration.dispatch.conftest import FAST_RETRIES, Subscribe
from tests.support.kafka_topics import deliver_once
from tests.support.receiver import Receiver, always

pytestmark = pytest.mark.timeout(120)

METER = load_event_types()["SessionMeterValuesNotification"].example
# Longer than the 2 s librdkafka waits for an unknown topic, so the record fails as `unknown_topic`, retryable.
MESSAGE_TIMEOUT_S = 3.0


@pytest.fixture
def settings(settings: Settings) -> Settings:
    """Retries a fraction of a second apart (FAST_RETRIES), far below the message timeout."""
    return settings.model_copy(update={"kafka_message_timeout_s": MESSAGE_TIMEOUT_S})


async def _only_delivery(runtime: Runtime, subscription_id: str) -> tuple[Delivery, str | None]:
    """The subscription's one delivery, and the error class of its last attempt."""
    [delivery] = (
        await runtime.deliveries.list_page(OPERATOR, DeliveryFilter(subscription_id=subscription_id), None, 10)
    ).deliveries
    detail = await runtime.deliveries.get(OPERATOR, delivery.id)
    return delivery, detail.attempts[-1].error_class


async def test_a_failed_kafka_records_retry_is_not_due_before_the_message_timeout_when_the_schedule_is_shorter(
    runtime: Runtime, owner: CreatedToken, kafka_broker: KafkaBroker
) -> None:
    topic = f"absent-{uuid.uuid4().hex[:8]}"  # never created: the broker has no such topic, and says so
    body = {
        "via": "kafka",
        "notifications": ["SessionMeterValuesNotification"],
        "kafka": {"topic": topic, "brokers": [kafka_broker.bootstrap("PLAINTEXT")]},
    }
    created = await runtime.subscriptions.create(owner.token, body)
    before = utcnow()
    await runtime.publisher.publish([METER])
    attempted, _sizes = await deliver_once(runtime)
    delivery, error_class = await _only_delivery(runtime, created.subscription.id)

    assert attempted == 1
    assert error_class == "unknown_topic"
    assert delivery.status is DeliveryStatus.PENDING
    # Recorded after `before`: due no sooner than the floor after it, where the schedule says 0.3 s.
    assert delivery.next_attempt_at is not None
    assert delivery.next_attempt_at >= before + timedelta(seconds=MESSAGE_TIMEOUT_S + KAFKA_RETRY_MARGIN_S)


async def test_a_failed_webhooks_retry_keeps_the_schedule_below_the_kafka_message_timeout(
    runtime: Runtime, receiver: Receiver, subscribe: Subscribe
) -> None:
    created = await subscribe(receiver.url("/down"), "SessionMeterValuesNotification")
    receiver.on("/down", always(500))
    await runtime.publisher.publish([METER])
    attempted, _sizes = await deliver_once(runtime)
    after = utcnow()
    delivery, error_class = await _only_delivery(runtime, created.subscription.id)

    assert attempted == 1
    assert error_class == "http_status"
    assert delivery.status is DeliveryStatus.PENDING
    # Recorded before `after`: due no later than the schedule's 0.3 s after it.
    assert delivery.next_attempt_at is not None
    assert delivery.next_attempt_at <= after + timedelta(seconds=FAST_RETRIES[1])


async def test_a_starting_worker_says_once_which_retries_of_the_schedule_the_kafka_floor_raises(
    runtime: Runtime, caplog: pytest.LogCaptureFixture
) -> None:
    stop = asyncio.Event()
    stop.set()
    with caplog.at_level(logging.INFO, logger="chargewire.runtime"):
        await runtime.deliver(runtime.dispatcher(), stop)

    [notice] = [record.getMessage() for record in caplog.records if "retry" in record.getMessage()]
    assert "at least 4 s" in notice
    assert "not the 0.3, 0.3, 0.3 s of the retry schedule" in notice
