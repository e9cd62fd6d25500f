"""Expiry: removing delivered history and failed deliveries past the resend window, in short transactions.

What may go (docs/retention.md), each rule kept by the statement that removes the rows:

- A delivery, when it is delivered and was created before the delivered cutoff, or failed and created before
  the failed (resend) cutoff. The status is checked again by the DELETE itself, so a delivery requeued since
  it was picked (resend, manual retry) stays. A pending delivery, due or waiting for a retry, never goes.
- Its attempts go with it, in the same transaction; attempts whose delivery is gone already (its
  subscription was deleted, which takes its deliveries by cascade) once they are older than the delivered
  cutoff. A Kafka batch's `attempt_batches` row goes once none of the deliveries it delivered is left.
- An event, when it was received before the delivered cutoff, no delivery row refers to it any more (so a
  pending delivery, or a failed one kept for resend, keeps its event), and no Kafka stream has still to read
  it: past the stream's position and not inside one of its pauses.

On PostgreSQL whole expired partitions are dropped first (`postgresql_partitions`), the rows they must keep
copied back. Then each transaction removes at most `batch_size` rows, and the event loop gets a turn between
them: on SQLite the write lock is held for a few milliseconds at a time, and publishes go in between.
"""

from __future__ import annotations

import asyncio
import functools
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import Table, and_, or_, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from chargewire.ids import first_id_at
from chargewire.models import DeliveryStatus, Via
from chargewire.store.attempt_writes import delete_for_deliveries, delete_orphaned, delete_spent_batches
from chargewire.store.database import Database
from chargewire.store.delivery_writes import delete_expired
from chargewire.store.dialects.upkeep import TableSize, Upkeep
from chargewire.store.event_store import delete_unused
from chargewire.store.expiry_rules import Cutoffs, Stretch, needed_stretches
from chargewire.store.id_bounds import made_until
from chargewire.store.tables import (
    attempt_batches,
    attempts,
    deliveries,
    events,
    expiry_runs,
    kafka_streams,
    stream_pauses,
    subscriptions,
)

_RUN_ROW = 1
# The tables whose rows expire, each with the column that says how old a row is.
HISTORY_TABLES = {"events": "received_at", "deliveries": "created_at", "attempts": "started_at"}


@dataclass(frozen=True, slots=True)
class RetentionPolicy:
    """How long delivered history and failed deliveries are kept, and how many rows one transaction removes."""

    delivered: timedelta
    failed: timedelta
    batch_size: int = 500


@dataclass(frozen=True, slots=True)
class ExpiryRun:
    """What the last expiry run did, and the sizes it measured afterwards."""

    started_at: datetime | None = None
    finished_at: datetime | None = None
    removed: dict[str, int] = field(default_factory=dict)
    error: str | None = None
    tables: list[TableSize] = field(default_factory=list)


