"""The delivery log: pages of deliveries with their attempts, one delivery, and the queue depth (reads only).

Its writes are `delivery_writes`'; the queue the dispatcher works through is `delivery_store`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import ColumnElement, RowMapping, case, func, select

from chargewire.models import Attempt, Delivery, DeliveryStatus
from chargewire.store.database import Database
from chargewire.store.event_log import stream_backlog
from chargewire.store.id_bounds import made_after_id, made_since, made_until
from chargewire.store.tables import attempt_batches, attempts, deliveries, subscriptions


@dataclass(frozen=True, slots=True)
class DeliveryFilter:
    """Which deliveries a log page shows; None means any."""

    subscription_id: str | None = None
    owner_token_id: str | None = None
    status: DeliveryStatus | None = None
    event_name: str | None = None
    event_id: str | None = None
    since: datetime | None = None
    until: datetime | None = None


class DeliveryLog:
    """Reads the `deliveries` and `attempts` tables as the delivery log: what the API and back office show."""

    def __init__(self, database: Database) -> None:
        self._database = database

    async def list_deliveries(self, where: DeliveryFilter, after_id: str | None, limit: int) -> list[Delivery]:
        """A page of the delivery log, newest first, starting after the delivery `after_id`."""
        query = select(*_DELIVERY_COLUMNS).order_by(deliveries.c.id.desc()).limit(limit)
        for condition in _conditions(where):
            query = query.where(condition)
        if after_id is not None:
            query = query.where(deliveries.c.id < after_id)
        async with self._database.reading() as connection:
            rows = (await connection.execute(query)).all()
        return [_to_delivery(row._mapping) for row in rows]

    async def get_delivery(self, delivery_id: str) -> tuple[Delivery, str] | None:
        """A delivery and the id of the token that owns its subscription."""
        query = (
            select(*_DELIVERY_COLUMNS, subscriptions.c.token_id)
            .join(subscriptions, subscriptions.c.id == deliveries.c.subscription_id)
            .where(deliveries.c.id == delivery_id)
        )
        async with self._database.reading() as connection:
            row = (await connection.execute(query)).first()
        return (_to_delivery(row._mapping), row.token_id) if row else None

    async def list_attempts(self, delivery_id: str) -> list[Attempt]:
        """Every attempt of a delivery, first to last; a streamed batch's attempt comes first, when it delivered."""
        # Attempts are made after their delivery: PostgreSQL skips the days before it.
        made_after = made_after_id(attempts.c.id, "att", delivery_id)
        query = select(attempts).where(attempts.c.delivery_id == delivery_id, made_after)
        query = query.order_by(attempts.c.number, attempts.c.id)
        batch = select(attempt_batches).join(deliveries, deliveries.c.attempt_batch_id == attempt_batches.c.id)
        async with self._database.reading() as connection:
            rows = (await connection.execute(query)).all()
            batched = (await connection.execute(batch.where(deliveries.c.id == delivery_id))).first()
        listed = [_to_attempt(row._mapping) for row in rows]
        return [_batch_attempt(delivery_id, batched._mapping), *listed] if batched else listed

    async def queue_depth(self, now: datetime) -> dict[str, int]:
        """Deliveries due now (pending rows, and events Kafka streams have yet to read), pending ones scheduled
        later, and failed ones kept for resend."""
        # Only the pending and failed rows, found by the due index's status prefix: delivered ones, most of a
        # busy operator's table, are never read, so the cost follows the work left, not the history kept.
        due = func.sum(case((deliveries.c.next_attempt_at <= now, 1), else_=0))
        query = (
            select(deliveries.c.status, func.count(), due)
            .where(deliveries.c.status.in_(_QUEUED))
            .group_by(deliveries.c.status)
        )
        async with self._database.reading() as connection:
            rows = (await connection.execute(query)).all()
            streaming = await stream_backlog(connection)
        counts = {"due": streaming, "scheduled": 0, "failed": 0}
        for status, total, due_count in rows:
            if status == DeliveryStatus.PENDING.value:
                counts["due"] += int(due_count or 0)
                counts["scheduled"] = int(total) - int(due_count or 0)
            else:
                counts["failed"] = int(total)
        return counts


_QUEUED = (DeliveryStatus.PENDING.value, DeliveryStatus.FAILED.value)
_DELIVERY_COLUMNS = tuple(column for column in deliveries.c if column.name != "lease_owner")


def _conditions(where: DeliveryFilter) -> list[ColumnElement[bool]]:
    conditions: list[ColumnElement[bool]] = []
    if where.subscription_id is not None:
        conditions.append(deliveries.c.subscription_id == where.subscription_id)
    if where.owner_token_id is not None:
        owned = select(subscriptions.c.id).where(subscriptions.c.token_id == where.owner_token_id)
        conditions.append(deliveries.c.subscription_id.in_(owned))
    if where.status is not None:
        conditions.append(deliveries.c.status == where.status.value)
    if where.event_name is not None:
        conditions.append(deliveries.c.event_name == where.event_name)
    if where.event_id is not None:
        conditions.append(deliveries.c.event_id == where.event_id)
    return conditions + created_within(where.since, where.until)


def created_within(since: datetime | None, until: datetime | None) -> list[ColumnElement[bool]]:
    """Deliveries created in [since, until], each end also as an id bound: PostgreSQL then skips the days
    outside (`id_bounds`)."""
    conditions: list[ColumnElement[bool]] = []
    if since is not None:
        conditions += [deliveries.c.created_at >= since, made_since(deliveries.c.id, "dlv", since)]
    if until is not None:
        conditions += [deliveries.c.created_at <= until, made_until(deliveries.c.id, "dlv", until)]
    return conditions


def _to_delivery(mapping: RowMapping) -> Delivery:
    return Delivery(
        id=mapping["id"],
        event_id=mapping["event_id"],
        subscription_id=mapping["subscription_id"],
        event_name=mapping["event_name"],
        status=DeliveryStatus(mapping["status"]),
        attempt_count=mapping["attempt_count"],
        next_attempt_at=mapping["next_attempt_at"],
        created_at=mapping["created_at"],
        updated_at=mapping["updated_at"],
        attempt_limit=mapping["attempt_limit"],
        last_error=mapping["last_error"],
    )


def _to_attempt(mapping: RowMapping) -> Attempt:
    return Attempt(
        id=mapping["id"],
        delivery_id=mapping["delivery_id"],
        number=mapping["number"],
        started_at=mapping["started_at"],
        duration_ms=mapping["duration_ms"],
        outcome=mapping["outcome"],
        status_code=mapping["status_code"],
        error_class=mapping["error_class"],
        error_message=mapping["error_message"],
        request_headers=mapping["request_headers"] or {},
        response_headers=mapping["response_headers"],
        response_body=mapping["response_body"],
    )


def _batch_attempt(delivery_id: str, batch: RowMapping) -> Attempt:
    """A delivery's share of its streamed batch's attempt: the headers all records shared, and its own ack."""
    return Attempt(
        id=batch["id"],
        delivery_id=delivery_id,
        number=1,
        started_at=batch["started_at"],
        duration_ms=batch["duration_ms"],
        outcome="delivered",
        request_headers=batch["request_headers"],
        response_headers=batch["response_headers"].get(delivery_id),
    )
