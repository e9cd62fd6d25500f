"""The evidence a run leaves: delivery rows in the database and the records on the Kafka topic."""

from __future__ import annotations

import asyncio
import time
import uuid
from dataclasses import dataclass
from typing import Any

from confluent_kafka import Consumer
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import create_async_engine

from chargewire.devtools.kafka_broker import KafkaBroker
from chargewire.store.tables import deliveries
from tests.chaos.receivers import Receipt

_JOIN_S = 15.0


@dataclass(frozen=True)
class DeliveryRow:
    """One delivery as the database holds it at the end of a run."""

    id: str
    event_id: str
    subscription_id: str
    status: str
    attempt_count: int
    lease_owner: str | None
    last_error: str | None


def read_deliveries(url: str) -> list[DeliveryRow]:
    """Every delivery row of the database."""
    columns = [getattr(deliveries.c, name) for name in DeliveryRow.__dataclass_fields__]
    rows = asyncio.run(_fetch(url, select(*columns)))
    return [DeliveryRow(*row) for row in rows]


def count_pending(url: str) -> int:
    """Deliveries still pending (0 when the database cannot be read is never assumed: errors propagate)."""
    rows = asyncio.run(_fetch(url, select(func.count()).where(deliveries.c.status == "pending")))
    return int(rows[0][0])


async def _fetch(url: str, statement: Any) -> list[tuple[Any, ...]]:
    engine = create_async_engine(url)
    try:
        async with engine.connect() as connection:
            return [tuple(row) for row in await connection.execute(statement)]
    finally:
        await engine.dispose()


def read_topic(broker: KafkaBroker, topic: str, idle_s: float = 5.0, timeout_s: float = 120.0) -> list[Receipt]:
    """Every record of the topic from the start, as receipts: delivery id (`webhook-id`) and produce time."""
    consumer = Consumer(
        {**broker.client_config("PLAINTEXT"), "group.id": uuid.uuid4().hex, "auto.offset.reset": "earliest"}
    )
    consumer.subscribe([topic])
    receipts: list[Receipt] = []
    # Joining the consumer group takes seconds: the idle clock starts once the first record is in.
    deadline, last_record = time.monotonic() + timeout_s, time.monotonic() + _JOIN_S
    try:
        while time.monotonic() < deadline and time.monotonic() - last_record < idle_s:
            message = consumer.poll(0.5)
            if message is None or message.error() is not None:
                continue
            last_record = time.monotonic()
            receipts.append(Receipt(topic, _delivery_id(message.headers()), message.timestamp()[1] / 1000, True))
    finally:
        consumer.close()
    return receipts


def _delivery_id(headers: Any) -> str:
    """The `webhook-id` record header: the delivery the record carries."""
    return next((bytes(value or b"").decode() for key, value in headers or [] if key == "webhook-id"), "")
