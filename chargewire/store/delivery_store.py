"""The delivery queue the dispatcher works through: claims under a lease, attempt records, hand-backs and resend.

Its statements on `deliveries` are `delivery_writes`', on the attempt log `attempt_writes`' and on subscriptions'
health `subscription_health_writes`', run in its transactions; its reads of the log are `DeliveryLog`'s.
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import AbstractAsyncContextManager
from datetime import datetime

import asyncpg

from chargewire.models import DeliveryStatus
from chargewire.store.attempt_writes import insert_for_records
from chargewire.store.database import Database
from chargewire.store.delivery_claims import NEXT_DUE, ClaimRequest, chosen_announced, claim_listed, claim_scanned
from chargewire.store.delivery_log import DeliveryLog, created_within
from chargewire.store.delivery_records import AttemptRecord, ClaimedDelivery, bare_record, unrecordable_record
from chargewire.store.delivery_writes import (
    mark_delivered,
    release_leases,
    requeue_failed,
    reschedule,
    schedule_now,
)
from chargewire.store.dialects.base import Announced
from chargewire.store.dialects.postgresql_driver import KeptConnection
from chargewire.store.dialects.writes import Statement, Write
from chargewire.store.postgresql_claim import ClaimConnection
from chargewire.store.postgresql_record import WHAT as RECORD
from chargewire.store.postgresql_record import record_in_one_statement
from chargewire.store.refusals import write_apart
from chargewire.store.subscription_health_writes import health_updates


def _attempt_of(record: AttemptRecord) -> str:
    return f"attempt {record.attempt.number} of delivery {record.attempt.delivery_id}"


RECORD_FALLBACKS = (bare_record, unrecordable_record)


class DeliveryStore(DeliveryLog):
    """The queue of deliveries the dispatcher works through (claims, leases, attempt records, resend), over the
    log's reads; writes deliveries, attempts and subscriptions' health through their owners."""

    def __init__(self, database: Database) -> None:
        super().__init__(database)
        self._kept: dict[str, KeptConnection] = {}
        self._claims: ClaimConnection | None = None

    async def claim_due_deliveries(self, request: ClaimRequest) -> list[ClaimedDelivery]:
        """Lease up to `request.limit` due deliveries, at most `request.per_subscription[via]` of any one subscription.

        A lease is a `next_attempt_at` in the future: if the worker dies, the delivery falls due again when
        the lease runs out and another worker takes it.
        """
        dialect = self._database.dialect
        async with dialect.claim_transaction(self._database) as read:
            return await claim_scanned(read, dialect, request)

    @property
    def claims_announced_in_one_statement(self) -> bool:
        """Whether `claim_announced` is one statement outside a transaction (PostgreSQL), not a transaction."""
        return self._database.dialect.updates_in_with

    async def claim_announced(self, request: ClaimRequest, announced: Announced) -> list[ClaimedDelivery]:
        """Lease the first `request.limit` of these webhook deliveries a wake-up named, within its caps and none of
        its excluded subscriptions, those still pending, due and of an enabled webhook subscription, as
        `claim_due_deliveries` leases; in id order. No scan, no read before it.

        On PostgreSQL one statement, sent outside a transaction block (the UPDATE in a WITH, joined to the events'
        payloads): one round trip where a claim after a wake-up was six. It locks only the rows it leases, and a
        second worker's same statement re-checks them once the first's lease is committed
        (`claim_announced_statement`).
        """
        delivery_ids = chosen_announced(announced, request)
        if not delivery_ids:
            return []
        if not self.claims_announced_in_one_statement:
            dialect = self._database.dialect
            async with dialect.claim_transaction(self._database) as read:
                return await claim_listed(read, dialect, delivery_ids, request)
        if self._claims is None:
            self._claims = ClaimConnection(self._database.engine)
        return await self._claims.claim_listed(
            (self._database.dialect, self._database.engine.dialect), delivery_ids, request
        )

    def _driver(self, what: str) -> AbstractAsyncContextManager[asyncpg.Connection]:
        """A connection kept for `what` (records; announced claims keep theirs, `ClaimConnection`) out of the pool: no
        checkout per statement.

        Their plans are PostgreSQL's usual ones: forcing generic plans (`plan_cache_mode`) saved re-planning the
        announced claim but cost PostgreSQL 2.19-2.30 ms per event at 200 events/s against 1.51-1.52 (bench.load).
        """
        kept = self._kept.get(what)
        if kept is None:
            kept = self._kept[what] = KeptConnection(self._database.engine)
        return kept.driver(what)

    async def record_attempts(self, records: Sequence[AttemptRecord]) -> None:
        """Write attempts, their deliveries' new state and their subscriptions' health in one transaction.

        A delivery is only updated while the lease is still this worker's; an attempt that ran past its lease
        is still logged, and the delivery stays with whoever holds it now. A subscription with any success in
        the batch is healthy again; one with only failures is failing since now, unless it already was.
        Records the database refuses are written apart from the rest (`refusals`), in `RECORD_FALLBACKS`' forms;
        an error that is not a refusal is raised unchanged.
        """
        if records:
            await write_apart(records, self._record_together, RECORD_FALLBACKS, _attempt_of)

    async def _record_together(self, records: Sequence[AttemptRecord]) -> None:
        dialect = self._database.dialect
        if dialect.updates_in_with:
            # PostgreSQL: the whole record as one statement of data-modifying WITHs, in one round trip.
            async with self._driver(RECORD) as driver:
                await record_in_one_statement(driver, self._database.engine.dialect, records)
            return
        delivered = [record for record in records if record.status is DeliveryStatus.DELIVERED]
        failed = [record for record in records if record.status is not DeliveryStatus.DELIVERED]
        health = [Statement(*update) for update in health_updates(records, dialect)]
        # On SQLite these and the commit go in one trip, failures' reschedules too (they were a trip of their own).
        writes: list[Write] = [
            *reschedule(failed),
            insert_for_records(self._database.engine.dialect, records),
            *health,
            *mark_delivered(dialect, delivered),
        ]
        await dialect.commit_writes(self._database, writes)

    async def next_due_at(self) -> datetime | None:
        """When the first pending delivery falls due (perhaps already; a leased one when its lease runs out), None
        when none is pending: an idle worker sleeps until then instead of asking again and again (one read)."""
        async with self._database.reading() as connection:
            # An idle worker asks after most wake-ups: one round trip, not three (StoreDialect.lone_read).
            await self._database.dialect.lone_read(connection)
            due_at: datetime | None = (await connection.execute(NEXT_DUE)).scalar()
        return due_at

    async def release_leases(self, worker_id: str, delivery_ids: Sequence[str], now: datetime) -> None:
        """Hand leased deliveries back without an attempt, due now (used when a worker stops)."""
        if not delivery_ids:
            return
        async with self._database.transaction() as connection:
            await release_leases(connection, worker_id, delivery_ids, now)

    async def requeue_failed(
        self,
        subscription_id: str,
        event_names: Sequence[str],
        since: datetime | None,
        until: datetime | None,
        now: datetime,
    ) -> int:
        """Give every failed delivery of these events (created in [since, until]) exactly one more attempt, now.

        Returns how many were queued. If that attempt fails too, the delivery goes back to failed.
        """
        async with self._database.transaction() as connection:
            return await requeue_failed(connection, subscription_id, event_names, created_within(since, until), now)

    async def schedule_now(self, delivery_id: str, now: datetime) -> bool:
        """Attempt a delivery now: a delivered or failed one gets exactly one more attempt.

        False when the delivery is in flight with a worker right now.
        """
        async with self._database.transaction() as connection:
            return await schedule_now(connection, delivery_id, now)
