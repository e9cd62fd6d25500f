"""A Kafka subscription's records verify with the receiver kit exactly like webhooks, and parse as typed events."""

from __future__ import annotations

import asyncio
import time
import uuid

import pytest
from confluent_kafka import Consumer

from chargewire.catalog import load_event_types
from chargewire.devtools.kafka_broker import KafkaBroker
from chargewire.receiver import UnknownEvent, Verifier, event_name, record_headers
from chargewire.runtime import Runtime
from tests.support.kafka_topics import deliver_once

pytestmark = pytest.mark.timeout(180)

PUBLISHABLE = {name: t.example for name, t in load_event_types().items() if not t.operational}


def _consume(broker: KafkaBroker, topic: str, count: int, timeout_s: float = 60) -> list[tuple[bytes, dict[str, str]]]:
    consumer = Consumer(
        {**broker.client_config("PLAINTEXT"), "group.id": uuid.uuid4().hex, "auto.offset.reset": "earliest"}
    )
    consumer.subscribe([topic])
    records: list[tuple[bytes, dict[str, str]]] = []
    deadline = time.monotonic() + timeout_s
    try:
        while len(records) < count and time.monotonic() < deadline:
            message = consumer.poll(0.5)
            if message is not None and message.error() is None:
                records.append((message.value() or b"", record_headers(message.headers())))
    finally:
        consumer.close()
    return records


async def test_kafka_records_of_every_catalog_example_verify_and_parse_with_the_receiver_kit(
    runtime: Runtime, kafka_broker: KafkaBroker
) -> None:
    owner = await runtime.tokens.create("kafka-receiver", ["notifications:manage", "events:publish"])
    topic = f"receiver-{uuid.uuid4().hex[:8]}"
    kafka_broker.create_topic(topic, partitions=2)
    body = {
        "via": "kafka",
        "notifications": list(PUBLISHABLE),
        "kafka": {"topic": topic, "brokers": [kafka_broker.bootstrap("PLAINTEXT")]},
    }
    created = await runtime.subscriptions.create(owner.token, body)
    await runtime.publisher.publish(list(PUBLISHABLE.values()))
    await deliver_once(runtime)

    records = await asyncio.to_thread(_consume, kafka_broker, topic, len(PUBLISHABLE))
    verifier = Verifier(signing_secrets=[created.signing_secret], api_token=owner.text)
    events = [verifier.verify_event(value, headers) for value, headers in records]
    assert sorted(event_name(e) for e in events) == sorted(PUBLISHABLE)
    assert not [e for e in events if isinstance(e, UnknownEvent)]
    assert all(headers["notification"] == headers["X-Webhook-Type"] for _, headers in records)
