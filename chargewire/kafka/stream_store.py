"""Kafka streams: each Kafka subscription's position in the event log, its lease, and its pauses.

A stream's first attempts are read from the log instead of from delivery rows (decision 0002). Only what
was attempted is written, in one transaction that checks the lease is still the worker's and moves the
position past the batch: one delivery row per record, and for the records the batch delivered one
`attempt_batches` row for all of their first attempts (decision 0003). Records that failed become
pending rows, which the row queue retries as it retries every delivery; while a subscription has any, its
stream waits, so that one entity's events never overtake each other.

Event numbers (`events.seq`) come from `event_sequence` in commit order, so the committed end of the log N
means every event up to N is readable: a stream never passes an event that commits later.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Collection, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, Dialect, bindparam, or_, select, type_coerce, update
from sqlalchemy.types import NullType

from chargewire.clock import utcnow
from chargewire.ids import new_ids
from chargewire.kafka.stream_lifecycle import drop_passed_pauses, pauses
from chargewire.kafka.stream_queries import LOOK, NEWEST_WORK, WORK_DUE, leasable_by
from chargewire.kafka.streams import LeaseLost, Stream, StreamLook, StreamRead
from chargewire.models import DeliveryStatus, Via
from chargewire.store.attempt_writes import attempt_batch_row, insert_attempt_batch, insert_for_records
from chargewire.store.database import Database
from chargewire.store.delivery_records import AttemptRecord, ClaimedDelivery, bare_record
from chargewire.store.delivery_writes import delete_unsent_after_a_move, insert_for_stream_batch
from chargewire.store.dialects.base import WakeHooks
from chargewire.store.dialects.writes import GuardedWrites, Statement
from chargewire.store.event_log import end_of_log
from chargewire.store.id_bounds import made_after_id
from chargewire.store.refusals import write_whole
from chargewire.store.subscription_health_writes import health_updates
from chargewire.store.tables import UtcDateTime, events, kafka_streams, subscriptions, worker_heartbeats

# Bounds how far past its position one read of a stream looks: the matching rows are sorted before the
# limit applies, so an unbounded read of a long backlog would sort all of it.
_READ_WINDOW = 50_000


_STORED_TIME = UtcDateTime()


def _received_at(stored: Any, dialect: Dialect) -> datetime:
    """An event's received_at as the driver returned it, made an aware datetime (the column is NOT NULL)."""
    received_at = _STORED_TIME.process_result_value(stored, dialect)
    if received_at is None:
        raise ValueError("an event has no received_at")
    return received_at


