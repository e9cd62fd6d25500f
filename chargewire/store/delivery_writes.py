"""Every write to the `deliveries` table, each statement named for its intent, with the one column list of a new row.

A delivery row is made at publish (one per webhook subscriber), when a Kafka stream records a batch (one per
record it attempted), and when a Kafka subscription becomes a webhook (its unread backlog). It is leased by a
claim, moved on by its attempts' records, handed back, queued again by a resend or a manual retry, and
removed by expiry. Each of those writes is a function here that takes its caller's connection, or, for a
stream batch, a write its caller adds to its guarded writes: the caller keeps its transaction, so an event
and its deliveries, or a batch and its stream's move, still commit together (decision 0006).
`tests/unit/store/test_delivery_writes_owner.py` keeps every such statement in this module.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection

from chargewire.clock import utcnow
from chargewire.ids import new_ids
from chargewire.models import DeliveryStatus
from chargewire.store.attempt_text import MAX_LAST_ERROR_CHARS, storable_optional
from chargewire.store.bulk_insert import insert_columns, insert_rows, stored_value
from chargewire.store.delivery_records import AttemptRecord, ClaimedDelivery
from chargewire.store.dialects.writes import ColumnInsert
from chargewire.store.tables import deliveries

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


@dataclass(frozen=True, slots=True)
class NewDelivery:
    """A delivery row to write beside its event."""

    id: str
    event_id: str
    subscription_id: str
    event_name: str


async def insert_for_published_events(
    connection: AsyncConnection, new_deliveries: Sequence[NewDelivery], stored_now: Any
) -> None:
    """Insert the pending deliveries a publish made, due at once; `stored_now` as the driver takes a time."""
    count = len(new_deliveries)
    await insert_columns(
        connection,
        deliveries,
        NEW_DELIVERY_COLUMNS,
        (
            [delivery.id for delivery in new_deliveries],
            [delivery.event_id for delivery in new_deliveries],
            [delivery.subscription_id for delivery in new_deliveries],
            [delivery.event_name for delivery in new_deliveries],
            [DeliveryStatus.PENDING.value] * count,
            [0] * count,
            [stored_now] * count,
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
