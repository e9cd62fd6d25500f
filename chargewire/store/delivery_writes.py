"""Every write to the `deliveries` table, each statement named for its intent, with the one column list of a new row.

A delivery row is made at publish (one per webhook subscriber), when a Kafka stream records a batch (one per
record it attempted), and when a Kafka subscription becomes a webhook (its unread backlog). It is leased by a
claim, moved on by its attempts' records, handed back, queued again by a resend or a manual retry, and
removed by expiry. Each of those writes is a function here that takes its caller's connection, or, for a
publish or a stream batch, a write its caller sends with the last of its transaction: the caller keeps its
transaction, so an event and its deliveries, or a batch and its stream's move, still commit together
(decision 0006).
`tests/unit/store/test_table_write_owners.py` keeps every such statement in this module.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, FromClause, Update, any_, bindparam, case, delete, func, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from chargewire.clock import utcnow
from chargewire.ids import new_ids
from chargewire.models import DeliveryStatus, Via
from chargewire.store.attempt_text import MAX_LAST_ERROR_CHARS, storable_optional
from chargewire.store.bulk_insert import insert_rows, stored_value
from chargewire.store.delivery_records import AttemptRecord, ClaimedDelivery
from chargewire.store.dialects import StoreDialect
from chargewire.store.dialects.writes import ColumnInsert, Statement
from chargewire.store.tables import deliveries, kafka_streams, subscriptions

# The columns of a new delivery row, in the order every insert here gives its values.
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
# A streamed batch's rows also name the attempt batch that delivered them.
_STREAMED_DELIVERY_COLUMNS = (*NEW_DELIVERY_COLUMNS, "attempt_batch_id")
# A publish's rows also name the worker a hand-off leased them to (in the table's order, as compiled inserts want).
_LEASE_AT = NEW_DELIVERY_COLUMNS.index("next_attempt_at") + 1
_PUBLISHED_DELIVERY_COLUMNS = (*NEW_DELIVERY_COLUMNS[:_LEASE_AT], "lease_owner", *NEW_DELIVERY_COLUMNS[_LEASE_AT:])


@dataclass(frozen=True, slots=True)
class NewDelivery:
    """A delivery row to write beside its event."""

    id: str
    event_id: str
    subscription_id: str
    event_name: str


@dataclass(frozen=True, slots=True)
class PublishLease:
    """Deliveries a publish writes already leased to a worker of its own process, which sends them after the
    commit (a hand-off): pending, `lease_owner` set, and due again only when the lease runs out `until`."""

    worker_id: str
    until: datetime
    delivery_ids: frozenset[str]
    # One per delivery leased, for the worker's own bookkeeping.
    subscription_ids: tuple[str, ...]
    # Its worker is in another process, told by the publish's NOTIFY (`services.worker_assignments`).
    elsewhere: bool = False


def insert_for_published_events(
    new_deliveries: Sequence[NewDelivery],
    stored_now: Any,
    lease: PublishLease | None = None,
    stored_until: Any = None,
) -> ColumnInsert:
    """The insert of the pending deliveries a publish made, for the publish's last writes: due at once, or those
    in `lease` leased to its worker until `stored_until`; times as the driver takes them."""
    count = len(new_deliveries)
    leased = lease.delivery_ids if lease is not None else frozenset()
    owner = lease.worker_id if lease is not None else None
    owners = [owner if delivery.id in leased else None for delivery in new_deliveries]
    return ColumnInsert(
        deliveries,
        _PUBLISHED_DELIVERY_COLUMNS,
        (
            [delivery.id for delivery in new_deliveries],
            [delivery.event_id for delivery in new_deliveries],
            [delivery.subscription_id for delivery in new_deliveries],
            [delivery.event_name for delivery in new_deliveries],
            [DeliveryStatus.PENDING.value] * count,
            [0] * count,
            [stored_now if owner is None else stored_until for owner in owners],
            owners,
            [None] * count,
            [stored_now] * count,
            [stored_now] * count,
        ),
    )


async def insert_for_stream_backlog(
    connection: AsyncConnection, subscription_id: str, unread: Sequence[tuple[str, str]]
) -> None:
    """Insert pending deliveries, due now, for the (event id, event name) a stream leaves unread."""
    if not unread:
        return
    now = stored_value(connection, deliveries.c.created_at)(utcnow())
    pending = DeliveryStatus.PENDING.value
    new = [
        (delivery_id, event_id, subscription_id, name, pending, 0, now, None, now, now)
        for delivery_id, (event_id, name) in zip(new_ids("dlv", len(unread)), unread, strict=True)
    ]
    await insert_rows(connection, deliveries, NEW_DELIVERY_COLUMNS, new)


def insert_for_stream_batch(
    connection: AsyncConnection, attempted: Sequence[tuple[ClaimedDelivery, AttemptRecord]], batch_id: str | None
) -> ColumnInsert:
    """The insert of a stream batch's rows, one per record attempted, for the batch's guarded writes: those it
    delivered name `batch_id`, the others are pending retries or failed."""
    stored_time = stored_value(connection, deliveries.c.created_at)
    times: dict[datetime | None, Any] = {}
    for delivery, record in attempted:
        for at in (delivery.received_at, record.attempt.started_at, record.next_attempt_at):
            if at not in times:
                times[at] = None if at is None else stored_time(at)
    claimed = [delivery for delivery, _record in attempted]
    records = [record for _delivery, record in attempted]
    delivered = DeliveryStatus.DELIVERED
    values = (
        [record.attempt.delivery_id for record in records],
        [delivery.event_id for delivery in claimed],
        [delivery.subscription_id for delivery in claimed],
        [delivery.event_name for delivery in claimed],
        [record.status.value for record in records],
        [1] * len(records),
        [times[record.next_attempt_at] for record in records],
        [storable_optional(record.last_error, MAX_LAST_ERROR_CHARS) for record in records],
        [times[delivery.received_at] for delivery in claimed],
        [times[record.attempt.started_at] for record in records],
        [batch_id if record.status is delivered else None for record in records],
    )
    return ColumnInsert(deliveries, _STREAMED_DELIVERY_COLUMNS, values)


def delete_unsent_after_a_move(dialect: StoreDialect, subscription_id: str, event_ids: Sequence[str]) -> Statement:
    """The delete of the rows a move off Kafka made (`insert_for_stream_backlog`) for events that a batch in
    flight delivered meanwhile, for the batch's guarded writes (`StreamStore.record_batch`): only rows never tried
    nor claimed, and only while the subscription has no stream (it is no longer a Kafka one)."""
    has_stream = select(kafka_streams.c.subscription_id).where(kafka_streams.c.subscription_id == subscription_id)
    statement = delete(deliveries).where(
        deliveries.c.subscription_id == subscription_id,
        dialect.one_of(deliveries.c.event_id, event_ids),
        deliveries.c.status == DeliveryStatus.PENDING.value,
        deliveries.c.attempt_count == 0,
        deliveries.c.lease_owner.is_(None),
        ~has_stream.exists(),
    )
    return Statement(statement, {})


def claim_due_values(
    dialect: StoreDialect, delivery_ids: Sequence[str], worker_id: str, now: datetime, lease_until: datetime
) -> dict[str, Any]:
    """The values `claim_due_statement` binds."""
    return {
        "ids": dialect.ids_value(delivery_ids),
        "first": min(delivery_ids),
        "last": max(delivery_ids),
        "worker": worker_id,
        "now": now,
        "until": lease_until,
    }


# Built once per dialect: a worker claims with it after every wake-up. `ids`, `first`, `last`, `worker`, `now` and
# `until` are bound.
@functools.cache
def claim_due_statement(dialect: StoreDialect) -> Update:
    """The lease of the listed deliveries still due, an UPDATE ... RETURNING their (id, event id, subscription id,
    event name, attempt count, attempt limit), for a caller that may read more with it (a WITH on PostgreSQL)."""
    moment = deliveries.c.next_attempt_at.type
    now = bindparam("now", type_=moment)
    return (
        update(deliveries)
        # Still due: on PostgreSQL, rows `_in_publishing_order` put in were not locked by the scan. The status is
        # wrapped so that neither database answers it from the due index, which walks the whole backlog (a claim
        # took ~200 ms with 1,000,000 pending); the ids are found by primary key and the status checked on them.
        .where(
            dialect.one_of(deliveries.c.id, None),
            # The ids' range as well: PostgreSQL prunes a generic plan's partitions by a range of bound values, not
            # by an array of them, and without it probed every day partition's primary key for every id (258
            # blocks a claim of 5 rows at 200 events/s, the claim's costliest statement).
            deliveries.c.id.between(bindparam("first"), bindparam("last")),
            func.coalesce(deliveries.c.status, "") == DeliveryStatus.PENDING.value,
            deliveries.c.next_attempt_at <= now,
        )
        .values(lease_owner=bindparam("worker"), next_attempt_at=bindparam("until", type_=moment), updated_at=now)
        .returning(
            deliveries.c.id,
            deliveries.c.event_id,
            deliveries.c.subscription_id,
            deliveries.c.event_name,
            deliveries.c.attempt_count,
            deliveries.c.attempt_limit,
        )
    )


# Built once per dialect, as `claim_due_statement`, whose values it binds.
@functools.cache
def claim_announced_statement(dialect: StoreDialect) -> Update:
    """`claim_due_statement` for ids no scan chose: only rows of an enabled subscription whose channel keeps no
    order (a Kafka subscription's rows are claimed in publishing order, `delivery_claims._in_publishing_order`).

    Two workers told of the same ids run it side by side: the second waits for the first's row lock, and READ
    COMMITTED checks the WHERE again on the row the first left, leased and no longer due, so only one leases it.
    """
    claimable = (
        select(subscriptions.c.id)
        .where(
            subscriptions.c.id == deliveries.c.subscription_id,
            subscriptions.c.enabled.is_(True),
            subscriptions.c.via != Via.KAFKA.value,
        )
        .exists()
    )
    return claim_due_statement(dialect).where(claimable)


async def release_leases(
    connection: AsyncConnection, worker_id: str, delivery_ids: Sequence[str], now: datetime
) -> None:
    """Hand deliveries leased to `worker_id` back without an attempt, due at `now`."""
    statement = (
        update(deliveries)
        .where(deliveries.c.id.in_(delivery_ids), deliveries.c.lease_owner == worker_id)
        .values(lease_owner=None, next_attempt_at=now, updated_at=now)
    )
    await connection.execute(statement)


def mark_delivered(dialect: StoreDialect, records: Sequence[AttemptRecord]) -> list[Statement]:
    """Successes, the common case, need no per-row values: one statement per worker, for the record's last writes
    (SQLite's; PostgreSQL's record moves every delivery by `record_outcomes`)."""
    by_worker: dict[str, list[str]] = {}
    for record in records:
        by_worker.setdefault(record.worker_id, []).append(record.attempt.delivery_id)
    now = records[-1].attempt.started_at if records else None
    statement = _mark_delivered(dialect)
    return [
        Statement(statement, {"ids": dialect.ids_value(ids), "worker": worker_id, "now": now})
        for worker_id, ids in by_worker.items()
    ]


# Built once per dialect: a worker records with it every few milliseconds, and a statement built anew is compiled
# anew. `ids`, `worker` and `now` are bound.
@functools.cache
def _mark_delivered(dialect: StoreDialect) -> Update:
    return (
        update(deliveries)
        .where(dialect.one_of(deliveries.c.id, None), deliveries.c.lease_owner == bindparam("worker"))
        .values(
            status=DeliveryStatus.DELIVERED.value,
            attempt_count=deliveries.c.attempt_count + 1,
            next_attempt_at=None,
            last_error=None,
            lease_owner=None,
            updated_at=bindparam("now", type_=deliveries.c.updated_at.type),
        )
    )


def reschedule(records: Sequence[AttemptRecord]) -> list[Statement]:
    """Failed attempts, for the record's last writes: each delivery gets its own retry time (or fails for good)
    and last error, one statement each (SQLite's record; PostgreSQL's moves every delivery by `record_outcomes`)."""
    return [
        Statement(
            _RESCHEDULE,
            {
                "b_id": record.attempt.delivery_id,
                "b_worker": record.worker_id,
                "b_status": record.status.value,
                "b_next": record.next_attempt_at,
                "b_error": storable_optional(record.last_error, MAX_LAST_ERROR_CHARS),
                "b_now": record.attempt.started_at,
            },
        )
        for record in records
    ]


# Built once, as `_mark_delivered`: compiled once for SQLite's one trip. Every `b_` value is bound.
_RESCHEDULE = (
    update(deliveries)
    .where(deliveries.c.id == bindparam("b_id"), deliveries.c.lease_owner == bindparam("b_worker"))
    .values(
        status=bindparam("b_status"),
        attempt_count=deliveries.c.attempt_count + 1,
        next_attempt_at=bindparam("b_next"),
        last_error=bindparam("b_error"),
        lease_owner=None,
        updated_at=bindparam("b_now"),
    )
)


# The columns `record_outcomes` reads from its rows besides `delivery_id`, each with the deliveries column whose
# type its values have.
OUTCOME_COLUMNS = (
    ("worker", deliveries.c.lease_owner),
    ("status", deliveries.c.status),
    ("next_attempt_at", deliveries.c.next_attempt_at),
    ("last_error", deliveries.c.last_error),
    ("updated_at", deliveries.c.updated_at),
)


def outcome_values(records: Sequence[AttemptRecord], stored_time: Callable[[datetime], Any]) -> list[tuple[Any, ...]]:
    """Each record's delivery's new state in `OUTCOME_COLUMNS` order, times made what the driver takes by
    `stored_time`: what `mark_delivered` sets for a success (its time that of the last success), `reschedule`'s for
    a failure."""
    delivered = [record for record in records if record.status is DeliveryStatus.DELIVERED]
    delivered_at = stored_time(delivered[-1].attempt.started_at) if delivered else None
    status = DeliveryStatus.DELIVERED.value
    return [
        (record.worker_id, status, None, None, delivered_at)
        if record.status is DeliveryStatus.DELIVERED
        else (
            record.worker_id,
            record.status.value,
            None if record.next_attempt_at is None else stored_time(record.next_attempt_at),
            storable_optional(record.last_error, MAX_LAST_ERROR_CHARS),
            stored_time(record.attempt.started_at),
        )
        for record in records
    ]


def record_outcomes(outcomes: FromClause) -> Update:
    """The UPDATE of every delivery `outcomes` names by `delivery_id` to its new state (`OUTCOME_COLUMNS`), each only
    while its lease is still the named worker's: successes and failures of a record in one statement (PostgreSQL's
    UPDATE ... FROM), each as `mark_delivered` or `reschedule` would leave it."""
    # The ids again as an array: its length unknown, the planner reckons it at ten and finds them by primary key;
    # joined alone, the rows are reckoned at a hundred and, below some 100,000 deliveries, scanned for whole.
    chosen = deliveries.c.id == any_(func.array(select(outcomes.c.delivery_id).scalar_subquery()))
    return (
        update(deliveries)
        .where(chosen, deliveries.c.id == outcomes.c.delivery_id, deliveries.c.lease_owner == outcomes.c.worker)
        .values(
            status=outcomes.c.status,
            attempt_count=deliveries.c.attempt_count + 1,
            next_attempt_at=outcomes.c.next_attempt_at,
            last_error=outcomes.c.last_error,
            lease_owner=None,
            updated_at=outcomes.c.updated_at,
        )
    )


async def requeue_failed(
    connection: AsyncConnection,
    subscription_id: str,
    event_names: Sequence[str],
    created_within: Sequence[ColumnElement[bool]],
    now: datetime,
) -> int:
    """Give a subscription's failed deliveries of these events (created within the conditions given) exactly
    one more attempt, due now; returns how many."""
    statement = (
        update(deliveries)
        .where(
            deliveries.c.subscription_id == subscription_id,
            deliveries.c.status == DeliveryStatus.FAILED.value,
            deliveries.c.event_name.in_(event_names),
        )
        .values(
            status=DeliveryStatus.PENDING.value,
            next_attempt_at=now,
            attempt_limit=deliveries.c.attempt_count + 1,
            lease_owner=None,
            updated_at=now,
        )
    )
    result = await connection.execute(statement.where(*created_within))
    return int(result.rowcount)


async def schedule_now(connection: AsyncConnection, delivery_id: str, now: datetime) -> bool:
    """Make a delivery due now, a delivered or failed one with exactly one more attempt; False when it is in
    flight with a worker."""
    one_more = case(
        (deliveries.c.status == DeliveryStatus.PENDING.value, deliveries.c.attempt_limit),
        else_=deliveries.c.attempt_count + 1,
    )
    statement = (
        update(deliveries)
        .where(deliveries.c.id == delivery_id, deliveries.c.lease_owner.is_(None))
        .values(status=DeliveryStatus.PENDING.value, next_attempt_at=now, attempt_limit=one_more, updated_at=now)
    )
    result = await connection.execute(statement)
    return int(result.rowcount) > 0


async def delete_expired(connection: AsyncConnection, delivery_ids: Sequence[str], status: DeliveryStatus) -> list[str]:
    """Remove these deliveries, those still in `status`; returns the ids removed.

    The status is checked again here: a resend may have made one pending since expiry picked it, and it stays.
    """
    gone = delete(deliveries).where(deliveries.c.id.in_(delivery_ids), deliveries.c.status == status.value)
    return list((await connection.scalars(gone.returning(deliveries.c.id))).all())