class StreamStore:
    """Reads and writes `kafka_streams` and `stream_pauses`, and records batches through the other tables' owners."""

    def __init__(self, database: Database) -> None:
        self._database = database
        # Per stream, the position its last read here reached, and a lower bound of the ids of the events past
        # it (`id_bounds`), so that PostgreSQL skips the days the next read cannot need.
        self._read_from: dict[str, tuple[int, ColumnElement[bool]]] = {}

    async def newest_work(self) -> tuple[str | None, int]:
        """The newest delivery's id and the end of the log, in one read: one of them moves with every publish."""
        async with self._database.reading() as connection:
            newest, end = (await connection.execute(NEWEST_WORK)).one()
        return newest, int(end)

    async def work_due(self, now: datetime, worker_id: str) -> bool:
        """Whether a delivery is due, or an enabled Kafka subscription's stream is behind the log and either free
        to lease or held by `worker_id` (one read).

        A stream another worker holds is that worker's to send: counting it would wake every other worker after
        each commit to look it up in vain. Its holder still counts it, as it waits for this news.
        """
        async with self._database.reading() as connection:
            return any((await connection.execute(WORK_DUE, {"now": now, "worker": worker_id})).one())

    def wake_hooks(self, wake: Callable[[], None], worker_id: str) -> WakeHooks:
        """What a commit watcher asks on a connection of its own: `newest_work` and `work_due` of `worker_id`."""
        return WakeHooks(wake, NEWEST_WORK, WORK_DUE, lambda: {"now": utcnow(), "worker": worker_id})

    async def look(self, now: datetime, worker_id: str | None = None) -> StreamLook:
        """Streams with events past their position, free to lease (or leased to `worker_id` already), and no pending
        rows to drain first, and whether any enabled Kafka subscription has a stream (one read).

        Their pauses are left out: each read of a stream loads them as they are then.
        """
        async with self._database.reading() as connection:
            rows = (await connection.execute(LOOK, {"now": now, "worker": worker_id})).all()
        ready = [Stream(subscription_id, position) for subscription_id, position in rows if subscription_id is not None]
        return StreamLook(ready, streams_exist=bool(rows))

    async def ready_streams(self, now: datetime, worker_id: str | None = None) -> list[Stream]:
        """The streams `look` finds ready."""
        return (await self.look(now, worker_id)).ready

    async def lease(self, stream: Stream, worker_id: str, now: datetime, until: datetime) -> bool:
        """Take the stream for `worker_id` if it is free (or `worker_id`'s already) and still where `stream` says.

        A worker takes its own lease again when its run of the stream ended without handing it back (see
        `stream_queries`). Pauses the stream has passed are dropped here, once per lease rather than with every
        batch: until then they only cover events behind its position, which it never reads again.
        """
        statement = (
            update(kafka_streams)
            .where(
                kafka_streams.c.subscription_id == stream.subscription_id,
                kafka_streams.c.position == stream.position,
                leasable_by(worker_id, now),
            )
            .values(lease_owner=worker_id, lease_until=until)
        )
        passed = drop_passed_pauses(stream)
        async with self._database.transaction() as connection:
            if not (await connection.execute(statement)).rowcount:
                return False
            await connection.execute(passed)
            return True

    async def read(self, stream: Stream, names: Sequence[str], after: int, limit: int) -> StreamRead:
        """Up to `limit` events of these names past `after`, in log order, and how far the read got.

        Whether the subscription is still an enabled Kafka one, and which stretches it skips, are read in the
        same transaction: a stream that runs for a long time sees a disable or a pause at its next batch.
        """
        async with self._database.reading() as connection:
            # The end first: every event up to it is committed, so the read below misses none of them.
            end = await end_of_log(connection)
            state = select(subscriptions.c.enabled, subscriptions.c.via).where(
                subscriptions.c.id == stream.subscription_id
            )
            current = (await connection.execute(state)).first()
            if current is None or not current.enabled or current.via != Via.KAFKA.value:
                return StreamRead([], after, at_end=True, stopped=True)
            stream = Stream(stream.subscription_id, after, await pauses(connection, stream.subscription_id))
            upto = min(end, after + _READ_WINDOW)
            # Read as stored and converted once per distinct value: a publish's events share their time.
            received_at = type_coerce(events.c.received_at, NullType())
            query = (
                select(events.c.seq, events.c.id, events.c.name, events.c.payload, events.c.entity_id, received_at)
                .where(events.c.name.in_(names), events.c.seq > after, events.c.seq <= upto)
                .order_by(events.c.seq)
                .limit(limit)
            )
            known = self._read_from.get(stream.subscription_id)
            made_after = known[1] if known is not None and known[0] == after else None
            rows = (await connection.execute(query if made_after is None else query.where(made_after))).all()
            dialect = connection.dialect
        position = rows[-1][0] if len(rows) == limit else upto
        # Events numbered past the last one read were made after it, less the margin.
        made_after = made_after_id(events.c.id, "evt", rows[-1][1]) if rows else made_after
        if made_after is not None:
            self._read_from[stream.subscription_id] = (position, made_after)
        chosen = [row for row in rows if not stream.skips(row[0])] if stream.pauses else rows
        ids = new_ids("dlv", len(chosen))
        subscription_id = stream.subscription_id
        times = {stored: _received_at(stored, dialect) for stored in {row[5] for row in chosen}}
        claimed = [
            ClaimedDelivery(delivery_id, event_id, subscription_id, name, 0, None, bytes(payload), entity_id, times[at])
            for delivery_id, (_seq, event_id, name, payload, entity_id, at) in zip(ids, chosen, strict=True)
        ]
        return StreamRead(claimed, position, position >= end)

    async def record_batch(
        self,
        stream: Stream,
        worker_id: str,
        moves: tuple[int, int],
        attempted: Sequence[tuple[ClaimedDelivery, AttemptRecord]],
        lease_until: datetime | None,
    ) -> None:
        """Write a batch's deliveries and attempts and move the stream from `moves[0]` to `moves[1]`.

        `lease_until` None hands the lease back. Raises LeaseLost, writing nothing, when the stream is no
        longer this worker's or no longer at `moves[0]`; but when a move off Kafka ended the stream while the batch
        was in flight, what it delivered is recorded in place of the rows the move made for it (decision 0011).
        How the writes travel is the dialect's (`StoreDialect.write_guarded`): on SQLite the whole transaction is
        one trip to the driver's thread.

        The batch moves the stream once, so it is not split when the database refuses a row (`refusals`): it
        is written again with every attempt bare (`bare_record`), rather than sent again and again.
        """
        write = functools.partial(self._write_batch, stream, worker_id, moves, lease_until)
        await write_whole(attempted, write, _bare_pair, f"a batch of Kafka stream {stream.subscription_id}")

    async def _write_batch(
        self,
        stream: Stream,
        worker_id: str,
        moves: tuple[int, int],
        lease_until: datetime | None,
        attempted: Sequence[tuple[ClaimedDelivery, AttemptRecord]],
    ) -> None:
        start, end = moves
        records = [record for _delivery, record in attempted]
        delivered = [record for record in records if record.status is DeliveryStatus.DELIVERED]
        others = [record for record in records if record.status is not DeliveryStatus.DELIVERED]
        moved = {
            "stream": stream.subscription_id,
            "worker": worker_id,
            "start": start,
            "end": end,
            "owner_after": worker_id if lease_until else None,
            "lease_until_after": lease_until,
        }
        batch = attempt_batch_row(stream.subscription_id, delivered)
        batch_id = None if batch is None else batch["id"]
        async with self._database.transaction() as connection:
            subscription = select(subscriptions.c.id).where(subscriptions.c.id == stream.subscription_id)
            writes = GuardedWrites(
                # The subscription's row first, as every statement that changes a subscription and its stream
                # locks them in that order: a PUT or a delete meanwhile waits, or is waited for, but never
                # deadlocks.
                locks=[subscription.with_for_update(read=True, key_share=True)],
                guard=Statement(_MOVE_STREAM, moved),
                writes=[
                    *([] if batch is None else [insert_attempt_batch(batch)]),
                    insert_for_stream_batch(connection, attempted, batch_id),
                    insert_for_records(connection.dialect, others),
                    *(Statement(*health) for health in health_updates(records, self._database.dialect)),
                ],
            )
            if await self._database.dialect.write_guarded(connection, writes):
                return
        moved_meanwhile = batch is not None and await self._record_after_a_move(
            stream.subscription_id, batch, [pair for pair in attempted if pair[1].status is DeliveryStatus.DELIVERED]
        )
        if not moved_meanwhile:
            raise LeaseLost(stream.subscription_id)

    async def _record_after_a_move(
        self, subscription_id: str, batch: dict[str, Any], delivered: Sequence[tuple[ClaimedDelivery, AttemptRecord]]
    ) -> bool:
        """Record what a batch delivered although a move off Kafka ended its stream while the batch was in flight:
        its rows replace those the move made for the same events, unless a worker took them already (which sends
        them again, at least once). Whether it recorded anything."""
        dialect = self._database.dialect
        async with self._database.transaction() as connection:
            subscription = select(subscriptions.c.id).where(subscriptions.c.id == subscription_id)
            writes = GuardedWrites(
                locks=[subscription.with_for_update(read=True, key_share=True)],
                guard=delete_unsent_after_a_move(dialect, subscription_id, [pair[0].event_id for pair in delivered]),
                writes=[insert_attempt_batch(batch), insert_for_stream_batch(connection, delivered, batch["id"])],
            )
            return await dialect.write_guarded(connection, writes)

    async def holders_heartbeats(self, worker_id: str, now: datetime) -> tuple[object, dict[str, object]]:
        """`worker_id`'s stored heartbeat, and that of every other worker holding a stream lease that has not run out
        by `now` (workers without a heartbeat row left out), as stored: for comparing, not for reading the time."""
        holders = select(kafka_streams.c.lease_owner).where(
            kafka_streams.c.lease_owner != worker_id, kafka_streams.c.lease_until > now
        )
        query = select(worker_heartbeats.c.worker_id, type_coerce(worker_heartbeats.c.heartbeat_at, NullType())).where(
            or_(worker_heartbeats.c.worker_id == worker_id, worker_heartbeats.c.worker_id.in_(holders))
        )
        async with self._database.reading() as connection:
            beats: dict[str, object] = dict((await connection.execute(query)).all())
        own = beats.pop(worker_id, None)
        return own, beats

    async def hand_back_leases_of(self, workers: Collection[str]) -> int:
        """Hand back every stream lease `workers` hold (taken for dead: `orphaned_leases`); how many."""
        statement = (
            update(kafka_streams)
            .where(kafka_streams.c.lease_owner.in_(list(workers)))
            .values(lease_owner=None, lease_until=None)
        )
        async with self._database.transaction() as connection:
            return int((await connection.execute(statement)).rowcount)

    async def release(self, subscription_id: str, worker_id: str) -> None:
        """Hand a stream's lease back without moving it."""
        statement = (
            update(kafka_streams)
            .where(kafka_streams.c.subscription_id == subscription_id, kafka_streams.c.lease_owner == worker_id)
            .values(lease_owner=None, lease_until=None)
        )
        async with self._database.transaction() as connection:
            await connection.execute(statement)


# Built once, so that SQLite's one trip compiles them once (`driver_statement`): a worker records a batch with them
# every few milliseconds. The move must find the stream still at `start` and leased by `worker`.
_MOVE_STREAM = (
    update(kafka_streams)
    .where(
        kafka_streams.c.subscription_id == bindparam("stream"),
        kafka_streams.c.lease_owner == bindparam("worker"),
        kafka_streams.c.position == bindparam("start"),
    )
    .values(
        position=bindparam("end"),
        lease_owner=bindparam("owner_after"),
        lease_until=bindparam("lease_until_after", type_=kafka_streams.c.lease_until.type),
    )
)


def _bare_pair(pair: tuple[ClaimedDelivery, AttemptRecord]) -> tuple[ClaimedDelivery, AttemptRecord]:
    return pair[0], bare_record(pair[1])
