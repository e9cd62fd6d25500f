"""The evidence a run leaves: delivery rows in the database and the records on the Kafka topic."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from confluent_kafka import Consumer
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncConnection, create_async_engine

from chargewire.devtools.kafka_broker import KafkaBroker
from chargewire.store.event_log import stream_backlog
from chargewire.store.tables import deliveries
from tests.chaos.receivers import Receipt

_JOIN_S = 15.0
_Result = TypeVar("_Result")


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


def count_unsent(url: str) -> int:
    """Deliveries still pending plus events Kafka streams have yet to send (errors propagate: an unreadable
    database never counts as drained).

    A Kafka subscription's events get rows only once its stream sends them: a stream whose lease a killed worker
    holds sends nothing until the lease runs out, with no pending row to show for it.
    """
    return asyncio.run(_count_unsent(url))


async def _count_unsent(url: str) -> int:
    async def count(connection: AsyncConnection) -> int:
        pending = select(func.count()).where(deliveries.c.status == "pending")
        return int((await connection.execute(pending)).scalar_one()) + await stream_backlog(connection)

    return await _on(url, count)


async def _fetch(url: str, statement: Any) -> list[tuple[Any, ...]]:
    async def rows(connection: AsyncConnection) -> list[tuple[Any, ...]]:
        return [tuple(row) for row in await connection.execute(statement)]

    return await _on(url, rows)


async def _on(url: str, work: Callable[[AsyncConnection], Awaitable[_Result]]) -> _Result:
    """`work` on a connection of an engine of its own, disposed of afterwards."""
    engine = create_async_engine(url)
    try:
        async with engine.connect() as connection:
            return await work(connection)
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