class RetentionStore:
    """Removes expired rows, holds the expiry lease, and keeps the record of the last run."""

    def __init__(self, database: Database, upkeep: Upkeep | None = None) -> None:
        self._database = database
        self.upkeep = upkeep or database.dialect.upkeep(database)

    async def take_lease(self, owner: str, now: datetime, until: datetime) -> bool:
        """Make `owner` the one process that expires until `until`, if no other holds the lease now."""
        statement = (
            update(expiry_runs)
            .where(
                expiry_runs.c.id == _RUN_ROW,
                or_(
                    expiry_runs.c.lease_owner.is_(None),
                    expiry_runs.c.lease_owner == owner,
                    expiry_runs.c.lease_until < now,
                ),
            )
            .values(lease_owner=owner, lease_until=until)
        )
        async with self._database.transaction() as connection:
            return bool((await connection.execute(statement)).rowcount)

    async def expire(self, now: datetime, policy: RetentionPolicy) -> dict[str, int]:
        """Remove every row that has expired at `now`; returns the rows removed per table."""
        delivered_before, failed_before = now - policy.delivered, now - policy.failed
        removed: Counter[str] = Counter()
        async with self._database.reading() as connection:
            subscription_ids = list((await connection.scalars(select(subscriptions.c.id))).all())
            stretches = await _stream_stretches(connection)
        # Whole partitions first, where the database has them: the row deletes below then find little.
        await self.upkeep.drop_partitions(now, Cutoffs(delivered_before, failed_before, stretches), removed)
        for subscription_id in subscription_ids:
            for status, before in (
                (DeliveryStatus.DELIVERED, delivered_before),
                (DeliveryStatus.FAILED, failed_before),
            ):
                more = True
                while more:
                    more = await self._expire_deliveries(subscription_id, status, before, policy.batch_size, removed)
                    await asyncio.sleep(0)  # a turn for the event loop (and SQLite's write lock) between batches
        orphaned = functools.partial(delete_orphaned, before=delivered_before)
        await self._sweep(attempts, "att", delivered_before, policy.batch_size, removed, orphaned)
        await self._sweep(attempt_batches, "att", delivered_before, policy.batch_size, removed, delete_spent_batches)
        unused = functools.partial(delete_unused, before=delivered_before, stretches=stretches)
        await self._sweep(events, "evt", delivered_before, policy.batch_size, removed, unused)
        return {table: removed[table] for table in ("events", "deliveries", "attempts", "attempt_batches")}

    async def _expire_deliveries(
        self, subscription_id: str, status: DeliveryStatus, before: datetime, limit: int, removed: Counter[str]
    ) -> bool:
        """Remove up to `limit` of one subscription's deliveries in `status` created before `before` (the log
        index: subscription, status, created_at), with their attempts; whether there may be more."""
        picked = (
            select(deliveries.c.id)
            .where(
                deliveries.c.subscription_id == subscription_id,
                deliveries.c.status == status.value,
                deliveries.c.created_at < before,
                made_until(deliveries.c.id, "dlv", before),  # PostgreSQL skips the days after the cutoff
            )
            .order_by(deliveries.c.created_at)
            .limit(limit)
        )
        async with self._database.transaction() as connection:
            ids = list((await connection.scalars(picked)).all())
            if not ids:
                return False
            # A resend may have made one pending since it was picked: it stays, with its attempts.
            deleted = await delete_expired(connection, ids, status)
            removed["deliveries"] += len(deleted)
            if deleted:
                removed["attempts"] += await delete_for_deliveries(connection, deleted)
        return len(ids) == limit

    async def _sweep(
        self,
        table: Table,
        prefix: str,
        before: datetime,
        limit: int,
        removed: Counter[str],
        remove: Callable[[AsyncConnection, Sequence[str]], Awaitable[int]],
    ) -> None:
        """Walk `table` in id order (ids are time-ordered) up to `before`, `limit` ids per transaction, removing
        those of each chunk that its owner's `remove` finds expired. A walk, not a repeated "first N expired
        rows": rows that must stay (an event a failed delivery still needs) would otherwise be read again by
        every transaction."""
        bound = first_id_at(prefix, int(before.timestamp() * 1000))
        after = ""
        while True:
            async with self._database.transaction() as connection:
                chunk = select(table.c.id).where(table.c.id > after, table.c.id < bound).order_by(table.c.id)
                ids = list((await connection.scalars(chunk.limit(limit))).all())
                if not ids:
                    return
                removed[table.name] += await remove(connection, ids)
            if len(ids) < limit:
                return
            after = ids[-1]
            await asyncio.sleep(0)

    async def record_run(self, run: ExpiryRun) -> None:
        """Keep what a run did and measured, for `/metrics`, the back office and `chargewire db stats`."""
        tables = [
            {
                "table": size.table,
                "partition": size.partition,
                "bytes": size.bytes,
                "rows": size.rows,
                "oldest": None if size.oldest is None else size.oldest.isoformat(),
            }
            for size in run.tables
        ]
        values = {
            "started_at": run.started_at,
            "finished_at": run.finished_at,
            "removed": run.removed,
            "error": run.error,
            "tables": tables,
        }
        async with self._database.transaction() as connection:
            await connection.execute(update(expiry_runs).where(expiry_runs.c.id == _RUN_ROW).values(**values))

    async def last_run(self) -> ExpiryRun:
        """The last run's record (empty before the first)."""
        async with self._database.reading() as connection:
            row = (await connection.execute(select(expiry_runs).where(expiry_runs.c.id == _RUN_ROW))).first()
        if row is None:
            return ExpiryRun()
        tables = [
            TableSize(
                entry["table"],
                entry["partition"],
                entry["bytes"],
                entry["rows"],
                None if entry["oldest"] is None else datetime.fromisoformat(entry["oldest"]),
            )
            for entry in row.tables or []
        ]
        return ExpiryRun(row.started_at, row.finished_at, dict(row.removed or {}), row.error, tables)

    async def measure(self) -> list[TableSize]:
        """Every table's size, with the oldest row of the history tables."""
        async with self._database.reading() as connection:
            sizes = await self.upkeep.table_sizes(connection)
            oldest = {table: await _oldest(connection, table) for table in HISTORY_TABLES}
        return [TableSize(size.table, size.partition, size.bytes, size.rows, oldest.get(size.table)) for size in sizes]


async def _stream_stretches(connection: AsyncConnection) -> list[Stretch]:
    """Every stretch of the log that some Kafka subscription's stream has still to read."""
    positions = select(kafka_streams.c.subscription_id, kafka_streams.c.position).join(
        subscriptions,
        and_(subscriptions.c.id == kafka_streams.c.subscription_id, subscriptions.c.via == Via.KAFKA.value),
    )
    streams = (await connection.execute(positions)).all()
    paused = (await connection.execute(select(stream_pauses))).all()
    pauses: dict[str, list[tuple[int, int | None]]] = {}
    for subscription_id, paused_from, paused_to in paused:
        pauses.setdefault(subscription_id, []).append((paused_from, paused_to))
    return [
        stretch
        for subscription_id, position in streams
        for stretch in needed_stretches(position, pauses.get(subscription_id, []))
    ]


async def _oldest(connection: AsyncConnection, table_name: str) -> datetime | None:
    """When the oldest row of a history table was made: the first in id order, ids being time-ordered."""
    table = {"events": events, "deliveries": deliveries, "attempts": attempts}[table_name]
    column = table.c[HISTORY_TABLES[table_name]]
    return (await connection.execute(select(column).order_by(table.c.id).limit(1))).scalar()
