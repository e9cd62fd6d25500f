"""Events and their fan-out: the event rows, numbered, and one delivery row per webhook subscriber, in one transaction.

Kafka subscriptions get no rows at publish: their streams read the numbered log (`stream_store`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncConnection

from chargewire.models import DeliveryStatus, Event, Via
from chargewire.store.bulk_insert import insert_rows, stored_value
from chargewire.store.database import Database
from chargewire.store.event_log import number_events
from chargewire.store.tables import deliveries, events, subscription_events, subscriptions


@dataclass(frozen=True, slots=True)
class Subscriber:
    """The part of a subscription that fan-out needs."""

    subscription_id: str
    event_name: str
    filter: dict[str, Any] | None


@dataclass(frozen=True, slots=True)
class NewDelivery:
    """A delivery row to write beside its event."""

    id: str
    event_id: str
    subscription_id: str
    event_name: str


FanOut = Callable[[Sequence[Subscriber]], Iterable[NewDelivery]]

_EVENT_COLUMNS = ("id", "name", "payload", "entity_id", "received_at", "seq")
# The columns of a new delivery row, for the bulk inserts here and in `stream_store`.
NEW_DELIVERY_COLUMNS = (
    "id",
    "event_id",
    "subscription_id",
    "event_name",
    "status",
    "attempt_count",
    "next_attempt_at",
    "last_error",
    "created_at",
    "updated_at",
)


class EventStore:
    """Writes accepted events together with their deliveries, and reads events back."""

    def __init__(self, database: Database) -> None:
        self._database = database

    async def insert_events_with_deliveries(
        self, new_events: Sequence[Event], fan_out: FanOut, *, streamed: bool = True
    ) -> int:
        """Store events and the deliveries `fan_out` makes from their subscribers; returns the delivery count.

        The subscribers are read inside the same transaction, so an event accepted here is never missing a
        delivery for a subscription that existed when it was stored. `streamed` events are numbered into the
        log that Kafka streams read; the others (test sends) reach only the deliveries `fan_out` makes.
        """
        async with self._database.transaction() as connection:
            first_seq = await number_events(connection, len(new_events)) if streamed else None
            subscribers = await _enabled_subscribers(connection, {event.name for event in new_events})
            new_deliveries = list(fan_out(subscribers))
            # Every datetime column is a UtcDateTime, so this one converter serves the deliveries too.
            stored_time = stored_value(connection, events.c.received_at)
            await insert_rows(connection, events, _EVENT_COLUMNS, _event_rows(new_events, stored_time, first_seq))
            if new_deliveries:
                now = stored_time(new_events[0].received_at)
                await insert_rows(connection, deliveries, NEW_DELIVERY_COLUMNS, _delivery_rows(new_deliveries, now))
        return len(new_deliveries)

    async def insert_event_for_subscription(self, event: Event, delivery_id: str, subscription_id: str) -> None:
        """Store an event with a delivery to one subscription only (a test send), whatever its filters say."""
        await self.insert_events_with_deliveries(
            [event],
            lambda _subscribers: [NewDelivery(delivery_id, event.id, subscription_id, event.name)],
            streamed=False,
        )

    async def get_events(self, event_ids: Sequence[str]) -> list[Event]:
        """The events with these ids, in the order asked."""
        async with self._database.reading() as connection:
            rows = (await connection.execute(select(events).where(events.c.id.in_(event_ids)))).all()
        by_id = {
            row.id: Event(
                id=row.id,
                name=row.name,
                payload=bytes(row.payload),
                entity_id=row.entity_id,
                received_at=row.received_at,
            )
            for row in rows
        }
        return [by_id[event_id] for event_id in event_ids if event_id in by_id]


async def _enabled_subscribers(connection: AsyncConnection, names: set[str]) -> list[Subscriber]:
    query = (
        select(subscription_events.c.subscription_id, subscription_events.c.event_name, subscriptions.c.filter)
        .join(subscriptions, subscriptions.c.id == subscription_events.c.subscription_id)
        .where(
            subscription_events.c.event_name.in_(names),
            subscriptions.c.enabled.is_(True),
            subscriptions.c.via != Via.KAFKA.value,
        )
    )
    rows = (await connection.execute(query)).all()
    return [Subscriber(row.subscription_id, row.event_name, row.filter) for row in rows]


def _event_rows(
    new_events: Sequence[Event], stored_time: Callable[[Any], Any], first_seq: int | None
) -> list[tuple[Any, ...]]:
    # The events of one publish share their received_at: convert each distinct value once.
    received = {at: stored_time(at) for at in {event.received_at for event in new_events}}
    seqs = range(first_seq, first_seq + len(new_events)) if first_seq is not None else [None] * len(new_events)
    return [
        (event.id, event.name, event.payload, event.entity_id, received[event.received_at], seq)
        for event, seq in zip(new_events, seqs, strict=True)
    ]


def _delivery_rows(new_deliveries: Sequence[NewDelivery], now: Any) -> list[tuple[Any, ...]]:
    pending = DeliveryStatus.PENDING.value
    return [
        (delivery.id, delivery.event_id, delivery.subscription_id, delivery.event_name, pending, 0, now, None, now, now)
        for delivery in new_deliveries
    ]
