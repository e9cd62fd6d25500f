"""The rules of expiry as SQL conditions, over a history table or one of its partitions (docs/retention.md).

Each takes the table it judges, so the same rule serves the row deletes (`store/retention.py`) and, on
PostgreSQL, the choice of the rows a partition must keep before it is dropped (`postgresql_partitions`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import ColumnElement, TableClause, and_, exists, false, or_

from chargewire.models import DeliveryStatus
from chargewire.store.tables import deliveries

# A stretch of event numbers (after, upto] a stream has still to read; upto None: to the end of the log.
Stretch = tuple[int, int | None]


def delivery_expired(table: TableClause, delivered_before: datetime, failed_before: datetime) -> ColumnElement[bool]:
    """A delivery that may go: delivered before the delivered cutoff, or failed before the resend window."""
    return or_(
        and_(table.c.status == DeliveryStatus.DELIVERED.value, table.c.created_at < delivered_before),
        and_(table.c.status == DeliveryStatus.FAILED.value, table.c.created_at < failed_before),
    )


def attempt_orphaned(table: TableClause, delivered_before: datetime) -> ColumnElement[bool]:
    """An attempt that may go: older than the delivered cutoff, and its delivery is gone."""
    return and_(table.c.started_at < delivered_before, ~exists().where(deliveries.c.id == table.c.delivery_id))


def event_unused(table: TableClause, delivered_before: datetime, stretches: Sequence[Stretch]) -> ColumnElement[bool]:
    """An event that may go: received before the cutoff, no delivery refers to it, no stream has still to read it."""
    return and_(
        table.c.received_at < delivered_before,
        ~exists().where(deliveries.c.event_id == table.c.id),
        ~read_by_streams(table, stretches),
    )


def needed_stretches(position: int, pauses: Sequence[tuple[int, int | None]]) -> list[Stretch]:
    """The event numbers a stream at `position` has still to read: past it, less its pauses ((from, to])."""
    stretches: list[Stretch] = []
    start = position
    for paused_from, paused_to in sorted(pauses):
        if paused_to is not None and paused_to <= start:
            continue
        if paused_from > start:
            stretches.append((start, paused_from))
        if paused_to is None:
            return stretches
        start = max(start, paused_to)
    stretches.append((start, None))
    return stretches


def read_by_streams(table: TableClause, stretches: Sequence[Stretch]) -> ColumnElement[bool]:
    """Whether an event lies in a stretch a stream has still to read (never, for an unnumbered test send)."""
    if not stretches:
        return false()
    return or_(
        *(
            table.c.seq > after if upto is None else and_(table.c.seq > after, table.c.seq <= upto)
            for after, upto in stretches
        )
    )


@dataclass(frozen=True, slots=True)
class Cutoffs:
    """What expiry keeps, as of one run: the two cutoffs and the stretches Kafka streams have still to read."""

    delivered_before: datetime
    failed_before: datetime
    stretches: Sequence[Stretch]
