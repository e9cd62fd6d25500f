"""Events and their fan-out: the event rows, numbered, and one delivery row per webhook subscriber, in one transaction.

Kafka subscriptions get no rows at publish: their streams read the numbered log (`kafka.stream_store`).
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from itertools import chain, repeat
from typing import Any, Protocol, cast

from sqlalchemy import Select, String, delete, select
from sqlalchemy.ext.asyncio import AsyncConnection

from chargewire.models import Event, Via
from chargewire.store.bulk_insert import driver_value
from chargewire.store.database import Database
from chargewire.store.delivery_writes import NewDelivery, PublishLease, insert_for_published_events
from chargewire.store.dialects import StoreDialect
from chargewire.store.dialects.base import GuessedPublish, GuessedPublisher, Read, Reader, ReadRows
from chargewire.store.dialects.writes import ColumnInsert, Write
from chargewire.store.event_log import first_number, numbering, numbering_unless_moved
from chargewire.store.expiry_rules import Stretch, event_unused
from chargewire.store.idempotency_store import IdempotentPublish, claim_keys
from chargewire.store.tables import events, subscription_events, subscriptions


@dataclass(frozen=True, slots=True)
class NewEvents:
    """Accepted events of one publish, to store: one list per column, and the time they share.

    A batch of a thousand events makes no object per event here; an `Event` each cost more to build than
    its payload took to serialise.
    """

    ids: Sequence[str]
    names: Sequence[str]
    payloads: Sequence[bytes]
    entity_ids: Sequence[str | None]
    received_at: datetime

    @classmethod
    def of(cls, events: Sequence[Event]) -> NewEvents:
        """The events as columns; they must share their `received_at`."""
        if len({event.received_at for event in events}) != 1:
            raise ValueError("NewEvents holds events of one publish, which share their received_at")
        return cls(
            ids=[event.id for event in events],
            names=[event.name for event in events],
            payloads=[event.payload for event in events],
            entity_ids=[event.entity_id for event in events],
            received_at=events[0].received_at,
        )

    def __len__(self) -> int:
        return len(self.ids)


@dataclass(frozen=True, slots=True)
class Subscriber:
    """The part of a subscription that fan-out needs; `version` (its `updated_at`) changes with its filter."""

    subscription_id: str
    event_name: str
    version: datetime


@dataclass(frozen=True, slots=True)
class Inserted:
    """What a publish's commit made: its `count` of deliveries; `woken` when it also woke other processes' workers
    itself (PostgreSQL's one-statement publish), naming those not handed to this process's dispatcher."""

    count: int
    woken: bool = False


class FanOut(Protocol):
    """Makes the deliveries of a publish from the subscribers read in its transaction."""

    def filters_wanted(self, subscribers: Sequence[Subscriber]) -> Collection[str]:
        """The subscriptions whose filters it needs read (those it has not compiled at their version)."""

    def deliveries(
        self, subscribers: Sequence[Subscriber], filters: Mapping[str, dict[str, Any] | None]
    ) -> Iterable[NewDelivery]:
        """The deliveries to write, given the filters it asked for."""

    def lease(self) -> PublishLease | None:
        """Those of the deliveries made to write leased to a worker of this process (a hand-off), if any."""


@dataclass(frozen=True, slots=True)
class _ToOneSubscription:
    """A test send's fan-out: one delivery, whatever the subscribers and filters."""

    delivery: NewDelivery

    def filters_wanted(self, subscribers: Sequence[Subscriber]) -> Collection[str]:
        return ()

    def deliveries(
        self, subscribers: Sequence[Subscriber], filters: Mapping[str, dict[str, Any] | None]
    ) -> Iterable[NewDelivery]:
        return [self.delivery]

    def lease(self) -> PublishLease | None:
        return None


# The width of `events.entity_id`: publish refuses longer ids before the transaction, on both databases.
ENTITY_ID_MAX_CHARS: int = cast(String, events.c.entity_id.type).length or 0
_EVENT_COLUMNS = ("id", "name", "payload", "entity_id", "received_at")
# Streamed events are numbered, in order, into this column.
_NUMBER_COLUMN = "seq"
# Name sets whose subscribers are kept as guesses; a process publishes a few dozen names.
_MAX_GUESSES = 256


class EventStore:
    """Writes accepted events together with their deliveries, and reads events back."""

    def __init__(self, database: Database) -> None:
        self._database = database
        # What the last publish read (its last number, the subscribers of its names): the guess of the next one's.
        self._last_number: int | None = None
        self._subscribers: dict[tuple[str, ...], list[Any]] = {}
        self._guessed_publisher = database.dialect.guessed_publisher(database)
        # Every datetime column is a UtcDateTime, so this one converter serves the deliveries too; made once, as
        # SQLAlchemy builds a new one on every call.
        self._stored_time = driver_value(database.engine.dialect, events.c.received_at)

    async def insert_events_with_deliveries(
        self,
        batches: Sequence[NewEvents],
        fan_out: FanOut,
        *,
        streamed: bool = True,
        claims: Sequence[IdempotentPublish] = (),
    ) -> Inserted:
        """Store events and the deliveries `fan_out` makes from their subscribers; returns the delivery count.

        The subscribers are read inside the same transaction, so an event accepted here is never missing a
        delivery for a subscription that existed when it was stored. `streamed` events are numbered, in the
        order given, into the log that Kafka streams read; the others (test sends) reach only the deliveries
        `fan_out` makes. The idempotency keys in `claims` are stored first, in the same transaction; when one is
        taken already, IdempotencyKeyTaken is raised and nothing is stored.
        """
        count = sum([len(batch.ids) for batch in batches])
        names = tuple(sorted(set(chain.from_iterable(batch.names for batch in batches))))
        dialect = self._database.dialect
        reads = [_subscribers_of(dialect, names)]
        if streamed:
            reads.insert(0, numbering(count))
        made: list[NewDelivery] = []

        async def writes_from(rows: ReadRows, read: Reader) -> list[Write]:
            subscribers = [Subscriber(*row) for row in rows[-1]]
            # Filters are read only when their subscription changed since the fan-out last compiled them: a large
            # filter is then parsed once per version, not on every publish.
            wanted = fan_out.filters_wanted(subscribers)
            filters = {row[0]: row[1] for row in await read(_filters_of(dialect, wanted))} if wanted else {}
            made[:] = fan_out.deliveries(subscribers, filters)
            first_seq = first_number(rows[0], count) if streamed else None
            return _writes(self._stored_time, batches, count, first_seq, made, fan_out.lease())

        # On SQLite, when the numbers and subscribers are what the last publish leads it to expect, the reads,
        # the inserts and the commit go in one trip to the driver's thread; on PostgreSQL, when the subscribers
        # are, the publish is one statement (`postgresql_publish`).
        guess = self._guess(names, count)
        woken = False
        if claims:
            async with self._database.transaction() as connection:
                await claim_keys(connection, claims, batches[0].received_at)
                read = await dialect.write_last_after_reads(connection, reads, guess, writes_from)
        elif (
            streamed
            and self._guessed_publisher is not None
            and (
                published := await self._publish_guessed(self._guessed_publisher, batches, count, fan_out, reads, guess)
            )
        ):
            read, made[:], woken = published
        else:
            read = await dialect.write_after_reads(self._database, reads, guess, writes_from)
        self._remember(names, read[0] if streamed else None, read[-1])
        return Inserted(len(made), woken)

    async def _publish_guessed(
        self,
        publisher: GuessedPublisher,
        batches: Sequence[NewEvents],
        count: int,
        fan_out: FanOut,
        reads: Sequence[Read],
        guess: ReadRows | None,
    ) -> tuple[ReadRows, list[NewDelivery], bool] | None:
        """The publish as one statement made from the guessed subscribers, where the dialect has one
        (`StoreDialect.guessed_publisher`): what its reads returned, the deliveries written, and whether it woke
        other processes' workers; None, having written nothing, when there is no guess, it is too large, needs
        filters read, or the subscribers were not the guess."""
        if guess is None or count >= publisher.max_rows:
            return None
        subscribers = [Subscriber(*row) for row in guess[-1]]
        if fan_out.filters_wanted(subscribers):
            return None
        made = list(fan_out.deliveries(subscribers, {}))
        if len(made) >= publisher.max_rows:
            return None
        stored_time, lease = self._stored_time, fan_out.lease()
        stored_now = stored_time(batches[0].received_at)
        leased = lease.delivery_ids if lease is not None else frozenset()
        elsewhere = lease is not None and lease.elsewhere
        due = [(delivery.id, delivery.subscription_id) for delivery in made if delivery.id not in leased]
        publish = GuessedPublish(
            subscribers=reads[-1],
            guess=guess[-1],
            # Its subscribers were read before it numbers: a move onto or off Kafka meanwhile makes it write nothing.
            numbering=numbering_unless_moved(count),
            events=ColumnInsert(events, _EVENT_COLUMNS, _event_columns(batches, stored_time, stored_now)),
            number_into=_NUMBER_COLUMN,
            deliveries=_deliveries_insert(stored_time, stored_now, made, lease),
            # Every delivery handed to this process's dispatcher: no worker elsewhere needs to hear of them (its Kafka
            # streams, here and elsewhere, are woken after the commit, as before). Leased to another process's
            # worker, they go to it in the wake-up.
            wake=None if leased and not due and not elsewhere else due,
            assigned=lease if elsewhere else None,
        )
        last = await publisher.write(publish)
        return None if last is None else ([[(last,)], guess[-1]], made, publish.wake is not None)

    def _guess(self, names: tuple[str, ...], count: int) -> ReadRows | None:
        """What the reads of a publish of `count` events of `names` should return, if nothing changed since."""
        subscribers = self._subscribers.get(names)
        if subscribers is None or self._last_number is None:
            return None
        return [[(self._last_number + count,)], subscribers]

    def _remember(self, names: tuple[str, ...], numbered: list[tuple[Any, ...]] | None, subscribers: list[Any]) -> None:
        if numbered is not None:
            self._last_number = numbered[0][0]
        if len(self._subscribers) >= _MAX_GUESSES:
            self._subscribers.clear()
        self._subscribers[names] = subscribers

    async def insert_event_for_subscription(self, event: Event, delivery_id: str, subscription_id: str) -> None:
        """Store an event with a delivery to one subscription only (a test send), whatever its filters say."""
        await self.insert_events_with_deliveries(
            [NewEvents.of([event])],
            _ToOneSubscription(NewDelivery(delivery_id, event.id, subscription_id, event.name)),
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


async def delete_unused(
    connection: AsyncConnection, event_ids: Sequence[str], before: datetime, stretches: Sequence[Stretch]
) -> int:
    """Remove the events among these that expiry may take (`expiry_rules.event_unused`); returns how many."""
    unused = delete(events).where(events.c.id.in_(event_ids), event_unused(events, before, stretches))
    return int((await connection.execute(unused)).rowcount)


# Kept per name set, as the guesses are: the names' JSON and the read built for them cost a publish more than
# looking them up.
@functools.lru_cache(maxsize=_MAX_GUESSES)
def _subscribers_of(dialect: StoreDialect, names: tuple[str, ...]) -> Read:
    """The read of the enabled webhook subscribers of `names`."""
    return Read(_enabled_subscribers(dialect), {"ids": dialect.ids_value(names)})


@functools.cache
def _enabled_subscribers(dialect: StoreDialect) -> Select[Any]:
    """The enabled webhook subscribers of the names bound as `ids`, in a stable order (so that a guess of them
    compares), built once per dialect: constructing this join anew cost more than running it, twice over."""
    return (
        select(subscription_events.c.subscription_id, subscription_events.c.event_name, subscriptions.c.updated_at)
        .join(subscriptions, subscriptions.c.id == subscription_events.c.subscription_id)
        .where(
            dialect.one_of(subscription_events.c.event_name, None),
            subscriptions.c.enabled.is_(True),
            subscriptions.c.via != Via.KAFKA.value,
        )
        .order_by(subscription_events.c.subscription_id, subscription_events.c.event_name)
    )


def _writes(
    stored_time: Callable[[Any], Any],
    batches: Sequence[NewEvents],
    count: int,
    first_seq: int | None,
    new_deliveries: Sequence[NewDelivery],
    lease: PublishLease | None,
) -> list[Write]:
    """The inserts of the `count` events, numbered from `first_seq`, and of their deliveries, `lease`'s leased;
    times converted by `stored_time`."""
    seqs: Sequence[int | None] = range(first_seq, first_seq + count) if first_seq is not None else [None] * count
    columns = (*_EVENT_COLUMNS, _NUMBER_COLUMN)
    stored_now = stored_time(batches[0].received_at)
    writes: list[Write] = [ColumnInsert(events, columns, (*_event_columns(batches, stored_time, stored_now), seqs))]
    if new_deliveries:
        writes.append(_deliveries_insert(stored_time, stored_now, new_deliveries, lease))
    return writes


def _deliveries_insert(
    stored_time: Callable[[Any], Any],
    stored_now: Any,
    new_deliveries: Sequence[NewDelivery],
    lease: PublishLease | None,
) -> ColumnInsert:
    """The insert of the deliveries, created at `stored_now` (the first batch's `received_at` converted)."""
    until = stored_time(lease.until) if lease is not None else None
    return insert_for_published_events(new_deliveries, stored_now, lease, until)


def _filters_of(dialect: StoreDialect, subscription_ids: Collection[str]) -> Read:
    """The read of these subscriptions' (id, filter)."""
    return Read(_filters_by_id(dialect), {"ids": dialect.ids_value(subscription_ids)})


@functools.cache
def _filters_by_id(dialect: StoreDialect) -> Select[Any]:
    return select(subscriptions.c.id, subscriptions.c.filter).where(dialect.one_of(subscriptions.c.id, None))


def _event_columns(
    batches: Sequence[NewEvents], stored_time: Callable[[Any], Any], stored_first: Any
) -> tuple[Sequence[Any], ...]:
    """The values of `_EVENT_COLUMNS`, one sequence each, in order; `stored_first` is the first batch's `received_at`
    converted."""
    if len(batches) == 1:
        # One publish alone (the common case at low rates): its columns as they are, its time converted once.
        [batch] = batches
        return batch.ids, batch.names, batch.payloads, batch.entity_ids, [stored_first] * len(batch.ids)
    return (
        list(chain.from_iterable(batch.ids for batch in batches)),
        list(chain.from_iterable(batch.names for batch in batches)),
        list(chain.from_iterable(batch.payloads for batch in batches)),
        list(chain.from_iterable(batch.entity_ids for batch in batches)),
        # The events of one publish share their received_at: each batch's is converted once.
        list(chain.from_iterable(repeat(stored_time(batch.received_at), len(batch)) for batch in batches)),
    )
